"""MLflow tracking of pipeline runs, through an explicit `MlflowClient`: the global mlflow state (active run,
tracking URI) the user owns is never touched.

One pipeline run is one MLflow run: the config as params; per step its counts as metrics (rows in, kept
and dropped per rule, images scored, seconds); the Delta version of every table as tags; artifacts: the
report, histograms of the scores each recipe reads, the mix report, the sample pages of dropped documents per
rule (the config's `view:` pages). Where: `mlflow.tracking_uri` in the
config, else `$MLFLOW_TRACKING_URI` (Databricks sets it), else a local `mlruns/` (SQLite metadata, artifact
files) next to the lakehouse's config root.
"""
from __future__ import annotations

import json
import os
import re
import tempfile
from contextlib import contextmanager
from typing import Any, Iterator, Optional

from pyspark.sql import functions as F
from pyspark.sql import types as T

HISTOGRAM_BINS = 30
_NAME = re.compile(r"[^A-Za-z0-9_\-. :/]")


class NoTracking:
    """The tracker of a pipeline with `mlflow: {enabled: false}`."""

    def step(self, result: dict) -> None:
        pass

    def finish(self, lake, report: dict, pipeline) -> None:
        pass

    def where(self) -> Optional[dict]:
        return None


class MlflowTracker(NoTracking):
    """Logs one pipeline run; `where()` gives the tracking URI, experiment and run id to find it again."""

    def __init__(self, pipeline):
        from mlflow.tracking import MlflowClient

        settings = pipeline.mlflow
        directory = settings.get("directory") or "mlruns"
        local = not (settings.get("tracking_uri") or os.environ.get("MLFLOW_TRACKING_URI"))
        if local:
            os.makedirs(directory, exist_ok=True)
        self.uri = settings.get("tracking_uri") or os.environ.get("MLFLOW_TRACKING_URI") or \
            f"sqlite:///{os.path.abspath(directory)}/mlflow.db"
        self.client = MlflowClient(tracking_uri=self.uri)
        self.experiment = settings.get("experiment") or "mmcurate"
        with _quiet("mlflow.store.db.utils", "alembic"):  # the local store's "Creating initial tables" lines
            found = self.client.get_experiment_by_name(self.experiment)
        if found is not None:
            experiment_id = found.experiment_id
        else:
            location = os.path.abspath(os.path.join(directory, "artifacts")) if local else None
            experiment_id = self.client.create_experiment(self.experiment, artifact_location=location)
        run = self.client.create_run(experiment_id, run_name=pipeline.name,
                                     tags={"mmcurate.lakehouse": pipeline.lakehouse})
        self.run_id = run.info.run_id
        self._log_params(flatten(pipeline.config))
        self.order = 0

    def _log_params(self, params: dict) -> None:
        from mlflow.entities import Param

        items = [Param(_metric_name(k), str(v)[:6000]) for k, v in params.items()]
        for start in range(0, len(items), 100):
            self.client.log_batch(self.run_id, params=items[start:start + 100])

    def step(self, result: dict) -> None:
        from mlflow.entities import Metric

        name = _metric_name(result["step"].replace("[", ".").replace("]", ""))
        now = _now_ms()
        metrics = [Metric(f"{name}.{_metric_name(k)}", float(v), now, self.order)
                   for k, v in flatten(result).items() if _is_number(v) and k != "step"]
        self.order += 1
        for start in range(0, len(metrics), 200):
            self.client.log_batch(self.run_id, metrics=metrics[start:start + 200])

    def finish(self, lake, report: dict, pipeline) -> None:
        for table, version in report.get("tables", {}).items():
            self.client.set_tag(self.run_id, f"delta_version.{table}", str(version))
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "report.json")
            with open(path, "w", encoding="utf-8") as f:
                json.dump(report, f, indent=2, default=str)
            self.client.log_artifact(self.run_id, path)
            for png in score_histograms(lake, pipeline, folder):
                self.client.log_artifact(self.run_id, png, "histograms")
            if pipeline.mix is not None and lake.exists("mix_report"):
                path = os.path.join(folder, f"mix_report_{pipeline.mix.name}.json")
                rows = lake.read("mix_report").where(F.col("mix") == pipeline.mix.name).collect()  # one per bucket
                with open(path, "w", encoding="utf-8") as f:
                    json.dump([r.asDict() for r in rows], f, indent=1, default=str)
                self.client.log_artifact(self.run_id, path, "mix")
                if pipeline.mix_chart and os.path.exists(pipeline.mix_chart):
                    self.client.log_artifact(self.run_id, pipeline.mix_chart, "mix")
            for shown in pipeline.views:  # kept and dropped documents per rule, as the viewer renders them
                if os.path.exists(shown.out):
                    self.client.log_artifact(self.run_id, shown.out, "samples")
        self.client.set_terminated(self.run_id)

    def fail(self) -> None:
        self.client.set_terminated(self.run_id, status="FAILED")

    def where(self) -> dict:
        return {"tracking_uri": self.uri, "experiment": self.experiment, "run_id": self.run_id}


@contextmanager
def _quiet(*names: str) -> Iterator[None]:
    """Raise these loggers to WARNING for the block, then restore their levels."""
    import logging

    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


@contextmanager
def tracker(pipeline) -> Iterator[NoTracking]:
    """The run's tracker; a run that raises is marked FAILED in MLflow (what it logged so far stays)."""
    if pipeline.mlflow.get("enabled") is False:
        yield NoTracking()
        return
    track = MlflowTracker(pipeline)
    try:
        yield track
    except BaseException:
        track.fail()
        raise


def score_histograms(lake, pipeline, folder: str) -> list[str]:
    """One PNG per numeric column a select's rules read from a signal table, binned in Spark (HISTOGRAM_BINS
    counts reach the driver)."""
    from matplotlib.figure import Figure

    from mmcurate.steps import signal_tables

    if not lake.exists("items"):
        return []
    columns: dict[tuple[str, str], Any] = {}
    items = lake.read("items")
    for selected in pipeline.selects:
        tables = signal_tables(lake, selected.recipe)
        for level in selected.recipe.plan(items, tables).values():
            for table, names in level:
                for name in names:
                    if isinstance(table.df.schema[name].dataType, T.NumericType):
                        columns[(table.name, name)] = table.df
    paths = []
    for (table, name), df in sorted(columns.items(), key=lambda kv: kv[0]):
        value = F.col(f"`{name}`").cast("double")
        bounds = df.where(~F.isnan(value)).agg(F.min(value).alias("lo"), F.max(value).alias("hi")).first()
        if bounds.lo is None:
            continue
        lo, hi = bounds.lo, bounds.hi if bounds.hi > bounds.lo else bounds.lo + 1.0
        bucket = F.width_bucket(value, F.lit(lo), F.lit(hi), F.lit(HISTOGRAM_BINS))
        counts = {r.b: r["count"] for r in df.where(~F.isnan(value)).groupBy(bucket.alias("b")).count().collect()}
        width = (hi - lo) / HISTOGRAM_BINS
        heights = [counts.get(i, 0) + (counts.get(HISTOGRAM_BINS + 1, 0) if i == HISTOGRAM_BINS else 0)
                   for i in range(1, HISTOGRAM_BINS + 1)]
        figure = Figure(figsize=(6, 3.2))
        axes = figure.subplots()
        axes.bar([lo + width * (i + 0.5) for i in range(HISTOGRAM_BINS)], heights, width=width * 0.95)
        axes.set_title(f"{table}.{name}")
        axes.set_ylabel("rows")
        path = os.path.join(folder, f"{table}.{name}.png")
        figure.tight_layout()
        figure.savefig(path, dpi=90)
        paths.append(path)
    return paths


def flatten(value: Any, prefix: str = "") -> dict:
    """Nested dicts and lists as one level of dotted keys."""
    if isinstance(value, dict):
        out = {}
        for key, inner in value.items():
            out.update(flatten(inner, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(value, (list, tuple)) and any(isinstance(v, (dict, list, tuple)) for v in value):
        out = {}
        for i, inner in enumerate(value):
            out.update(flatten(inner, f"{prefix}[{i}]"))
        return out
    return {prefix: value}


def _metric_name(name: str) -> str:
    return _NAME.sub("_", name.replace("[", ".").replace("]", ""))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _now_ms() -> int:
    import time

    return int(time.time() * 1000)
