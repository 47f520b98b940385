"""steps.mix vs a bare pandas loop making the same decisions on the same data, as a ratio in one run.

    python bench/mix.py --samples 200000

Planted curated items (1/4 text-only, 1/4 caption, 1/2 interleaved; texts of 40-100 characters) and
five image sizes are written to a lakehouse. The mix is text-only : multimodal = 1 : 3 by samples,
InternVL tiling (<= 6 tiles + thumbnail), ~4 characters per token. The bare loop reads the same
items from Parquet with pyarrow, sums tokens per sample with pandas, computes the same shares and
takes the same number of samples per kind (numpy), with no Spark and no tables written. Both
sides must agree on the exported count per kind.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
from _common import median_times, report  # noqa: E402

import numpy as np  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
from pyspark.sql import functions as F  # noqa: E402

from mmcurate import steps  # noqa: E402
from mmcurate.lakehouse import Lakehouse  # noqa: E402
from mmcurate.mixing import Mix  # noqa: E402
from mmcurate.mixing.tokens import ImageTokens  # noqa: E402
from mmcurate.schema import IMAGES, ITEMS  # noqa: E402
from mmcurate.spark import get_spark  # noqa: E402

SIZES = [(640, 480), (1000, 500), (300, 900), (2048, 2048), (100, 100)]
SCHEME = {"scheme": "fixed", "tokens_per_tile": 256, "tile_size": 448, "max_tiles": 6, "thumbnail": True}
MIX = {"name": "bench", "version": "1", "seed": 7, "kinds": {"text_only": 1, "multimodal": 3},
       "tokens": {"image": SCHEME, "text": {"chars_per_token": 4}}}


def planted_items(spark, n: int):
    """n samples of three layouts, as curated items."""
    docs = spark.range(n).select(F.col("id").cast("int").alias("i"), F.format_string("doc%07d", "id").alias("sample_id"))
    layout = F.expr("""CASE i % 4 WHEN 0 THEN array('text', 'text') WHEN 1 THEN array('image', 'text')
                       ELSE array('text', 'image', 'text', 'image') END""")
    rows = docs.select("*", F.posexplode(layout).alias("position", "modality")).select(
        "sample_id", "position", "modality", F.lit("text/plain").alias("content_type"),
        F.when(F.col("modality") == "text", F.repeat(F.lit("x"), 40 + (F.col("i") % 7) * 10)).alias("text_content"),
        F.when(F.col("modality") == "image", F.concat(F.lit("img"), ((F.col("i") + F.col("position")) % 5)
                                                      .cast("string"))).alias("image_id"),
        F.lit(None).alias("image_url"), F.lit('{"path": "/data/part.tar"}').alias("source_ref"))
    return rows.select(*[F.col(f.name).cast(f.dataType) for f in ITEMS.fields])


def bare(items_path: str) -> dict[str, int]:
    """The same mix with pyarrow + pandas + numpy in one process: kinds, tokens, shares, a seeded draw."""
    items = pq.read_table(items_path, columns=["sample_id", "modality", "text_content", "image_id"]).to_pandas()
    per_image = {f"img{k}": ImageTokens(**SCHEME).count(w, h) for k, (w, h) in enumerate(SIZES)}
    items["tokens"] = np.where(items["modality"] == "text", np.ceil(items["text_content"].str.len() / 4),
                               items["image_id"].map(per_image).fillna(0))
    items["is_image"] = items["modality"] == "image"
    docs = items.groupby("sample_id").agg(images=("is_image", "sum"), tokens=("tokens", "sum"))
    docs["group"] = np.where(docs["images"] == 0, "text_only", "multimodal")
    counts = docs["group"].value_counts()
    scale = min(counts["text_only"] / 0.25, counts["multimodal"] / 0.75)
    take = {"text_only": round(scale * 0.25), "multimodal": round(scale * 0.75)}
    rng = np.random.default_rng(7)
    picked = {}
    for group, frame in docs.groupby("group"):
        chosen = frame.iloc[np.argsort(rng.random(len(frame)))[: take[group]]]
        picked[group] = len(chosen)
    return picked


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    spark = get_spark(master="local[2]")
    work = tempfile.mkdtemp(prefix="mmcurate-bench-mix-")
    try:
        lake = Lakehouse.open(spark, os.path.join(work, "lake"), backend="embedded")
        lake.write(planted_items(spark, args.samples), "curated_items")
        lake.write(spark.createDataFrame([(f"img{k}", b"", "image/png", w, h, 0) for k, (w, h) in enumerate(SIZES)],
                                         IMAGES), "images")
        items_path = os.path.join(work, "items.parquet")
        lake.read("curated_items").write.parquet(items_path)
        results = {}

        def ours():
            mixed = steps.mix(lake, Mix.from_dict(MIX))
            results["ours"] = {r.bucket: r.samples_after for r in mixed.report.where("dimension = 'kind'").collect()}

        def loop():
            results["bare"] = bare(items_path)

        times = median_times({"bare pandas loop": loop, "steps.mix (+ its two tables)": ours}, args.repeat)
        ours_groups = {"text_only": results["ours"].get("text_only", 0),
                       "multimodal": results["ours"].get("caption", 0) + results["ours"].get("interleaved", 0)}
        same = ours_groups == results["bare"]
        report(f"Mix of {args.samples} samples, 1:3 by samples (same counts per kind: {same}, {ours_groups})",
               times, baseline="bare pandas loop")
        if not same:
            raise SystemExit(f"counts differ: {ours_groups} vs {results['bare']}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
