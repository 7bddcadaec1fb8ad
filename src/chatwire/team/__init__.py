"""The team layer: who may use what (policies and their limits), what every chat used and
cost (the usage ledger and its prices), shared by every process through Redis and the
database."""
