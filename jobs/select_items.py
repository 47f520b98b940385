"""spark-submit entry point: apply a recipe to items and signal tables, write curated_items and its drops rows.

    spark-submit jobs/select_items.py --lakehouse /data/lake --recipe nemo_default
    spark-submit jobs/select_items.py --lakehouse /data/lake --recipe my_recipe.yaml

It computes nothing: run jobs/annotate.py first for the signal tables the recipe reads.

(Not named select.py: a script's folder leads sys.path, and that name would shadow the standard
library's `select` module.)

With `--config run.yaml` (a pipeline config) it runs that config's select steps only.
"""
import sys

from mmcurate.cli import job

if __name__ == "__main__":
    sys.exit(job("select", sys.argv[1:]))
