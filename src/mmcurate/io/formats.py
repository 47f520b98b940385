"""The source formats `ingest` reads, named once for the reader registry, the CLI and pipeline configs (without
importing the readers and their libraries)."""

FORMATS = ("webdataset", "documents", "mmc4", "nemo_parquet", "pdf", "warc", "html")
