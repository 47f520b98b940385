"""The end-to-end demo on the sample data shipped inside the package.

Real OpenCV tutorial pages with their images, in MINT-1T/NeMo WebDataset layout (two members are
deliberately bad), go through ingest -> scores -> selection -> WebDataset export.
"""
from __future__ import annotations

import os
from importlib import resources
from typing import Optional

from pyspark.sql import SparkSession


def demo_shards() -> str:
    """Directory of the packaged demo WebDataset shards."""
    return str(resources.files("mmcurate") / "demo_data" / "wds")


def run_demo(out: str, spark: Optional[SparkSession] = None, recipe: str = "nemo_default") -> dict:
    """Build a lakehouse under `out/lake` from the demo shards, curate it with `recipe` and export
    the curated samples to `out/webdataset`. Rerunning reuses the ingest (idempotent commits)."""
    from mmcurate.io.ingest import ingest_to_lakehouse
    from mmcurate.io.webdataset_writer import write_webdataset
    from mmcurate.lakehouse import Lakehouse
    from mmcurate.pipeline import run_select
    from mmcurate.spark import get_spark

    spark = spark or get_spark()
    lake = Lakehouse.open(spark, os.path.join(out, "lake"))
    ingested = ingest_to_lakehouse(lake, demo_shards(), "webdataset", app_id="mmcurate-demo", app_version=1)
    selection = run_select(lake, recipe)
    manifest = write_webdataset(selection.curated, lake.read("images"), os.path.join(out, "webdataset"),
                                samples_per_shard=25, overwrite=True)
    lake.register_views()
    return {
        "ingested": ingested,
        "quarantine": {r.reason: r["count"] for r in lake.read("quarantine").groupBy("reason").count().collect()},
        "selection": [row.asDict() for row in selection.summary.collect()],
        "curated_samples": selection.curated.where("position = -1").count(),
        "shards": [row.asDict() for row in manifest.collect()],
        "lakehouse": lake.location("items").rsplit("/", 1)[0],
    }
