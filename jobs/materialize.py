"""spark-submit entry point: read the bytes of lazy image items (ingested with --lazy-images) into images.

    spark-submit jobs/materialize.py --lakehouse s3://bucket/lake [--retry-errors]

With `--config run.yaml` (a pipeline config) it runs that config's materialize steps only.
"""
import sys

from mmcurate.cli import job

if __name__ == "__main__":
    sys.exit(job("materialize", sys.argv[1:]))
