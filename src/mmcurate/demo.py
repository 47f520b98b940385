"""The end-to-end demo on the sample data shipped inside the package: the packaged `demo` pipeline.

Real OpenCV tutorial pages with their images, in MINT-1T/NeMo WebDataset layout (two members are
deliberately bad), go through ingest -> annotate -> exact dedup -> select -> mix -> WebDataset export of the
training set, tracked as an MLflow run (see src/mmcurate/pipelines/demo.yaml).
"""
from __future__ import annotations

import json
import os
from importlib import resources
from typing import Optional

from pyspark.sql import SparkSession

from mmcurate.pipeline import ConfigError, Pipeline
from mmcurate.packaged import load_spec


def demo_shards() -> str:
    """Directory of the packaged demo WebDataset shards."""
    return str(resources.files("mmcurate") / "demo_data" / "wds")


def demo_pipeline(out: str, recipe: str = "nemo_default") -> Pipeline:
    """The packaged demo pipeline with its outputs under `out`; `recipe` replaces nemo_default's select."""
    data = load_spec("demo", "pipelines", "pipeline", ConfigError)
    if recipe != "nemo_default":
        data["select"] = [s if s["recipe"] != "nemo_default" else {**s, "recipe": recipe} for s in data["select"]]
        data["annotate"]["recipes"] = [recipe if r == "nemo_default" else r for r in data["annotate"]["recipes"]]
    return Pipeline.from_dict(data, root=out, where="demo")


def run_demo(out: str, spark: Optional[SparkSession] = None, recipe: str = "nemo_default", on_step=None) -> dict:
    """Run the demo pipeline into `out` (lake/, webdataset/, mix_report.png, mlruns/) and write the report to
    `out/report.json`. A rerun adds nothing: files already ingested are skipped, nothing new is scored, the
    selects and the mix are current, the export is complete."""
    report = demo_pipeline(out, recipe).run(spark, on_step)
    os.makedirs(out, exist_ok=True)
    report["report"] = os.path.join(out, "report.json")
    with open(report["report"], "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2, default=str)
    return report
