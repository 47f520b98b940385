"""Image copy counts (`ImageCopies`) on synthetic image ids vs a plain `groupBy(image_id).count()`, one run.

    python bench/exact_dedup.py --image-items 1000000

Items: `--image-items` image rows over about a third as many distinct image ids with Zipf-like
copy counts, one id used by 10% of all rows (a hot key), spread over documents of 1-8 images.
Both sides read the same cached DataFrame and write to the `noop` sink (the whole result is
computed, nothing stored). ImageCopies does more than the baseline (distinct documents per image,
occurrences, the first document); the ratio says what that costs.
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from _common import median_times, report, run  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image-items", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    from pyspark.sql import functions as F

    from mmcurate.dedup.exact import ImageCopies
    from mmcurate.spark import get_spark

    spark = get_spark(master="local[2]")
    n = args.image_items
    distinct = max(1, n // 3)
    rows = spark.range(n).select(
        (F.col("id") / 5).cast("long").cast("string").alias("sample_id"),
        (F.col("id") % 5).cast("int").alias("position"),
        F.lit("image").alias("modality"),
        F.when(F.col("id") % 10 == 0, F.lit("hot"))  # one image in 10% of the rows
        .otherwise(F.sha2((F.pow(F.rand(7), 2) * distinct).cast("long").cast("string"), 256)).alias("image_id"),
    ).cache()
    print(f"load average before: {os.getloadavg()[0]:.2f}; rows {rows.count():,}, "
          f"distinct image ids {rows.select('image_id').distinct().count():,}")
    stage = ImageCopies()
    times = median_times({
        "groupBy(image_id).count()": lambda: rows.groupBy("image_id").count().write.format("noop").mode("overwrite").save(),
        "ImageCopies": lambda: rows.transform(stage).write.format("noop").mode("overwrite").save(),
    }, args.repeat)
    report(f"image copy counts over {n:,} image items (median of {args.repeat})", times, "groupBy(image_id).count()")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    run(main)
