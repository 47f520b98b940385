"""spark-submit entry point: source files -> lakehouse items/images/quarantine.

    spark-submit jobs/ingest.py --lakehouse s3://bucket/lake --format webdataset s3://bucket/mint/

With `--config run.yaml` (a pipeline config) it runs that config's ingest steps only.
"""
import sys

from mmcurate.cli import job

if __name__ == "__main__":
    sys.exit(job("ingest", sys.argv[1:]))
