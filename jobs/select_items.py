"""spark-submit entry point: score items and images, apply a recipe, write curated_items and drops.

    spark-submit jobs/select_items.py --lakehouse /data/lake --recipe nemo_default
    spark-submit jobs/select_items.py --lakehouse /data/lake --recipe my_recipe.yaml --reuse-scores

(Not named select.py: a script's folder leads sys.path, and that name would shadow the standard
library's `select` module.)
"""
import sys

from mmcurate.cli import main

if __name__ == "__main__":
    sys.exit(main(["select", *sys.argv[1:]]))
