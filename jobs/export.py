"""spark-submit entry point: curated items -> WebDataset shards (MINT-1T/NeMo layout) or NeMo Parquet.

    spark-submit jobs/export.py --lakehouse /data/lake --out s3://bucket/wds --shard-bytes 1000000000
"""
import sys

from mmcurate.cli import main

if __name__ == "__main__":
    sys.exit(main(["export", *sys.argv[1:]]))
