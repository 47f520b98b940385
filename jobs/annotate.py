"""spark-submit entry point: compute signal tables incrementally (only keys without a row yet).

    spark-submit jobs/annotate.py --lakehouse /data/lake --recipe nemo_default      # the stages it reads
    spark-submit jobs/annotate.py --lakehouse /data/lake --stages image_scores,paragraph_scores
    spark-submit jobs/annotate.py --lakehouse /data/lake --config annotate.yaml

With `--config run.yaml` (a pipeline config) it runs that config's annotate steps only.
"""
import sys

from mmcurate.cli import job

if __name__ == "__main__":
    sys.exit(job("annotate", sys.argv[1:]))
