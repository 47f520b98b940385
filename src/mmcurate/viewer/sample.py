"""What the viewer samples, with Spark: per-rule counts over the ledger and a bounded, seeded set of documents.

Only bounded results reach the driver: one row per rule, the chosen sample ids (at most `samples` per
rule plus `samples` kept ones) and their items (at most `max_items` each, texts cut to `max_chars`),
with thumbnails made in the executors.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Optional

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from mmcurate.schema import is_modality
from mmcurate.viewer.page import Document, Drop, Item, Page, RuleCount
from mmcurate.viewer.thumbnails import thumbnail_uri


class ViewerError(ValueError):
    """The lakehouse lacks what a view needs (no selection yet, no clusters table, an unknown rule or recipe)."""


@dataclass(frozen=True)
class View:
    """What a page shows: the recipe's kept and dropped documents, `samples` per rule, seeded.

    recipe: a recipe name (or YAML path); None takes the one that wrote `curated_table`.
    rule: restrict the dropped documents to this rule (and preselect its filter).
    cluster: restrict every document to this value of `cluster_table.cluster_column` (k-means
    `clusters` by default; `near_duplicate_documents` / `minhash_cluster` shows a dedup cluster).
    """

    recipe: Optional[str] = None
    curated_table: str = "curated_items"
    rule: Optional[str] = None
    cluster: Optional[str] = None
    samples: int = 8
    seed: int = 0
    thumbnail_px: int = 256
    max_items: int = 60
    max_chars: int = 1500
    cluster_table: str = "clusters"
    cluster_column: str = "cluster"

    def __post_init__(self):
        for name in ("samples", "thumbnail_px", "max_items", "max_chars"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ViewerError(f"{name} must be a positive integer, got {getattr(self, name)!r}")


@dataclass(frozen=True)
class ViewInputs:
    """The DataFrames a view reads (`steps.view` reads them from the lakehouse) and what the recipe is.

    drops: this recipe's ledger rows. rules: the recipe's checks in ledger order (empty when the
    recipe could not be loaded). plan: `Recipe.plan`, per level the signal tables and columns its
    rules read; their values are shown next to each item. clusters: (sample_id, cluster) or None.
    """

    items: DataFrame
    images: DataFrame
    curated: DataFrame
    drops: DataFrame
    recipe: str
    recipe_version: Optional[str]
    curated_table: str
    rules: tuple[str, ...] = ()
    plan: Optional[dict] = None
    clusters: Optional[DataFrame] = None
    notes: tuple[str, ...] = ()


def sample_page(inputs: ViewInputs, view: View) -> Page:
    """Count the ledger per rule, pick the documents and gather their items: the page's data."""
    drops, curated = inputs.drops, inputs.curated
    if view.cluster is not None:
        if inputs.clusters is None:
            raise ViewerError(f"cluster {view.cluster!r} was asked for, but no clusters table was given")
        members = inputs.clusters.where(F.col("cluster") == F.lit(str(view.cluster))).select("sample_id")
        drops, curated = drops.join(members, "sample_id", "left_semi"), curated.join(members, "sample_id", "left_semi")
    counts, dropped = _rule_counts(drops, inputs.rules)
    known = [c.rule for c in counts]
    if view.rule is not None and view.rule not in known:
        raise ViewerError(f"rule {view.rule!r} is not a rule of recipe {inputs.recipe!r}; its rules: {known}")
    kept = curated.agg(F.countDistinct("sample_id").alias("documents"), F.count(F.lit(1)).alias("items")).first()
    chosen = _pick(drops, curated, view)
    documents = _documents(inputs, drops, chosen, view, known)
    return Page(inputs.recipe, inputs.recipe_version, inputs.curated_table, tuple(counts), kept["documents"],
                kept["items"], dropped, documents, view.rule,
                None if view.cluster is None else str(view.cluster), inputs.notes)


def _rule_counts(drops: DataFrame, rules: tuple[str, ...]) -> tuple[list[RuleCount], int]:
    """Ledger rows and distinct documents per rule, in the recipe's order with 0 for its rules that dropped nothing,
    and the distinct documents over all rules: one Spark aggregation (a rollup), one row per rule to the driver."""
    found, documents = {}, 0
    for r in drops.rollup("rule").agg(F.grouping("rule").alias("all"), F.count(F.lit(1)).alias("items"),
                                      F.countDistinct("sample_id").alias("documents")).collect():
        if r["all"]:
            documents = r["documents"]
        else:
            found[r["rule"]] = RuleCount(r["rule"], r["items"], r["documents"])
    order = list(rules) + sorted(set(found) - set(rules))
    return [found.get(rule, RuleCount(rule, 0, 0)) for rule in order], documents


def _hash(seed: int) -> Column:
    return F.xxhash64(F.col("sample_id"), F.lit(seed))


def _pick(drops: DataFrame, curated: DataFrame, view: View) -> list[tuple[str, str]]:
    """(side, sample_id) of the documents shown, in page order: the `samples` kept documents and, per rule, the
    `samples` dropped ones with the smallest seeded hash. The per-rule top-k is a row_number filter, which Spark
    plans as a group limit before the shuffle; only the chosen ids reach the driver."""
    kept = curated.select("sample_id").distinct().orderBy(_hash(view.seed), "sample_id").limit(view.samples)
    pairs = drops if view.rule is None else drops.where(F.col("rule") == view.rule)
    ranked = pairs.select("rule", "sample_id").distinct().withColumn(
        "_rank", F.row_number().over(Window.partitionBy("rule").orderBy(_hash(view.seed), "sample_id")))
    dropped = ranked.where(F.col("_rank") <= view.samples).groupBy("sample_id").agg(F.min(_hash(view.seed)).alias("h"))
    order = [("kept", r["sample_id"]) for r in kept.collect()]
    order += [("dropped", r["sample_id"]) for r in dropped.orderBy("h", "sample_id").collect()]
    return order


def _documents(inputs: ViewInputs, drops: DataFrame, chosen: list[tuple[str, str]], view: View,
               rule_order: list[str]) -> tuple[Document, ...]:
    """The chosen documents with their items, scores, thumbnails, ledger labels and clusters."""
    ids = sorted({sample_id for _, sample_id in chosen})
    if not ids:
        return ()
    mine = F.col("sample_id").isin(ids)
    items = inputs.items.where(mine)
    ledger = drops.where(mine).select("sample_id", "position", "rule", "reason", "detail")
    labelled = items.join(ledger, ["sample_id", "position"], "left").persist()  # read by the counts and the rows
    try:
        source = F.lit(None).cast("string")
        if "source_ref" in items.columns:
            source = F.concat_ws(" ", *[F.get_json_object("source_ref", f"$.{k}") for k in ("path", "member")])
        stats = labelled.groupBy("sample_id").agg(
            F.count(F.lit(1)).alias("all_items"),
            F.count_if(~is_modality("metadata")).alias("content"),
            F.count_if(~is_modality("metadata") & F.col("rule").isNull()).alias("kept_content"),
            F.count("rule").alias("dropped"),
            F.collect_set("rule").alias("rules"),
            F.min(source).alias("source"),
        )
        stats = _with_sample_scores(stats, inputs.plan or {}, ids)
        if inputs.clusters is not None:
            stats = stats.join(inputs.clusters.where(mine), "sample_id", "left")
        per_sample = {r["sample_id"]: r.asDict() for r in stats.collect()}  # one row per chosen sample
        shown = labelled.where(~is_modality("metadata") & (F.col("position") < view.max_items))
        rows = _with_thumbnails(_with_scores(shown, inputs.plan or {}), inputs.images, view.thumbnail_px)
        text = F.col("text_content")
        error = F.col("materialize_error") if "materialize_error" in items.columns else F.lit(None).cast("string")
        collected = rows.select(
            "sample_id", "position", "modality", "image_id", "image_url", "thumbnail", "rule", "reason", "detail",
            "_scores", error.alias("materialize_error"), F.substring(text, 1, view.max_chars).alias("text"),
            F.coalesce(F.length(text), F.lit(0)).alias("chars"),
        ).orderBy("sample_id", "position").collect()  # bounded: chosen documents x max_items
    finally:
        labelled.unpersist()
    by_sample: dict[str, list] = {}
    for row in collected:
        by_sample.setdefault(row["sample_id"], []).append(row)
    documents = []
    for side, sample_id in chosen:
        stats = per_sample.get(sample_id)
        if stats is None:
            continue  # in the ledger or the curated table but no longer in items
        rows_here = [r for r in by_sample.get(sample_id, []) if side == "dropped" or r["rule"] is None]
        rules = tuple(r for r in rule_order if r in set(stats["rules"]))
        documents.append(Document(
            sample_id=sample_id, side=side, items=tuple(_item(r, inputs.recipe) for r in rows_here),
            n_items=stats["content"] if side == "dropped" else stats["kept_content"], rules=rules,
            n_dropped=stats["dropped"], whole=stats["dropped"] == stats["all_items"],
            scores=_merged(stats["_scores"]), cluster=stats.get("cluster"), source=stats["source"] or None,
        ))
    return tuple(documents)


def _item(row, recipe: str) -> Item:
    drop = Drop(row["rule"], row["reason"], row["detail"], recipe) if row["rule"] is not None else None
    return Item(row["position"], row["modality"], row["text"], row["chars"], row["thumbnail"], row["image_url"],
                row["image_id"], _merged(row["_scores"]), drop, row["materialize_error"])


def _merged(parts: Optional[list]) -> dict:
    """One dict from the JSON objects of several signal tables (null where a table has no row)."""
    scores = {}
    for part in parts or []:
        if part:
            scores.update(json.loads(part))
    return scores


def _score_json(columns: list[str]) -> Column:
    return F.to_json(F.struct(*[F.col(f"`{c}`") for c in columns]))


def _with_scores(rows: DataFrame, plan: dict) -> DataFrame:
    """`_scores`: per item, the JSON of the columns its level's rules read, one string per signal table. Each table
    is first cut to the shown items' keys (a broadcast semi-join), so it is scanned, never shuffled."""
    parts = {"image": [], "text": []}
    for level in parts:
        for n, (table, columns) in enumerate(plan.get(level, [])):
            name, key = f"_score_{level}_{n}", list(table.key)
            wanted = F.broadcast(rows.select(*key).where(F.col(key[0]).isNotNull()).distinct())
            scores = table.df.join(wanted, key, "left_semi").select(*key, _score_json(columns).alias(name))
            rows = rows.join(scores, key, "left")
            parts[level].append(F.col(name))
    none = F.lit(None).cast("array<string>")
    return rows.withColumn("_scores", F.when(is_modality("image"), F.array(*parts["image"]) if parts["image"] else none)
                           .when(is_modality("text"), F.array(*parts["text"]) if parts["text"] else none))


def _with_sample_scores(stats: DataFrame, plan: dict, ids: list[str]) -> DataFrame:
    """`_scores`: per chosen sample, the JSON of the sample-level columns the recipe's sample rules read."""
    parts = []
    for n, (table, columns) in enumerate(plan.get("sample", [])):
        key, name = table.key[0], f"_score_sample_{n}"
        scores = table.df.where(F.col(key).isin(ids)).select(F.col(key).alias("sample_id"),
                                                             _score_json(columns).alias(name))
        stats = stats.join(scores, "sample_id", "left")
        parts.append(F.col(name))
    return stats.withColumn("_scores", F.array(*parts) if parts else F.lit(None).cast("array<string>"))


def _with_thumbnails(rows: DataFrame, images: DataFrame, max_px: int) -> DataFrame:
    """`thumbnail`: a data URI per image item whose bytes decode; only the shown images go through Pillow."""
    wanted = rows.where(F.col("image_id").isNotNull()).select("image_id").distinct()
    thumbs = images.join(F.broadcast(wanted), "image_id", "left_semi").select(
        "image_id", thumbnail_uri(F.col("binary_content"), max_px).alias("thumbnail"))
    return rows.join(thumbs, "image_id", "left")
