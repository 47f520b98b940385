"""Run a validated `Pipeline`: its steps in order, each one idempotent, reported and tracked in MLflow.

What each step does on a rerun: ingest skips files already ingested; annotate scores only keys its tables
lack; a select or mix whose recipe and input table versions are those of its last commit is skipped; a
WebDataset export resumes (finished shards stay; a changed plan is written afresh).
"""
from __future__ import annotations

import time
from typing import Callable, Optional, Sequence

from pyspark.sql import functions as F

from mmcurate import steps
from mmcurate.lakehouse import Lakehouse
from mmcurate.tracking import tracker

StepCallback = Callable[[str, dict], None]


STEPS = ("ingest", "materialize", "fetch", "annotate", "merge", "select", "mix", "export", "view")
"""The kinds of steps a config runs, in their order; `only` picks some of them (a per-stage job)."""


def run_pipeline(pipeline, spark=None, on_step: Optional[StepCallback] = None,
                 only: Optional[Sequence[str]] = None) -> dict:
    """The report: the pipeline's name, lakehouse, one entry per step (counts and seconds), table versions.
    only: run just these kinds of steps (STEPS), e.g. ("select",) for a select job over the same config."""
    unknown = sorted(set(only or ()) - set(STEPS))
    if unknown:
        raise ValueError(f"unknown step kind(s) {unknown}; steps are {list(STEPS)}")
    wanted = set(only or STEPS)
    from mmcurate.spark import get_spark

    spark = spark or get_spark(master=pipeline.spark_master, conf=pipeline.spark_conf)
    lake = Lakehouse.open(spark, pipeline.lakehouse, backend=pipeline.backend)
    report = {"name": pipeline.name, "lakehouse": pipeline.lakehouse, "steps": []}
    with tracker(pipeline) as track:

        def step(name: str, run: Callable[[], dict]) -> Optional[dict]:
            if name.split("[")[0] not in wanted:
                return None
            started = time.perf_counter()
            result = {"step": name, **run(), "seconds": round(time.perf_counter() - started, 3)}
            report["steps"].append(result)
            track.step(result)
            if on_step:
                on_step(name, result)
            return result

        for i, source in enumerate(pipeline.sources):
            step(f"ingest[{i}]", lambda s=source: steps.ingest(lake, list(s.paths), s.format, s.options,
                                                               skip_ingested=True))
        if pipeline.materialize is not None:
            step("materialize", lambda: steps.materialize(lake, **pipeline.materialize))
        if pipeline.fetch is not None:
            step("fetch", lambda: steps.fetch(lake, **pipeline.fetch))
        if pipeline.stages:
            step("annotate", lambda: _annotate(lake, pipeline.stages, pipeline.demand))
        if pipeline.merge is not None:
            step("merge", lambda: steps.merge_image_duplicates(lake, **pipeline.merge))
        for selected in pipeline.selects:
            step(f"select[{selected.recipe.name}]", lambda s=selected: _select(lake, s))
        if pipeline.mix is not None:
            step(f"mix[{pipeline.mix.name}]", lambda: _mix(lake, pipeline.mix, pipeline.mix_chart))
        for i, export in enumerate(pipeline.exports):
            step(f"export[{i}]", lambda e=export: _export(lake, e))
        for i, shown in enumerate(pipeline.views):
            step(f"view[{i}]", lambda v=shown: {"out": steps.view(lake, v.out, **v.options)})
        report["tables"] = {name: lake.version(name) for name in lake.tables()}
        track.finish(lake, report, pipeline)
        report["mlflow"] = track.where()
    return report


def _annotate(lake: Lakehouse, stages, recipes) -> dict:
    done = steps.annotate(lake, stages, recipes)
    return {"stages": {a.stage: {"action": a.action, "rows_added": a.rows_added} for a in done}}


def _select(lake: Lakehouse, selected) -> dict:
    """Select (unless nothing it reads changed), then its counts from the committed tables: kept items and the
    ledger's drops per rule, the same numbers whether it ran now or before."""
    recipe, table = selected.recipe, selected.curated_table
    skipped = steps.select_is_current(lake, recipe, table)
    if not skipped:
        steps.select(lake, recipe, curated_table=table)
    drops = lake.read("drops").where(F.col("recipe") == recipe.name)
    per_rule = {r.rule: r["count"] for r in drops.groupBy("rule").count().collect()}
    kept = lake.read(table).agg(F.count(F.lit(1)).alias("items"),
                                F.count_if(F.col("position") == -1).alias("samples")).first()
    return {"recipe": recipe.name, "skipped": skipped, "curated_table": table, "kept_items": kept["items"],
            "kept_samples": kept["samples"], "dropped_items": sum(per_rule.values()), "dropped": per_rule}


def _mix(lake: Lakehouse, spec, chart: Optional[str]) -> dict:
    skipped = steps.mix_is_current(lake, spec)
    if skipped:
        totals = lake.read("mix_report").where((F.col("mix") == spec.name) & (F.col("dimension") == "total")).first()
        totals = {k: v for k, v in totals.asDict().items() if k not in ("mix", "dimension", "bucket")}
    else:
        totals = steps.mix(lake, spec, chart=chart).totals
    return {"mix": spec.name, "skipped": skipped, "chart": chart, **totals}


def _export(lake: Lakehouse, export) -> dict:
    options = dict(export.options)
    if export.format == "webdataset" and not options.get("overwrite"):
        options.setdefault("resume", True)
    elif export.format == "parquet":
        options.setdefault("overwrite", True)
    try:
        manifest = steps.export(lake, export.out, format=export.format, table=export.table, mix=export.mix, **options)
    except ValueError as e:
        if not str(e).startswith("cannot resume the export"):
            raise
        options.update(resume=False, overwrite=True)  # the data or options changed since: write it afresh
        manifest = steps.export(lake, export.out, format=export.format, table=export.table, mix=export.mix, **options)
    result = {"out": export.out, "format": export.format, "table": export.table, "mix": export.mix}
    if manifest is not None:
        totals = manifest.agg(F.count(F.lit(1)).alias("shards"), F.sum("n_samples").alias("samples"),
                              F.sum("n_images").alias("images"), F.sum("n_bytes").alias("bytes")).first()
        result.update({k: int(totals[k] or 0) for k in ("shards", "samples", "images", "bytes")})
    return result


def describe(result: dict) -> str:
    """One line for a finished step: what came in, what was kept and dropped (per rule), and the seconds."""
    name, kind = result["step"], result["step"].split("[")[0]
    if kind == "ingest":
        if not result.get("files"):
            text = f"nothing new ({result.get('skipped_files', 0)} files already ingested)"
        else:
            text = (f"{result['files']} files: {result['documents']:,} documents, {result['text_items']:,} texts, "
                    f"{result['image_items']:,} images ({result['unique_images']:,} new unique), "
                    f"{result['quarantined']:,} quarantined {_counts(result['quarantine_reasons'])}")
    elif kind == "materialize":
        text = f"{result['tried']:,} tried, {result['materialized']:,} read, failed {_counts(result['failed'])}"
    elif kind == "fetch":
        text = (f"{result['tried']:,} items ({result['urls']:,} URLs) tried, {result['materialized']:,} fetched, "
                f"failed {_counts(result['failed'])}")
    elif kind == "annotate":
        text = ", ".join(f"{s} {'+' + format(d['rows_added'] or 0, ',') if d['action'] != 'up_to_date' else 'current'}"
                         for s, d in result["stages"].items())
    elif kind == "select":
        total = result["kept_items"] + result["dropped_items"]
        text = (f"{total:,} items in, {result['kept_items']:,} kept ({result['kept_samples']:,} samples), "
                f"{result['dropped_items']:,} dropped {_counts(result['dropped'])} -> {result['curated_table']}"
                + (" (current: inputs unchanged)" if result["skipped"] else ""))
    elif kind == "mix":
        text = (f"{result.get('samples_before', 0):,} samples in, {result.get('samples_after', 0):,} train "
                f"({result.get('text_tokens_after', 0):,} text tokens, {result.get('image_tokens_after', 0):,} image "
                f"tokens)" + (" (current)" if result["skipped"] else ""))
    elif kind == "view":
        text = f"sample page -> {result['out']}"
    elif kind == "export":
        text = (f"{result.get('shards', 0)} shards, {result.get('samples', 0):,} samples, "
                f"{result.get('images', 0):,} images, {result.get('bytes', 0) / 2**20:.1f} MiB -> {result['out']}"
                if "shards" in result else f"Parquet -> {result['out']}")
    else:
        text = ", ".join(f"{k}={v}" for k, v in result.items() if k not in ("step", "seconds"))
    return f"{name:<22} {text}  [{result['seconds']:.1f} s]"


def _counts(counts: dict) -> str:
    return "(" + ", ".join(f"{k} {v:,}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1])) + ")" if counts else ""
