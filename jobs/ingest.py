"""spark-submit entry point: source files -> lakehouse items/images/quarantine.

    spark-submit jobs/ingest.py --lakehouse s3://bucket/lake --format webdataset s3://bucket/mint/
"""
import sys

from mmcurate.cli import main

if __name__ == "__main__":
    sys.exit(main(["ingest", *sys.argv[1:]]))
