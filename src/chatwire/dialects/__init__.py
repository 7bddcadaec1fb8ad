"""Dialects: the front doors, each a thin codec around the one pipeline (``base.Dialect``)."""
