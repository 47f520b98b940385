"""One module per source format; each parses files into Documents inside Spark executors."""
