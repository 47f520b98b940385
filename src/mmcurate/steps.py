"""Lakehouse-level steps (ingest, annotate, select, mix, export, view): the only code that reads and writes tables.

Jobs, the CLI, notebooks and tests call these; stages and recipes stay pure DataFrame code.

>>> steps.ingest(lake, "s3://bucket/mint/", "webdataset", app_id="ingest", app_version=1)
>>> steps.annotate(lake, steps.stages_for("nemo_default"), recipes=["nemo_default"])  # only what is new and needed
>>> selection = steps.select(lake, "nemo_default")              # reads tables, computes nothing
>>> steps.export(lake, "s3://bucket/train-wds", shard_bytes=10**9)
>>> steps.view(lake, "view.html", rule="blur")                   # kept vs dropped documents, one HTML page
"""
from __future__ import annotations

import hashlib
import time
from functools import reduce
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence, Union

import pyarrow as pa
from pyspark import StorageLevel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from mmcurate.annotate import STAGES, build_stage, stage_for_column
from mmcurate.annotate.image_scores import FUSED_FLAG, PerImageStage, fused_scores
from mmcurate.io.documents import STAGE as INGEST_STAGE
from mmcurate.io.documents import ReaderOptions
from mmcurate.io.ingest import PATTERNS, IngestResult, list_files
from mmcurate.io.ingest import ingest as parse
from mmcurate.lakehouse import CommitConflictError, Lakehouse, has_no_rows
from mmcurate.mixing import Mix, MixError
from mmcurate.mixing.plan import mixed_items, plan_mix
from mmcurate.mixing.report import mix_report, plot_report
from mmcurate.schema import require_columns
from mmcurate.select import (EMPTY_AFTER_FILTERING, LEVEL_KEYS, NOT_COMPUTED, VALID_ITEM, Recipe, RecipeError, Selection,
                             SignalTable, packaged_recipes)
from mmcurate.spark import session_conf
from mmcurate.stage import Stage
from mmcurate.viewer import View, ViewerError, ViewInputs, render_view

CORE_TABLES = ("items", "images", "quarantine", "curated_items", "drops", "mix_samples", "mix_report",
               "ingested_files")
"""Tables the steps own; every other table with a recorded key is a signal table recipes can read."""

StageSpec = Union[Stage, str, Mapping[str, Any]]


def ingest(
    lake: Lakehouse,
    paths: Sequence[str] | str,
    format: str,
    options: Optional[ReaderOptions] = None,
    patterns: Optional[Iterable[str]] = None,
    app_id: Optional[str] = None,
    app_version: Optional[int] = None,
    skip_ingested: bool = False,
) -> dict:
    """Parse source files and append to the lakehouse's `items`, `images` and `quarantine` tables.

    Images already in the lakehouse are not stored again; samples whose id is already in `items`
    are quarantined as `duplicate_sample_id`. Images are committed first and items last, so
    `items` never references an image the lakehouse lacks. With app_id/app_version each table's
    commit is idempotent: rerunning a job that died half-way completes it without duplicates.
    skip_ingested: ingest only files the `ingested_files` table does not list, and list them there after
    `items` (with an application id of their own unless app_id is given, so a rerun after a crash between
    the commits lands exactly once). Returns the summary counts.

    On an embedded lakehouse the parse stages its rows in the scratch folder; where the passthrough columns are
    known before the parse (a crawl's or saved pages' fields, or `options.fields`), the tasks also stage the items
    as the table's rows, and those files are committed as they are (`Lakehouse.adopt`) when no sample id repeats
    and none is in the lakehouse already: the items are written once.
    """
    if skip_ingested:
        files = list_files(paths, patterns or PATTERNS[format]) if paths else []
        done = set()
        if lake.exists("ingested_files"):
            done = {r.path for r in lake.read("ingested_files").select("path").collect()}  # one row per file
        paths = [f for f in files if f not in done]
        if not paths:
            return {"files": 0, "skipped_files": len(files), "documents": 0, "text_items": 0, "image_items": 0,
                    "unique_images": 0, "quarantined": 0, "quarantine_reasons": {}, "absent_fields": []}
        if app_id is None:
            app_id, app_version = "ingest:" + hashlib.sha1("\n".join(paths).encode()).hexdigest()[:20], 0
    with parse(lake.spark, paths, format, options, patterns, staging=lake.scratch("ingest")) as result:
        items, images, quarantine, counts = result.items, result.images, result.quarantine, result.counts
        adopt = result.items_files  # the staged items, to commit as they are unless a sample is in the lakehouse
        if lake.exists("items"):
            existing = lake.read("items", version=lake.version("items")).select("sample_id").distinct()
            clash = items.join(existing, "sample_id", "left_semi")
            if adopt is None or not clash.where("position = -1").isEmpty():
                adopt, counts = None, None  # samples already in the lakehouse are left out: count what is written
                quarantine = quarantine.unionByName(
                    clash.where("position = -1").select(
                        F.get_json_object("source_ref", "$.path").alias("source"),
                        F.coalesce(F.get_json_object("source_ref", "$.member"), F.lit("")).alias("locator"),
                        F.lit(INGEST_STAGE).alias("stage"), F.lit("duplicate_sample_id").alias("reason"),
                        F.lit("sample id already in the lakehouse").alias("detail"), "sample_id",
                        F.lit(None).cast("string").alias("snippet"),
                    )
                )
                items = items.join(existing, "sample_id", "left_anti")
        txn = {"app_id": app_id, "app_version": app_version}
        info = {"step": "ingest", "format": format, "files": len(result.files)}
        absent = result.absent_fields() if adopt else None  # the adopted files leave the staging folder
        written, images = _append_new_images(lake, images, info, txn)
        lake.write(quarantine, "quarantine", mode="append", commit_info=info, **txn)
        if adopt:
            committed = lake.adopt(adopt, "items", items.schema, commit_info=info, **txn)
        else:
            committed = lake.write(items, "items", mode="append", commit_info=info, **txn)
        if skip_ingested:
            n = len(result.files)  # from Arrow: no pickled rows for the JVM to unpickle (a second on a new session)
            listed = lake.spark.createDataFrame(pa.table({"path": pa.array(result.files, pa.string()),
                                                          "format": pa.array([format] * n, pa.string()),
                                                          "items_version": pa.array([committed.version] * n, pa.int64())}))
            lake.write(listed, "ingested_files", mode="append", commit_info=info, **txn)
        new_images = 0 if written.skipped else written.rows_added
        done = IngestResult(items, images, quarantine, result.files, requested=result.requested, counts=counts)
        return done.summary(unique_images=new_images, absent=absent)


def materialize(lake: Lakehouse, table: str = "items", only_missing_binary: bool = True,
                retry_errors: bool = False) -> dict:
    """Read the bytes of `table`'s lazy image items (ingested with `materialize_on_read=False`, or whose read
    failed) from their `source_ref`, store the new images and commit `table` with their `image_id` or
    `materialize_error`. Resumable: items that failed are skipped unless retry_errors; a rerun with nothing
    to read commits nothing. Returns counts (tried, materialized, failed per reason, new images).

    Images are committed before `table`, so items never reference an image the lakehouse lacks. The table is
    rewritten in one commit (Delta keeps the previous version readable).
    """
    from mmcurate.io.materialize import materialize_images

    version = lake.version(table)
    with materialize_images(lake.read(table, version=version), only_missing_binary, retry_errors,
                            staging=lake.scratch("materialize")) as done:
        return _commit_materialized(lake, table, version, done, "materialize")


def fetch(lake: Lakehouse, table: str = "items", options=None, retry_errors: Union[bool, str] = False) -> dict:
    """Download the bytes of `table`'s URL-only image items (docs/fetch.md), each distinct URL once, store the
    new images and commit `table` with their `image_id` or `materialize_error` ("<status>: <detail>").
    Resumable: fetched URLs have an image_id; failures are retried with retry_errors=True, except permanent ones
    (http_404, http_410, denied, not_an_image, too_big, decompression_bomb) which only retry_errors="all" retries.
    Returns counts (tried items, distinct urls, materialized, failed per status, new images)."""
    from mmcurate.io.fetch import FetchOptions, fetch_images

    version = lake.version(table)
    with fetch_images(lake.read(table, version=version), options or FetchOptions(), retry_errors,
                      staging=lake.scratch("fetch")) as done:
        return _commit_materialized(lake, table, version, done, "fetch")


def _commit_materialized(lake: Lakehouse, table: str, version: int, done, step: str) -> dict:
    """Commit what materialize or fetch read from `table` at `version`: new images first, then `table`; nothing
    when nothing was tried. Returns the counts with new_images and the table's version."""
    counts = done.counts()
    if not counts["tried"]:
        return {**counts, "new_images": 0, "version": version}
    info = {"step": step, "table": table, "read": {table: version}, **counts}
    images = done.images
    if lake.exists("images"):
        images = images.join(lake.read("images", version=lake.version("images")).select("image_id"),
                             "image_id", "left_anti")
    written = lake.write(images, "images", mode="append", commit_info=info)
    result = lake.write(done.items, table, mode="overwrite", commit_info=info)
    return {**counts, "new_images": written.rows_added, "version": result.version}


INGEST_COMMIT_ATTEMPTS = 5


def _append_new_images(lake: Lakehouse, images: DataFrame, info: dict, txn: dict) -> tuple[Any, DataFrame]:
    """Append the images `images` has that the lakehouse lacks, committed only on the version they were checked
    against: when a concurrent ingest added images meanwhile, check again (a content-addressed table must never
    hold an image twice). Returns the write result and the images appended."""
    for attempt in range(INGEST_COMMIT_ATTEMPTS):
        version = lake.version("images") if lake.exists("images") else -1
        new = images
        if version >= 0 and not has_no_rows(images):
            new = images.join(lake.read("images", version=version).select("image_id"), "image_id", "left_anti")
        try:
            return lake.write(new, "images", mode="append", commit_info=info, expected_version=version, **txn), new
        except CommitConflictError:
            if attempt == INGEST_COMMIT_ATTEMPTS - 1:
                raise
            time.sleep(0.2 * (attempt + 1))


@dataclass(frozen=True)
class Annotated:
    """What `annotate` did for one stage: appended new keys, rebuilt the table, or found nothing to do."""

    stage: str
    table: str
    action: str  # "append" | "overwrite" | "up_to_date"
    rows_added: int
    version: Optional[int]
    reason: str

    def as_dict(self) -> dict:
        return asdict(self)


def newest_commit(lake: Lakehouse, table: str, step: str, **fields: Any) -> Optional[dict]:
    """What the newest commit of `table` by `step` (with these field values) recorded, or None."""
    if not lake.exists(table):
        return None
    found = lake.newest_commit_info(
        table, lambda info: info.get("step") == step and all(info.get(k) == v for k, v in fields.items()))
    return found[1] if found else None


def stage_info(lake: Lakehouse, table: str) -> Optional[dict]:
    """What the newest annotate commit of `table` recorded (stage, version, params, key, fingerprint), or None."""
    return newest_commit(lake, table, "annotate")


def rebuilt_at(lake: Lakehouse, table: str) -> Optional[int]:
    """The version at which an annotate stage last rebuilt (overwrote) `table`; None for tables no stage rebuilt."""
    if not lake.exists(table):
        return None
    found = lake.newest_commit_info(
        table, lambda info: info.get("step") == "annotate" and info.get("action") == "overwrite")
    return found[0] if found else None


def annotate(lake: Lakehouse, stages: Iterable[StageSpec], recipes: Iterable[Union[Recipe, str]] = ()) -> list[Annotated]:
    """Run each stage on the keys its table lacks, and append their rows in one idempotent commit per stage.

    recipes: the recipes the tables are for. An on-demand stage (`Stage.on_demand`: QR detection, a model score)
    then computes only the rows these recipes' earlier rules keep (`Recipe.reaching`), after the stages those
    rules read; rows no recipe needs are left without a row ("not computed"), and a later, looser recipe
    computes just the rows it adds. Without recipes, or when a recipe reads the stage at sample level, or
    another stage reads its table, it computes every row.

    A table written by another version or other parameters of the stage is rebuilt from scratch
    (its rows would not be comparable); otherwise only input rows whose key has no row yet are
    computed (an anti-join on the key, or on `increment_by`), so a rerun with no new data computes
    nothing. Tables a stage `joins` are read at their current version too. When a table it reads was
    rebuilt (another model, other parameters) since this table was written, the table is rebuilt. A stage that is not
    `incremental` (copy counts, duplicate clusters) is recomputed whole when its input table has a
    new version, and skipped otherwise. Stages run in the order given, so a stage reading another
    stage's table comes after it. The commit records the stage's name, version, parameters, key
    and resources, and the input version it read.
    """
    done, cached = [], []
    recipes = [r if isinstance(r, Recipe) else Recipe.from_yaml(r) for r in recipes]
    stages = _demand_order([spec if isinstance(spec, Stage) else build_stage(spec) for spec in stages])
    fusion = _fusion(lake, stages, recipes)
    try:
        for stage in stages:
            if fusion and stage is fusion.first:
                done.extend(_annotate_fused(lake, fusion, cached))
            elif not (fusion and stage is fusion.then):
                done.append(_annotate_stage(lake, stage, recipes, cached))
    finally:
        for df in cached:
            df.unpersist()
    return done


def _annotate_stage(lake: Lakehouse, stage: Stage, recipes: list[Recipe], cached: list[DataFrame]) -> Annotated:
    """Run one stage of `annotate` (which see); frames it caches are added to `cached` for the caller to release."""
    if not lake.exists(stage.input):
        maker = f" (run the stage {stage.input!r} first)" if stage.input in STAGES else ""
        raise ValueError(f"stage {stage.name!r} reads table {stage.input!r}, which the lakehouse lacks{maker}")
    absent = [name for name in stage.joins if not lake.exists(name)]
    if absent:
        raise ValueError(f"stage {stage.name!r} also reads {absent}, which the lakehouse lacks "
                         f"(run the stages that make them first)")
    input_version = lake.version(stage.input)
    source = lake.read(stage.input, version=input_version)  # the version the commit will record
    join_versions = {name: lake.version(name) for name in stage.joins}
    joined = {name: lake.read(name, version=v) for name, v in join_versions.items()}
    recorded = stage_info(lake, stage.table)
    key = list(stage.increment_by or stage.key)
    # when the tables it reads were last rebuilt: a table rebuilt since this one was written means rebuild here
    upstream = {name: rebuilt_at(lake, name) for name in (stage.input, *stage.joins)}
    rebuilt = recorded is not None and (recorded.get("upstream") or dict.fromkeys(upstream)) != upstream
    same = recorded is not None and recorded.get("fingerprint") == stage.fingerprint and not rebuilt
    unchanged = same and recorded.get("input_version") == input_version and (
        recorded.get("joins") or {}) == join_versions
    if unchanged and not stage.incremental:
        return Annotated(stage.name, stage.table, "up_to_date", 0, lake.version(stage.table),
                         f"input {stage.input} still at version {input_version}")
    existing = None  # the keys the table has, for an append
    if same and stage.incremental:
        action, reason, todo = "append", "new keys", stage.scope(source, **joined)
        existing = lake.read(stage.table).select(*key).distinct()
    elif same:
        action, reason, todo = "overwrite", f"input {stage.input} changed (version {input_version})", source
    elif rebuilt and recorded.get("fingerprint") == stage.fingerprint:
        action, reason, todo = "overwrite", "a table it reads was rebuilt", source
    elif lake.exists(stage.table):
        action, reason = "overwrite", (
            f"table was written by {recorded.get('stage')} version {recorded.get('version')} with "
            f"{recorded.get('params')}" if recorded else "table has no annotate record")
        todo = source
    else:
        action, reason, todo = "overwrite", "new table", source
    needed, demand = _demanded(lake, stage, recipes)
    if needed is not None:
        if existing is not None and key == list(stage.key):
            needed, existing = needed.join(existing, key, "left_anti"), None  # the demanded keys still without a row
        # cached with its real size, so while the keys are few the input is filtered by a broadcast join where it
        # lies (image bytes are never shuffled to meet them)
        cached.append(needed.persist(StorageLevel.MEMORY_AND_DISK))
        if not needed.count() and action == "append":
            return Annotated(stage.name, stage.table, "up_to_date", 0, lake.version(stage.table),
                             "every key already has a row")
        todo, reason = todo.join(needed, list(stage.key), "left_semi"), f"{reason}, as {demand} need"
    if existing is not None:
        todo = todo.join(existing, key, "left_anti")
        if todo.select(*key).isEmpty():
            return Annotated(stage.name, stage.table, "up_to_date", 0, lake.version(stage.table),
                             "every key already has a row")
    info = _annotate_info(stage, input_version, join_versions, upstream, action, demand)
    # Idempotent commits: an append is keyed by the input versions it covers (a rerun over the same inputs,
    # or rows that give no output, commits nothing); a rebuild by the table version it replaces (so going
    # back to earlier parameters rebuilds again, and a concurrent twin of this run is skipped).
    if action == "append" and needed is not None:  # the same inputs, a looser recipe: more rows to add
        app_id, app_version = "demand", lake.version(stage.table) + 1
    elif action == "append":
        app_id, app_version = "append", input_version + sum(join_versions.values())
    else:
        app_id, app_version = "rebuild", lake.version(stage.table) + 1 if lake.exists(stage.table) else 0
    with session_conf(lake.spark, stage.spark_conf):
        written = lake.write(stage(todo, **joined), stage.table, mode=action, commit_info=info,
                             app_id=f"mmcurate.annotate.{stage.name}.{stage.fingerprint}.{app_id}",
                             app_version=app_version)
    if written.skipped:
        action, reason = "up_to_date", written.reason or "already committed"
    return Annotated(stage.name, stage.table, action, written.rows_added or 0, written.version, reason)


def _annotate_info(stage: Stage, input_version: int, joins: dict, upstream: dict, action: str,
                   demand: Optional[list]) -> dict:
    """What an annotate commit records: the stage (`describe`), the versions it read, how, and for which recipes."""
    return {"step": "annotate", **stage.describe(), "input": stage.input, "input_version": input_version,
            "joins": joins, "upstream": upstream, "action": action, "demand": demand}


@dataclass(frozen=True)
class _Fusion:
    """Two per-image stages scored in one pass: `then` (on demand) on the images whose `first` signals pass
    `wanted`, from the pixels `first` decoded; `demand` names the recipes that need `then` (None: every row)."""

    first: PerImageStage
    then: PerImageStage
    wanted: Callable[[dict], bool]
    demand: Optional[list]


def _fusion(lake: Lakehouse, stages: list[Stage], recipes: list[Recipe]) -> Optional[_Fusion]:
    """A first run of an on-demand per-image stage (QR) with a per-image stage it can follow in one decode
    (`image_scores`): both tables absent, and the recipe rules narrowing the on-demand stage testable on the
    other's values alone (`Rule.row_test`). Otherwise None, and each stage runs on its own."""
    for then in stages:
        if not (then.on_demand and isinstance(then, PerImageStage)) or lake.exists(then.table):
            continue
        for first in stages:
            if first is then or first.on_demand or not isinstance(first, PerImageStage) or lake.exists(first.table):
                continue
            same_input = (first.input, first.key, first.max_pixels) == (then.input, then.key, then.max_pixels)
            if not same_input or set(first.schema.names[1:]) & set(then.schema.names[1:]):
                continue
            found = _row_demand(lake, first, then, recipes)
            if found is not None:
                return _Fusion(first, then, *found)
    return None


def _row_demand(lake: Lakehouse, first: PerImageStage, then: PerImageStage,
                recipes: list[Recipe]) -> Optional[tuple[Callable[[dict], bool], Optional[list]]]:
    """What `_demanded` would narrow `then` to, as a test of one image's `first` signals (and the recipes that
    need it). Each rule before the first reading `then` must be an image rule testable on `first`'s columns (a
    superset: images only invalid items use are scored too); None when one is not."""
    narrowing = _narrowing(lake, then, recipes)
    if not narrowing:
        return (lambda row: True), None
    columns = _own_columns(then)
    testable = {n.lower() for n in first.schema.names[1:]} - {c.lower() for c in lake.read("items").columns}
    tests = []
    for recipe in narrowing:
        reading = [i for i, rule in enumerate(recipe.rules) if rule.columns() & columns]
        if any(recipe.rules[i].level != "image" for i in reading):
            return None
        found = [rule.row_test(testable) for rule in recipe.rules[:min(reading)] if rule.level == "image"]
        if any(test is None for test in found):
            return None
        tests.append(found)
    return (lambda row: any(all(test(row) for test in found) for found in tests)), [r.name for r in narrowing]


def _annotate_fused(lake: Lakehouse, fusion: _Fusion, cached: list[DataFrame]) -> list[Annotated]:
    """Write both new tables of a fusion from one pass over the input, committed as their own stages would be."""
    first, then = fusion.first, fusion.then
    input_version = lake.version(first.input)
    source = require_columns(lake.read(first.input, version=input_version), first.reads, where=type(first).__name__)
    upstream = {first.input: rebuilt_at(lake, first.input)}
    scored = fused_scores(source, first, then, fusion.wanted).persist(StorageLevel.MEMORY_AND_DISK)  # no bytes
    cached.append(scored)
    done = []
    for stage, rows, demand in ((first, scored, None), (then, scored.where(F.col(FUSED_FLAG)), fusion.demand)):
        info = _annotate_info(stage, input_version, {}, upstream, "overwrite", demand)
        with session_conf(lake.spark, stage.spark_conf):
            written = lake.write(rows.select(*[F.col(f"`{f.name}`") for f in stage.schema.fields]), stage.table,
                                 mode="overwrite", commit_info=info, app_version=0,
                                 app_id=f"mmcurate.annotate.{stage.name}.{stage.fingerprint}.rebuild")
        if written.skipped:
            action, reason = "up_to_date", written.reason or "already committed"
        else:
            action = "overwrite"
            reason = "new table" + (f", as {demand} need" if demand else "") + f" (one decode with {first.name})"
        done.append(Annotated(stage.name, stage.table, action, written.rows_added or 0, written.version, reason))
    return done


def _demand_order(stages: list[Stage]) -> list[Stage]:
    """`stages` in their order, but on-demand ones (and stages reading their tables) last: the recipe rules that
    narrow an on-demand stage read the other stages' tables."""
    late = {s.table for s in stages if s.on_demand}
    for stage in stages:  # inputs come first, so one pass finds what reads a late table
        if {stage.input, *stage.joins} & late:
            late.add(stage.table)
    return [s for s in stages if s.table not in late] + [s for s in stages if s.table in late]


def _demanded(lake: Lakehouse, stage: Stage, recipes: list[Recipe]) -> tuple[Optional[DataFrame], Optional[list]]:
    """The keys an on-demand `stage` must compute for `recipes` (what reaches their first rule reading it) and the
    recipes that need it; (None, None) when it computes every row (see `annotate`)."""
    narrowing = _narrowing(lake, stage, recipes)
    if not narrowing:
        return None, None
    items, columns = lake.read("items"), _own_columns(stage)
    needed = [r.reaching(items, signal_tables(lake, r), columns).select(*stage.key) for r in narrowing]
    return reduce(DataFrame.unionByName, needed).distinct(), [r.name for r in narrowing]


def _narrowing(lake: Lakehouse, stage: Stage, recipes: list[Recipe]) -> list[Recipe]:
    """The recipes narrowing an on-demand `stage` to what reaches their first rule reading it; none (every row)
    without recipes, when another stage reads its table, when `items` lacks its key, when a sample rule reads it
    (a sample rule sees every item of its samples), or when no recipe reads it (asked for by name)."""
    readers = [s.name for s in STAGES.values() if stage.table in (s.input, *s.joins)]
    if not stage.on_demand or not recipes or readers or not set(stage.key) <= set(lake.read("items").columns):
        return []
    columns = _own_columns(stage)
    reading = [r for r in recipes if any(rule.columns() & columns for rule in r.rules)]
    if any(rule.level == "sample" and rule.columns() & columns for r in reading for rule in r.rules):
        return []
    return reading


def _own_columns(stage: Stage) -> set[str]:
    """The columns a stage's table has besides its key, lower-cased as rules' words are."""
    return {f.name.lower() for f in stage.schema.fields} - {k.lower() for k in stage.key}


def stages_for(recipe: Union[Recipe, str], configured: Iterable[Stage] = ()) -> list[Stage]:
    """The catalogued annotate stages that make the columns `recipe`'s rules read, with the tables they read.

    Stages come with their default parameters unless `configured` holds one of the same name (a
    model stage has no default model: it must be configured, else a RecipeError says which)."""
    recipe = recipe if isinstance(recipe, Recipe) else Recipe.from_yaml(recipe)
    needed = set()
    for rule in recipe.rules:
        for word in rule.columns():
            for key in LEVEL_KEYS[rule.level]:
                stage = stage_for_column(word, key)
                if stage is not None:
                    needed.add(stage.name)
    grew = True
    while grew:  # a stage reading another stage's table needs that stage too
        inputs = {t for name in needed for t in (STAGES[name].input, *STAGES[name].joins)} & set(STAGES)
        grew = not inputs <= needed
        needed |= inputs
    configured = {stage.name: stage for stage in configured}
    unset = sorted(name for name in needed if name not in configured and STAGES[name].needs_parameters())
    if unset:
        raise RecipeError(
            f"recipe {recipe.name!r} reads stages that need parameters: "
            + "; ".join(f"{n} ({', '.join(STAGES[n].needs_parameters())})" for n in unset)
            + ". Give them as stages in the annotate config")
    # the catalogue lists inputs first
    return [configured.get(name) or cls() for name, cls in STAGES.items() if name in needed]


def signal_tables(lake: Lakehouse, recipe: Optional[Union[Recipe, Mix]] = None) -> list[SignalTable]:
    """Every lakehouse table a recipe (or a mix) can join: those an annotate stage recorded a key for, and those
    it names with their key (`tables:` in its YAML)."""
    named = dict(recipe.tables) if recipe else {}
    present = set(lake.tables())
    missing = sorted(set(named) - present)
    if missing:
        raise RecipeError(f"recipe {recipe.name!r} names tables the lakehouse lacks: {missing}")
    found = []
    for name in sorted(present - set(CORE_TABLES)):
        info = stage_info(lake, name) if name not in named else None
        key = named.get(name) or (info or {}).get("key")
        if key:
            found.append(SignalTable(name, tuple(key), lake.read(name), on_demand=bool((info or {}).get("on_demand"))))
    return found


def select(lake: Lakehouse, recipe: Union[Recipe, str], curated_table: str = "curated_items") -> Selection:
    """Apply `recipe` to `items` with the signal tables already in the lakehouse; write the curated items and
    replace this recipe's rows of `drops` (other recipes' rows stay).

    Nothing is computed here: a rule reading a column no table has fails before any job, naming
    the annotate stage that makes it. Returns the Selection with `curated` and `drops` read back
    and `summary` in memory; the commits record the recipe and the versions of the tables read.
    """
    recipe = recipe if isinstance(recipe, Recipe) else Recipe.from_yaml(recipe)
    items = lake.read("items")
    tables = signal_tables(lake, recipe)
    info = _select_info(lake, recipe, items, tables)
    selection = recipe.apply(items, tables).persist()
    try:
        if any(t.on_demand for level in recipe.plan(items, tables).values() for t, _ in level):
            _refuse_not_computed(recipe, selection)
        lake.write(selection.curated, curated_table, mode="overwrite", commit_info=info)
        lake.write(selection.drops, "drops", mode="overwrite", replace_where={"recipe": recipe.name}, commit_info=info)
        summary = lake.spark.createDataFrame(selection.summary.collect(), selection.summary.schema)
    finally:
        selection.unpersist()
    drops = lake.read("drops").where(F.col("recipe") == recipe.name)
    return replace(selection, curated=lake.read(curated_table), drops=drops, summary=summary)


def _refuse_not_computed(recipe: Recipe, selection: Selection) -> None:
    """Raise when a rule reached items whose on-demand score was never computed: that is no verdict to record."""
    missing = selection.drops.where(F.col("reason") == NOT_COMPUTED).groupBy("rule").count().collect()
    if missing:
        counts = ", ".join(f"{r['count']} at rule {r['rule']!r}" for r in missing)
        raise RecipeError(
            f"recipe {recipe.name!r} reaches items whose on-demand scores were not computed ({counts}): annotate "
            f"for this recipe first (steps.annotate(..., recipes=[{recipe.name!r}]) or mmcurate annotate --recipe)")


def _select_info(lake: Lakehouse, recipe: Recipe, items: DataFrame, tables: list[SignalTable]) -> dict:
    """What a select commit records: the recipe (name, version, a fingerprint of its rules) and the versions of
    the tables it reads."""
    plan = recipe.plan(items, tables)
    read = sorted({t.name for level in plan.values() for t, _ in level})
    return {"step": "select", "recipe": recipe.name, "recipe_version": recipe.version,
            "fingerprint": fingerprint(recipe), "read": {name: lake.version(name) for name in ["items", *read]}}


def fingerprint(spec: Any) -> str:
    """A short hash of a recipe's or mix's full definition: an edit without a version bump still counts."""
    return hashlib.sha1(repr(spec).encode()).hexdigest()[:16]


def select_is_current(lake: Lakehouse, recipe: Union[Recipe, str], curated_table: str = "curated_items") -> bool:
    """True when `curated_table` was last written by this recipe (same definition) from the table versions it
    would read now: selecting again would write the same rows."""
    recipe = recipe if isinstance(recipe, Recipe) else Recipe.from_yaml(recipe)
    last = newest_commit(lake, curated_table, "select")
    if last is None or not lake.exists("items"):
        return False
    return last == {**last, **_select_info(lake, recipe, lake.read("items"), signal_tables(lake, recipe))}


def mix_is_current(lake: Lakehouse, spec: Union[Mix, str]) -> bool:
    """True when this mix (same definition) was last planned from the table versions it would read now."""
    spec = spec if isinstance(spec, Mix) else Mix.from_yaml(spec)
    last = newest_commit(lake, "mix_samples", "mix", mix=spec.name)
    return last is not None and lake.exists(spec.table) and \
        last == {**last, **_mix_info(lake, spec, signal_tables(lake, spec))}


def _mix_info(lake: Lakehouse, spec: Mix, tables: list[SignalTable]) -> dict:
    """What a mix commit records: the mix (name, version, fingerprint), its table and the versions read."""
    read = {name: lake.version(name) for name in [spec.table, "images", *(t.name for t in tables)]}
    return {"step": "mix", "mix": spec.name, "mix_version": spec.version, "fingerprint": fingerprint(spec),
            "table": spec.table, "read": read}


@dataclass(frozen=True)
class Mixed:
    """What `mix` wrote: this mix's rows of `mix_samples` and `mix_report`, and the report's totals."""

    samples: DataFrame
    report: DataFrame
    totals: dict
    chart: Optional[str] = None


def mix(lake: Lakehouse, spec: Union[Mix, str], chart: Optional[str] = None) -> Mixed:
    """Apply a mix to its curated table: replace this mix's rows of `mix_samples` (one per sample or part, with
    its repeats) and `mix_report` (per bucket, before and after); other mixes' rows stay. `chart`: a PNG
    path for the report's chart. The commits record the mix and the versions of the tables read."""
    spec = spec if isinstance(spec, Mix) else Mix.from_yaml(spec)
    if not lake.exists(spec.table):
        raise MixError(f"mix {spec.name!r} draws from table {spec.table!r}, which the lakehouse lacks "
                       f"(run `mmcurate select` first, or set table: in the mix)")
    tables = signal_tables(lake, spec)
    info = _mix_info(lake, spec, tables)
    read = info["read"]
    planned = plan_mix(spec, lake.read(spec.table, version=read[spec.table]),
                       lake.read("images", version=read["images"]), tables)
    lake.write(planned, "mix_samples", mode="overwrite", replace_where={"mix": spec.name}, commit_info=info)
    samples = lake.read("mix_samples").where(F.col("mix") == spec.name)
    lake.write(mix_report(samples, spec.dimensions), "mix_report", mode="overwrite",
               replace_where={"mix": spec.name}, commit_info=info)
    report = lake.read("mix_report").where(F.col("mix") == spec.name)
    rows = [row.asDict() for row in report.collect()]  # one row per bucket
    totals = next((r for r in rows if r["dimension"] == "total"), {})
    return Mixed(samples, report, {k: v for k, v in totals.items() if k not in ("mix", "dimension", "bucket")},
                 plot_report(rows, chart) if chart else None)


def merge_image_duplicates(lake: Lakehouse, table: str = "items", out: str = "merged_items") -> dict:
    """Merge samples of `table` that share their images into one sample each (`dedup.merge`), write `out`, and
    put what does not carry over in `drops` under the recipe `merge_image_duplicates`. Returns counts."""
    from mmcurate.dedup.merge import MERGE_RECIPE, merge_samples_sharing_images

    merged, folded = merge_samples_sharing_images(lake.read(table))
    info = {"step": "merge", "table": table, "read": {table: lake.version(table)}}
    lake.write(merged, out, mode="overwrite", commit_info=info)
    lake.write(folded, "drops", mode="overwrite", replace_where={"recipe": MERGE_RECIPE}, commit_info=info)
    merged_samples = lake.read(out).where("merged_from != sample_id").select("sample_id").distinct().count()
    return {"items_in": lake.read(table).count(), "items_out": lake.read(out).count(),
            "folded": lake.read("drops").where(F.col("recipe") == MERGE_RECIPE).count(),
            "samples_receiving_texts": merged_samples}


def view(lake: Lakehouse, out: str, view: Optional[View] = None, **options: Any) -> str:
    """Write one static HTML page of a recipe's kept and dropped documents to `out` and return it (docs/viewer.md).

    options are `mmcurate.viewer.View` fields (recipe, rule, cluster, samples, seed, ...) over `view`.
    The recipe defaults to the one whose select last wrote `curated_table`; its rows of `drops` give
    the per-rule counts and the dropped documents, and the signal tables its rules read give the
    scores shown. Reads tables only; a lakehouse not selected yet is a ViewerError saying so.
    """
    view = replace(view or View(), **options)
    absent = [name for name in ("items", "drops") if not lake.exists(name)]
    if absent:
        raise ViewerError(f"the lakehouse has no {' or '.join(absent)} table: nothing was selected yet "
                          f"(run `mmcurate select --recipe NAME` first)")
    name, recipe, table, info = _viewed_recipe(lake, view)
    items = lake.read("items", version=info["read"]["items"]) if "items" in info.get("read", {}) else lake.read("items")
    notes, plan, checks = [], None, ()
    if recipe is None:
        notes.append(f"recipe {name!r} is neither packaged nor a file here, so no scores are shown "
                     "(pass its YAML with --recipe)")
    else:
        checks = (VALID_ITEM, *(rule.name for rule in recipe.rules), EMPTY_AFTER_FILTERING)
        try:
            plan = recipe.plan(items, signal_tables(lake, recipe))
        except RecipeError as e:
            notes.append(f"scores are not shown: {e}")
    clusters = None
    if lake.exists(view.cluster_table):
        clusters = require_columns(lake.read(view.cluster_table), ["sample_id", view.cluster_column],
                                   where=f"table {view.cluster_table}")
        clusters = clusters.select("sample_id", F.col(view.cluster_column).cast("string").alias("cluster"))
    elif view.cluster is not None:
        raise ViewerError(f"cluster {view.cluster!r} was asked for, but the lakehouse has no table "
                          f"{view.cluster_table!r} (run `mmcurate annotate --stages clusters` first)")
    inputs = ViewInputs(items=items, images=lake.read("images"), curated=lake.read(table),
                        drops=lake.read("drops").where(F.col("recipe") == name), recipe=name,
                        recipe_version=info.get("recipe_version"), curated_table=table, rules=checks, plan=plan,
                        clusters=clusters, notes=tuple(notes))
    return render_view(inputs, out, view)


def _viewed_recipe(lake: Lakehouse, view: View) -> tuple[str, Optional[Recipe], str, dict]:
    """(recipe name, the Recipe if it loads, the table holding its kept items, that table's select record)."""
    recipe, name = None, view.recipe
    if name is not None and (Path(name).is_file() or name in packaged_recipes()):
        recipe = Recipe.from_yaml(name)
        name = recipe.name
    table, info = view.curated_table, newest_commit(lake, view.curated_table, "select")
    if name is None and info is None:
        raise ViewerError(f"table {view.curated_table!r} was not written by `mmcurate select`: run "
                          "`mmcurate select --recipe NAME` first, or name the recipe and its curated table")
    name = name or info["recipe"]
    if info is None or info.get("recipe") != name:  # its kept items may be in another curated table
        found = ((t, newest_commit(lake, t, "select")) for t in sorted(set(lake.tables()) - {table, "drops"}))
        table, info = next(((t, i) for t, i in found if i and i.get("recipe") == name), (None, None))
    if table is None:
        raise ViewerError(f"no table holds the items recipe {name!r} kept (no select of it wrote a table that still "
                          f"has them): run `mmcurate select --recipe {name}` first")
    if recipe is None and name in packaged_recipes():
        recipe = Recipe.from_yaml(name)
    return name, recipe, table, info


def export(
    lake: Lakehouse, out: str, format: str = "webdataset", table: str = "curated_items", mix: Optional[str] = None,
    **options: Any,
) -> Optional[DataFrame]:
    """Write `table`'s items with their image bytes as WebDataset shards (returns the manifest) or NeMo Parquet.

    mix: export that mix's training set instead (WebDataset only): the parts that train, each `repeats`
    times, shuffled across and within shards (seeded), from the table version the mix read. The
    shards' `manifest.json` records the lineage: the recipe that made the table, the mix, every
    table version read and the token totals. options go to `write_webdataset` (samples_per_shard,
    shard_bytes, prefix, seed, shuffle, resume, overwrite) or `write_parquet` (rows_per_file, compression,
    overwrite).
    """
    from mmcurate.io.parquet_writer import write_parquet
    from mmcurate.io.webdataset_writer import write_webdataset

    if format not in ("webdataset", "parquet"):
        raise ValueError(f"format must be 'webdataset' or 'parquet', got {format!r}")
    if mix is not None:
        if format != "webdataset":
            raise ValueError("a mix is exported as WebDataset (its repeats are copies of samples)")
        mixed = _mix_record(lake, mix)
        table, version = mixed["table"], mixed["read"][mixed["table"]]
        samples = lake.read("mix_samples").where(F.col("mix") == mix)
        items, repeats = mixed_items(lake.read(table, version=version), samples)
        options = {"shuffle": True, **options}
    else:
        version = lake.version(table)
        items, repeats = lake.read(table, version=version), None
    images_version = lake.version("images")
    images = lake.read("images", version=images_version)
    if format == "parquet":
        write_parquet(items, images, out, **options)
        return None
    lineage = {"table": table, "versions": {table: version, "images": images_version},
               "selected_by": _select_record(lake, table)}
    if mix is not None:
        lineage["mix"] = {k: mixed[k] for k in ("mix", "mix_version", "read")}
        lineage["versions"]["mix_samples"] = lake.version("mix_samples")
        totals = lake.read("mix_report").where((F.col("mix") == mix) & (F.col("dimension") == "total")).first()
        lineage["tokens"] = {k: totals[k] if totals else 0 for k in (
            "samples_after", "text_tokens_after", "images_after", "image_tokens_after")}
    return write_webdataset(items, images, out, repeats=repeats, lineage=lineage, **options)


def _mix_record(lake: Lakehouse, mix: str) -> dict:
    """What the newest `mix` commit of this mix recorded (table, versions read); an error if it never ran."""
    info = newest_commit(lake, "mix_samples", "mix", mix=mix)
    if info is None:
        raise MixError(f"no mix named {mix!r} in this lakehouse: run `mmcurate mix --mix {mix}` first")
    return info


def _select_record(lake: Lakehouse, table: str) -> Optional[dict]:
    """The recipe, its version and the table versions of the `select` that last wrote `table`, if one did."""
    info = newest_commit(lake, table, "select")
    return {k: info.get(k) for k in ("recipe", "recipe_version", "read")} if info else None
