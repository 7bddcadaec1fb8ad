"""chatwire's benchmark (run it with ./bench/run; see bench/README.md)."""
