"""The end-to-end demo on the sample data shipped inside the package.

Real OpenCV tutorial pages with their images, in MINT-1T/NeMo WebDataset layout (two members are
deliberately bad), go through ingest -> annotate -> select -> mix -> WebDataset export of the training set.
"""
from __future__ import annotations

import os
from importlib import resources
from typing import Optional

from pyspark.sql import SparkSession


def demo_shards() -> str:
    """Directory of the packaged demo WebDataset shards."""
    return str(resources.files("mmcurate") / "demo_data" / "wds")


def run_demo(out: str, spark: Optional[SparkSession] = None, recipe: str = "nemo_default", mix: str = "balanced") -> dict:
    """Build a lakehouse under `out/lake` from the demo shards, annotate what `recipe` and `dedup_exact`
    read, run exact dedup (into `deduplicated_items`, its drops in the ledger) and `recipe` (into
    `curated_items`), apply `mix` to the curated samples (its report chart in `out/mix_report.png`) and
    export the mixed training set to `out/webdataset`. A rerun reuses the ingest (idempotent commits)
    and the signal tables (nothing new to annotate)."""
    from mmcurate import steps
    from mmcurate.lakehouse import Lakehouse
    from mmcurate.mixing import Mix
    from mmcurate.spark import get_spark

    lake = Lakehouse.open(spark or get_spark(), os.path.join(out, "lake"))
    ingested = steps.ingest(lake, demo_shards(), "webdataset", app_id="mmcurate-demo", app_version=1)
    annotated = steps.annotate(lake, steps.stages_for(recipe) + steps.stages_for("dedup_exact"))
    dedup = steps.select(lake, "dedup_exact", curated_table="deduplicated_items")  # its drops sit beside the recipe's
    selection = steps.select(lake, recipe)
    spec = Mix.from_yaml(mix)
    mixed = steps.mix(lake, spec, chart=os.path.join(out, "mix_report.png"))
    manifest = steps.export(lake, os.path.join(out, "webdataset"), mix=spec.name,
                            samples_per_shard=25, seed=0, overwrite=True)
    return {
        "ingested": ingested,
        "annotated": [a.as_dict() for a in annotated],
        "dedup_exact": [row.asDict() for row in dedup.summary.collect()],
        "quarantine": {r.reason: r["count"] for r in lake.read("quarantine").groupBy("reason").count().collect()},
        "selection": [row.asDict() for row in selection.summary.collect()],
        "curated_samples": selection.curated.where("position = -1").count(),
        "mix": {"name": spec.name, **mixed.totals, "chart": mixed.chart},
        "shards": [row.asDict() for row in manifest.collect()],
        "lakehouse": lake.location("items").rsplit("/", 1)[0],
    }
