"""Wire families: each speaks one provider API for every dialect (``base.Family``)."""
