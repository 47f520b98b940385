"""spark-submit entry point: score items and images, apply a recipe, write curated_items and drops, print the summary.

    spark-submit jobs/select.py --lakehouse /data/lake --recipe nemo_default
    python jobs/select.py --lakehouse /data/lake --recipe my_recipe.yaml --reuse-scores
"""
import os
import sys

# Run as a script, this file's folder comes first on sys.path, and this file would shadow the standard library's
# `select` module (imported by subprocess, which pandas and pyspark import): take the folder off first.
if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
    del sys.path[0]

import argparse  # noqa: E402

from mmcurate.annotate.image_scores import ImageScores  # noqa: E402
from mmcurate.lakehouse import Lakehouse  # noqa: E402
from mmcurate.pipeline import run_select  # noqa: E402
from mmcurate.select import Recipe, RecipeError  # noqa: E402
from mmcurate.spark import get_spark  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lakehouse", required=True, help="lakehouse root (path, URI or catalog schema)")
    parser.add_argument("--recipe", required=True, help="packaged recipe name (nemo_default, obelics) or YAML path")
    parser.add_argument("--reuse-scores", action="store_true", help="keep score tables already in the lakehouse")
    args = parser.parse_args(argv)

    try:
        recipe = Recipe.from_yaml(args.recipe)  # a malformed recipe fails before Spark starts
        image_stage = ImageScores()
        # This job owns its session: cap Arrow batches of image bytes at image_stage.batch_size rows.
        spark = get_spark(app_name=f"mmcurate-select-{recipe.name}", conf=image_stage.spark_conf)
        lake = Lakehouse.open(spark, args.lakehouse)
        selection = run_select(lake, recipe, image_stage=image_stage, rescore=not args.reuse_scores)
    except RecipeError as e:
        print(f"select: {e}", file=sys.stderr)
        return 2
    print(f"recipe {recipe.name} version {recipe.version}")
    selection.summary.orderBy("order").show(truncate=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
