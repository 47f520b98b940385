"""spark-submit entry point: run a whole pipeline config (idempotent: a rerun adds no duplicate rows).

    spark-submit --master spark://host:7077 jobs/pipeline.py --config examples/mint_webdataset.yaml
"""
import sys

from mmcurate.cli import main

if __name__ == "__main__":
    sys.exit(main(["run", *sys.argv[1:]]))
