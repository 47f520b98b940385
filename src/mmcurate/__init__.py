"""mmcurate: curate interleaved image-text data with PySpark and Delta Lake."""
__version__ = "0.1.0"
