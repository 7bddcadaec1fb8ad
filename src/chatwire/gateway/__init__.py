"""The one pipeline every chat goes through, whatever door it came in by (``pipeline``)."""
