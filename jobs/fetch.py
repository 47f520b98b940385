"""spark-submit entry point: download the bytes of URL-only image items (OBELICS, MMC4, HTML pages) into images.

    spark-submit jobs/fetch.py --lakehouse s3://bucket/lake [--concurrency 64 --deny example.com --retry-errors]

With `--config run.yaml` (a pipeline config) it runs that config's fetch step only.
"""
import sys

from mmcurate.cli import job

if __name__ == "__main__":
    sys.exit(job("fetch", sys.argv[1:]))
