"""spark-submit entry point: compute signal tables incrementally (only keys without a row yet).

    spark-submit jobs/annotate.py --lakehouse /data/lake --recipe nemo_default      # the stages it reads
    spark-submit jobs/annotate.py --lakehouse /data/lake --stages image_scores,paragraph_scores
    spark-submit jobs/annotate.py --lakehouse /data/lake --config annotate.yaml
"""
import sys

from mmcurate.cli import main

if __name__ == "__main__":
    sys.exit(main(["annotate", *sys.argv[1:]]))
