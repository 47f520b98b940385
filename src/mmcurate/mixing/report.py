"""The mix report: per bucket of each dimension (kind, and source, decile, cluster when the mix weights them),
samples, text tokens, images and image tokens before the mix and after it (repeats counted), plus a chart."""
from __future__ import annotations

from functools import reduce
from typing import Optional

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

MIX_REPORT = T.StructType([
    T.StructField("mix", T.StringType(), False),
    T.StructField("dimension", T.StringType(), False),
    T.StructField("bucket", T.StringType(), True),
    *[T.StructField(f"{what}_{when}", T.LongType(), False)
      for what in ("samples", "text_tokens", "images", "image_tokens") for when in ("before", "after")],
])
"""`before`: every sample (or part) of the curated table once; `after`: what trains, each counted `repeats`
times. The `total` dimension has one bucket (null) over everything; cut items count before only."""

_MEASURES = {"samples": None, "text_tokens": "text_tokens", "images": "n_images", "image_tokens": "image_tokens"}


def mix_report(samples: DataFrame, dimensions: list[str]) -> DataFrame:
    """MIX_REPORT rows from `mix_samples` rows of one mix (small: one row per bucket)."""
    def sums(dimension: Optional[str]) -> DataFrame:
        measures = []
        for name, column in _MEASURES.items():
            value = F.when(F.col("part") >= 0, F.lit(1)).otherwise(F.lit(0)) if column is None else F.col(column)
            measures += [F.sum(value).cast("long").alias(f"{name}_before"),
                         F.sum(value * F.col("repeats")).cast("long").alias(f"{name}_after")]
        bucket = F.col(dimension).cast("string") if dimension else F.lit(None).cast("string")
        return samples.groupBy("mix", bucket.alias("bucket")).agg(*measures).select(
            "mix", F.lit(dimension or "total").alias("dimension"), "bucket", *[f.name for f in MIX_REPORT.fields[3:]])

    return reduce(lambda a, b: a.unionByName(b), [sums(d) for d in [None, *dimensions]])


def plot_report(rows: list[dict], path: str) -> str:
    """A PNG with one panel per dimension: samples and tokens (text + image) per bucket, before and after."""
    from matplotlib.figure import Figure  # no pyplot: the user's backend and figures stay untouched

    dimensions = [d for d in dict.fromkeys(r["dimension"] for r in rows) if d != "total"]
    figure = Figure(figsize=(11, 3.2 * max(1, len(dimensions))))
    axes = figure.subplots(max(1, len(dimensions)), 2, squeeze=False)
    for line, dimension in zip(axes, dimensions):
        buckets = sorted((r for r in rows if r["dimension"] == dimension), key=lambda r: str(r["bucket"]))[:30]
        labels = [str(r["bucket"]) for r in buckets]
        for axis, (title, value) in zip(line, (("samples", lambda r, w: r[f"samples_{w}"]),
                                                ("tokens", lambda r, w: r[f"text_tokens_{w}"] + r[f"image_tokens_{w}"]))):
            x = range(len(buckets))
            axis.bar([i - 0.2 for i in x], [value(r, "before") for r in buckets], 0.4, label="before")
            axis.bar([i + 0.2 for i in x], [value(r, "after") for r in buckets], 0.4, label="after")
            axis.set_xticks(list(x), labels, rotation=30, ha="right", fontsize=8)
            axis.set_title(f"{title} by {dimension}")
            axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    return path
