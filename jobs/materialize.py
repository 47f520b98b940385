"""spark-submit entry point: read the bytes of lazy image items (ingested with --lazy-images) into images.

    spark-submit jobs/materialize.py --lakehouse s3://bucket/lake [--retry-errors]
"""
import sys

from mmcurate.cli import main

if __name__ == "__main__":
    sys.exit(main(["materialize", *sys.argv[1:]]))
