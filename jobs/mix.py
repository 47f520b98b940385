"""spark-submit entry point: apply a mix to a curated table; write mix_samples and mix_report (and a chart).

    spark-submit jobs/mix.py --lakehouse /data/lake --mix balanced --chart /dbfs/reports/mix.png
    spark-submit jobs/export.py --lakehouse /data/lake --mix balanced --out s3://bucket/train --shard-bytes 1000000000

With `--config run.yaml` (a pipeline config) it runs that config's mix steps only.
"""
import sys

from mmcurate.cli import job

if __name__ == "__main__":
    sys.exit(job("mix", sys.argv[1:]))
