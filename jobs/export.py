"""spark-submit entry point: curated items -> WebDataset shards (MINT-1T/NeMo layout) or NeMo Parquet.

    spark-submit jobs/export.py --lakehouse /data/lake --out s3://bucket/wds --shard-bytes 1000000000

With `--config run.yaml` (a pipeline config) it runs that config's export steps only.
"""
import sys

from mmcurate.cli import job

if __name__ == "__main__":
    sys.exit(job("export", sys.argv[1:]))
