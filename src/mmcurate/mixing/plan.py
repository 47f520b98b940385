"""Turn curated items and signal tables into `mix_samples`: one row per sample (or part of a split sample) with
its kind, tokens, weights and the number of times it trains.

The order of decisions, each recorded as the row's `reason` when it leaves a sample out:
1. tokens per item (stored tokenizer counts or an estimate; the image scheme over the image's size);
   with a sequence limit, documents are split greedily at item boundaries (an item alone over the
   limit is cut: part -1, `item_over_sequence_limit`) or dropped whole (`over_sequence_limit`);
2. weights: `decile_excluded` (not in `keep`), source, decile and cluster weights (`*_weight_zero`),
   the cluster cap (`cluster_cap`, the cap members with the lowest seeded hash stay), repeats
   (`no_repeats`); the product is the sample's `weight` (expected epochs before shares);
3. shares by kind: each kind group is scaled down so that the groups' masses (samples, or tokens)
   stand in the given shares, the largest such mix, then capped by the token and sample budgets;
   a kind with no share is `kind_excluded`;
4. integer repeats: floor(expected) plus one more for a seeded fixed-size draw over the fractions
   (sequential Poisson sampling), so every kind group gets exactly round(sum of fractions) extra
   copies and the shares hold to the sample; a sample left at 0 is `not_sampled`.
Only a handful of numbers per kind group reach the driver (masses, fraction sums, thresholds).
"""
from __future__ import annotations

from typing import Iterable, Optional

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from mmcurate.mixing.spec import KIND_GROUPS, Mix, MixError, Weighted
from mmcurate.schema import CORE_ITEM_COLUMNS, is_modality, renumber_positions, require_columns
from mmcurate.select import SignalTable, column_words
from mmcurate.stage import ITEM_KEY, SAMPLE_KEY

MIX_SAMPLES = T.StructType([
    T.StructField("mix", T.StringType(), False),
    T.StructField("mix_version", T.StringType(), False),
    T.StructField("sample_id", T.StringType(), False),
    T.StructField("part", T.IntegerType(), False),
    T.StructField("export_id", T.StringType(), False),
    T.StructField("first_position", T.IntegerType(), False),
    T.StructField("last_position", T.IntegerType(), False),
    T.StructField("kind", T.StringType(), False),
    T.StructField("source", T.StringType(), True),
    T.StructField("decile", T.StringType(), True),
    T.StructField("cluster", T.StringType(), True),
    T.StructField("n_images", T.IntegerType(), False),
    T.StructField("n_texts", T.IntegerType(), False),
    T.StructField("text_tokens", T.LongType(), False),
    T.StructField("image_tokens", T.LongType(), False),
    T.StructField("tokens", T.LongType(), False),
    T.StructField("weight", T.DoubleType(), False),
    T.StructField("expected", T.DoubleType(), False),
    T.StructField("repeats", T.IntegerType(), False),
    T.StructField("reason", T.StringType(), True),
])
"""One row per (sample, part): part 0 for an unsplit sample, 0.. for the parts of a split one, -1 for the items
cut because each alone is over the sequence limit. `export_id` is the id the part is exported under
(`{sample_id}#{part}` for a split sample); `repeats` copies of it train; `reason` says why a row has 0."""

ACCURACY = 1_000_000
"""percentile_approx accuracy of the thresholds: rank error at most rows / ACCURACY (exact below a million)."""
_UNIFORM_BITS = 2 ** 53


def plan_mix(mix: Mix, items: DataFrame, images: DataFrame, tables: Iterable[SignalTable] = ()) -> DataFrame:
    """`mix_samples` rows (MIX_SAMPLES) for every sample of `items`; the per-sample frame is checkpointed once
    (twice with a cluster cap), so the few aggregations below read it, not the items."""
    require_columns(items, {"sample_id": "string", "position": "int", "modality": "string", "text_content": "string",
                            "image_id": "string", "source_ref": "string"}, where=f"mix {mix.name!r} items")
    require_columns(images, {"image_id": "string", "width": "int", "height": "int"}, where=f"mix {mix.name!r} images")
    tables = list(tables)
    parts = _parts(mix, _item_tokens(mix, items, images, tables), items)
    frame = _with_signals(mix, parts, tables)
    frame = _weighted(mix, frame).localCheckpoint()
    capped = _with_cap(mix, frame)
    frame = frame if capped is frame else capped.localCheckpoint()
    factors = _share_factors(mix, frame)
    expected = frame.withColumn("expected", F.col("weight") * _lookup(factors, F.col("_group"), 0.0))
    return _realized(mix, expected)


def uniform(*columns: Column) -> Column:
    """A seeded uniform number in (0, 1) from the columns' xxhash64: the same on every run and executor."""
    bits = F.pmod(F.xxhash64(*columns), F.lit(_UNIFORM_BITS))
    return (bits.cast("double") + F.lit(0.5)) / F.lit(float(_UNIFORM_BITS))


def _item_tokens(mix: Mix, items: DataFrame, images: DataFrame, tables: list[SignalTable]) -> DataFrame:
    """Every item with `t_text` and `t_image`, its tokens under the mix's schemes (0 for metadata rows), and
    `_content` (a text or image at a position >= 0). Only image rows meet the images table (text rows have no
    image_id, and would all land in one join partition)."""
    passthrough = [F.col(f"`{c}`") for c in items.columns if c not in CORE_ITEM_COLUMNS]
    rows = items.select("sample_id", "position", "modality", "text_content", "image_id", "source_ref", *passthrough)
    text = mix.text_tokens.estimate(F.col("text_content"))
    if mix.text_tokens.table:
        stored = [t for t in tables if t.name == mix.text_tokens.table]
        if not stored or tuple(stored[0].key) != ITEM_KEY or "n_tokens" not in stored[0].df.columns:
            raise MixError(f"mix {mix.name!r} reads text tokens from table {mix.text_tokens.table!r}, which is not in "
                           f"the lakehouse with key {list(ITEM_KEY)} and column n_tokens: run "
                           f"`mmcurate annotate --stages text_tokens` (with a tokenizer) first")
        rows = rows.join(stored[0].df.select(*ITEM_KEY, F.col("n_tokens").alias("_stored")), list(ITEM_KEY), "left")
        text = F.coalesce(F.col("_stored").cast("long"), text)
    sizes = images.select("width", "height").where(F.col("width").isNotNull() & F.col("height").isNotNull()).distinct()
    per_size = sizes.withColumn("_image_tokens", mix.image_tokens.column(F.col("width"), F.col("height")))
    sized = images.select("image_id", "width", "height").join(per_size, ["width", "height"]).select(
        "image_id", "_image_tokens")
    pictures = rows.where(F.col("image_id").isNotNull()).join(sized, "image_id", "left")
    rows = pictures.unionByName(rows.where(F.col("image_id").isNull()).withColumn(
        "_image_tokens", F.lit(None).cast("long")))
    content = (is_modality("text") | is_modality("image")) & (F.col("position") >= 0)
    return rows.select(
        "*", content.alias("_content"),
        F.when(content & is_modality("text"), text).otherwise(F.lit(0)).cast("long").alias("t_text"),
        F.when(content & is_modality("image"), F.coalesce("_image_tokens", F.lit(0))).otherwise(F.lit(0))
        .cast("long").alias("t_image"),
    ).drop("_image_tokens", "_stored", "text_content", "image_id")


def _parts(mix: Mix, tokens: DataFrame, items: DataFrame) -> DataFrame:
    """Per (sample, part): its item range, counts and tokens, the sample's source_ref (its metadata row's, else
    its first item's) and metadata passthrough values, and `_over` (a drop-mode sample over the limit).
    One aggregation per sample; split mode also collects the sample's items and packs them greedily."""
    limit = mix.sequence.max_tokens if mix.sequence else None
    split = mix.sequence is not None and mix.sequence.over == "split"
    counted = F.col("t_text") + F.col("t_image") if not mix.sequence or mix.sequence.count == "all" else F.col("t_image")
    passthrough = [c for c in items.columns if c not in CORE_ITEM_COLUMNS]
    content, image, text = F.col("_content"), is_modality("image"), is_modality("text")
    per_sample = [F.min_by("source_ref", "position").alias("source_ref"),
                  *[F.first(F.when(F.col("position") == -1, F.col(f"`{c}`")), ignorenulls=True).alias(c)
                    for c in passthrough]]
    if split:
        entry = F.struct("position", "modality", "t_text", "t_image", counted.alias("_c"))
        docs = tokens.groupBy("sample_id").agg(F.array_sort(F.collect_list(F.when(content, entry))).alias("_items"),
                                               *per_sample).where(F.size("_items") > 0)
        exploded = docs.withColumn("_ids", _greedy_parts(F.col("_items"), limit)).select(
            "*", F.inline(F.arrays_zip(F.col("_items").alias("item"), F.col("_ids").alias("part"))))
        grouped = exploded.withColumn("_split", F.array_max("_ids") > 0).groupBy("sample_id", "part").agg(
            F.min("item.position").alias("first_position"), F.max("item.position").alias("last_position"),
            F.count_if(F.col("item.modality") == "image").cast("int").alias("n_images"),
            F.count_if(F.col("item.modality") == "text").cast("int").alias("n_texts"),
            F.sum("item.t_text").alias("text_tokens"), F.sum("item.t_image").alias("image_tokens"),
            F.sum("item._c").alias("_counted"),
            *[F.first(F.col(f"`{c}`")).alias(c) for c in ["source_ref", "_split", *passthrough]],
        )
    else:
        grouped = tokens.groupBy("sample_id").agg(
            F.min(F.when(content, F.col("position"))).alias("first_position"),
            F.max(F.when(content, F.col("position"))).alias("last_position"),
            F.count_if(content & image).cast("int").alias("n_images"),
            F.count_if(content & text).cast("int").alias("n_texts"),
            F.sum("t_text").alias("text_tokens"), F.sum("t_image").alias("image_tokens"),
            F.sum(F.when(content, counted)).alias("_counted"), *per_sample,
        ).where(F.col("first_position").isNotNull()).select("*", F.lit(0).alias("part"), F.lit(False).alias("_split"))
    over = F.lit(False) if limit is None or split else F.col("_counted") > limit
    kind = (F.when(F.col("n_images") == 0, "text_only")
            .when((F.col("n_images") == 1) & (F.col("n_texts") <= 1), "caption").otherwise("interleaved"))
    export_id = F.when(F.col("_split") | (F.col("part") < 0), F.concat_ws("#", "sample_id", F.col("part").cast("string")))
    return grouped.select(
        "*", kind.alias("kind"), (F.col("text_tokens") + F.col("image_tokens")).alias("tokens"),
        F.coalesce(export_id, F.col("sample_id")).alias("export_id"), over.alias("_over"),
        F.get_json_object("source_ref", "$.path").alias("source_path"),
    ).drop("_counted", "_split")


def _greedy_parts(items: Column, limit: int) -> Column:
    """Part index per item (position order): a new part when the next item would overflow `limit`; an item over
    the limit on its own gets -1 and closes the part before it."""
    start = F.struct(F.array().cast("array<int>").alias("ids"), F.lit(-1).alias("part"),
                     F.lit(limit + 1).cast("long").alias("used"))

    def step(acc: Column, item: Column) -> Column:
        cost = item["_c"]
        alone_over = cost > limit
        fresh = acc["used"] + cost > limit
        part = F.when(alone_over, acc["part"]).when(fresh, acc["part"] + 1).otherwise(acc["part"])
        used = F.when(alone_over, F.lit(limit + 1).cast("long")).when(fresh, cost).otherwise(acc["used"] + cost)
        mark = F.when(alone_over, F.lit(-1)).otherwise(part)
        return F.struct(F.concat(acc["ids"], F.array(mark)).alias("ids"), part.alias("part"), used.alias("used"))

    return F.aggregate(items, start, step)["ids"]


def _with_signals(mix: Mix, frame: DataFrame, tables: list[SignalTable]) -> DataFrame:
    """`frame` with the sample-keyed tables' columns the mix's expressions name, and its dimension columns."""
    expressions = [w.expression for w in (mix.sources, mix.deciles, mix.clusters) if w is not None]
    if mix.repeats:
        expressions.append(mix.repeats.expression)
    words = set().union(*[column_words(e) for e in expressions]) - {c.lower() for c in frame.columns}
    sample_tables = [t for t in tables if tuple(t.key) == SAMPLE_KEY]
    for word in sorted(words):
        holders = [t for t in sample_tables if word in {c.lower() for c in t.df.columns} - {"sample_id"}]
        if len(holders) > 1:
            raise MixError(f"mix {mix.name!r}: column {word!r} is in both {holders[0].name} and {holders[1].name}")
        if not holders:
            _missing_hint(mix, word)
    needed: dict[str, list[str]] = {}
    for table in sample_tables:
        columns = [c for c in table.df.columns if c.lower() in words and c != "sample_id"]
        if columns:
            needed[table.name] = columns
            frame = frame.join(table.df.select("sample_id", *[F.col(f"`{c}`") for c in columns]), "sample_id", "left")
    for name, weighted in (("source", mix.sources), ("decile", mix.deciles), ("cluster", mix.clusters)):
        value = F.expr(weighted.expression).cast("string") if weighted else F.lit(None).cast("string")
        frame = frame.withColumn(name, value)
    return frame


def _missing_hint(mix: Mix, word: str) -> None:
    """An expression names a column only a catalogued stage's missing table has: say which stage to run."""
    from mmcurate.annotate import stage_for_column

    stage = stage_for_column(word, SAMPLE_KEY)
    if stage is not None:
        raise MixError(f"mix {mix.name!r} reads {word!r}, a column of table {stage.table!r}, which is missing: "
                       f"run the annotate stage {stage.name!r} first (mmcurate annotate --stages {stage.name})")


def _weight(weighted: Optional[Weighted], value: Column) -> Column:
    """The weight a `Weighted` gives a value: its entry in `weights`, else `default`."""
    if weighted is None:
        return F.lit(1.0)
    return F.coalesce(_lookup(weighted.weights, value, None), F.lit(float(weighted.default)))


def _lookup(mapping: dict, key: Column, default: Optional[float]) -> Column:
    """mapping[key] as a double column (a literal map), `default` where absent."""
    if not mapping:
        return F.lit(default).cast("double")
    pairs = [F.lit(x) for k, v in sorted(mapping.items()) for x in (str(k), float(v))]
    found = F.element_at(F.create_map(*pairs), key)
    return found if default is None else F.coalesce(found, F.lit(float(default)))


def _weighted(mix: Mix, frame: DataFrame) -> DataFrame:
    """`weight` = source x decile x cluster weight x repeats, 0 with a `reason` for what a rule excludes, and
    `_group`, the kind group whose share the sample counts towards."""
    repeats = F.lit(1.0)
    if mix.repeats:
        raw = F.coalesce(F.expr(mix.repeats.expression).cast("double"), F.lit(1.0))
        repeats = F.least(F.greatest(raw, F.lit(0.0)), F.lit(float(mix.repeats.max)))
    source_w, decile_w, cluster_w = (_weight(mix.sources, F.col("source")), _weight(mix.deciles, F.col("decile")),
                                     _weight(mix.clusters, F.col("cluster")))
    kept_decile = F.lit(True)
    if mix.deciles and mix.deciles.keep is not None:
        kept_decile = F.coalesce(F.col("decile").isin(list(mix.deciles.keep)), F.lit(False))
    groups = {kind: group for group in mix.kinds for kind in KIND_GROUPS[group]} if mix.kinds else {}
    group = _label(groups, F.col("kind")) if mix.kinds else F.lit("all")
    excluded_kind = (group.isNull() | (_lookup(dict(mix.kinds), group, 0.0) == 0)) if mix.kinds else F.lit(False)
    reason = (F.when(F.col("part") < 0, "item_over_sequence_limit")
              .when(F.col("_over"), "over_sequence_limit")
              .when(~kept_decile, "decile_excluded")
              .when(source_w == 0, "source_weight_zero")
              .when(decile_w == 0, "decile_weight_zero")
              .when(cluster_w == 0, "cluster_weight_zero")
              .when(repeats == 0, "no_repeats")
              .when(excluded_kind, "kind_excluded"))
    weight = F.when(reason.isNull(), source_w * decile_w * cluster_w * repeats).otherwise(F.lit(0.0))
    return frame.select("*", reason.alias("reason"), weight.alias("weight"), group.alias("_group"),
                        uniform("sample_id", "part", F.lit(mix.seed), F.lit("cap")).alias("_u"),
                        uniform("sample_id", "part", F.lit(mix.seed), F.lit("draw")).alias("_v"))


def _label(mapping: dict[str, str], key: Column) -> Column:
    """mapping[key] for a literal string -> string map, null where absent."""
    return F.element_at(F.create_map(*[F.lit(x) for k, v in sorted(mapping.items()) for x in (k, v)]), key)


def _with_cap(mix: Mix, frame: DataFrame) -> DataFrame:
    """Keep at most `clusters.cap` weighted samples per cluster: those with the lowest seeded hash. Only clusters
    over the cap are ranked (a window per such cluster over three small columns)."""
    if mix.clusters is None or mix.clusters.cap is None:
        return frame
    live = frame.where(F.col("weight") > 0)
    over = live.groupBy("cluster").agg(F.count(F.lit(1)).alias("_n")).where(F.col("_n") > mix.clusters.cap)
    order = Window.partitionBy("cluster").orderBy("_u", "sample_id", "part")
    capped = (live.join(F.broadcast(over.select("cluster")), "cluster").select(
        "sample_id", "part", F.row_number().over(order).alias("_rank"))
        .where(F.col("_rank") > mix.clusters.cap).select("sample_id", "part", F.lit(True).alias("_capped")))
    out = F.coalesce(F.col("_capped"), F.lit(False))
    return frame.join(capped, ["sample_id", "part"], "left").select(
        *[c for c in frame.columns if c not in ("reason", "weight")],
        F.when(out, F.lit("cluster_cap")).otherwise(F.col("reason")).alias("reason"),
        F.when(out, F.lit(0.0)).otherwise(F.col("weight")).alias("weight"),
    )


def _share_factors(mix: Mix, frame: DataFrame) -> dict[str, float]:
    """Per kind group, the factor its weights are scaled by: the largest mix in the given shares (no group scaled
    up), then capped by the budgets. One small aggregation reaches the driver."""
    masses = {row["_group"]: (row["samples"], row["tokens"]) for row in frame.where(F.col("weight") > 0).groupBy(
        "_group").agg(F.sum("weight").alias("samples"), F.sum(F.col("weight") * F.col("tokens")).alias("tokens"))
        .collect()}
    if not masses:
        return {}
    by = 0 if mix.share_by == "samples" else 1
    if mix.kinds:
        total_share = sum(mix.kinds.values())
        shares = {g: mix.kinds[g] / total_share for g in masses if mix.kinds.get(g, 0) > 0}
        scale = min((masses[g][by] / s for g, s in shares.items() if masses[g][by] > 0), default=0.0)
        factors = {g: (scale * shares[g] / masses[g][by]) if g in shares and masses[g][by] > 0 else 0.0
                   for g in masses}
    else:
        factors = dict.fromkeys(masses, 1.0)
    samples = sum(factors[g] * masses[g][0] for g in masses)
    tokens = sum(factors[g] * masses[g][1] for g in masses)
    budget = min([1.0, *([mix.budget_tokens / tokens] if mix.budget_tokens is not None and tokens > 0 else []),
                  *([mix.budget_samples / samples] if mix.budget_samples is not None and samples > 0 else [])])
    return {g: f * budget for g, f in factors.items()}


def _realized(mix: Mix, frame: DataFrame) -> DataFrame:
    """Integer `repeats`: floor(expected), plus one for the round(sum of fractions) rows of each kind group with
    the smallest draw / fraction (sequential Poisson sampling: a row's chance follows its fraction)."""
    fraction = F.col("expected") - F.floor("expected")
    frame = frame.withColumn("_fraction", fraction).withColumn(
        "_key", F.when(F.col("_fraction") > 0, F.col("_v") / F.col("_fraction")))
    draws = {row["_group"]: (int(round(row["total"] or 0.0)), row["n"]) for row in frame.where(
        F.col("_key").isNotNull()).groupBy("_group").agg(F.sum("_fraction").alias("total"),
                                                          F.count(F.lit(1)).alias("n")).collect()}
    cuts = []
    for group, (take, n) in draws.items():
        if take >= n:
            cuts.append((group, float("inf")))
        elif take > 0:
            rank = (take - 0.5) / n
            (cut,) = frame.where((F.col("_group") == group) & F.col("_key").isNotNull()).agg(
                F.percentile_approx("_key", F.lit(rank), ACCURACY)).first()
            cuts.append((group, float(cut)))
    extra = F.coalesce(F.col("_key") <= _lookup(dict(cuts), F.col("_group"), None), F.lit(False)).cast("int")
    repeats = (F.floor("expected").cast("int") + extra).cast("int")
    reason = F.coalesce(F.col("reason"), F.when(repeats == 0, F.lit("not_sampled")))
    return frame.select(
        F.lit(mix.name).alias("mix"), F.lit(mix.version).alias("mix_version"), "sample_id",
        F.col("part").cast("int").alias("part"), "export_id",
        F.col("first_position").cast("int").alias("first_position"),
        F.col("last_position").cast("int").alias("last_position"), "kind", "source", "decile", "cluster",
        "n_images", "n_texts", F.col("text_tokens").cast("long").alias("text_tokens"),
        F.col("image_tokens").cast("long").alias("image_tokens"), F.col("tokens").cast("long").alias("tokens"),
        "weight", "expected", repeats.alias("repeats"), reason.alias("reason"),
    )


def mixed_items(items: DataFrame, samples: DataFrame) -> tuple[DataFrame, DataFrame]:
    """(the items of every part that trains, under its export_id with positions renumbered from 0 and the
    sample's metadata row in each part; (sample_id=export_id, repeats)) for `write_webdataset`."""
    training = samples.where((F.col("repeats") > 0) & (F.col("part") >= 0))
    ranges = training.select(F.col("sample_id").alias("_sid"), "export_id", "first_position", "last_position")
    inside = (F.col("position") == -1) | F.col("position").between(F.col("first_position"), F.col("last_position"))
    parts = items.join(ranges, (items["sample_id"] == F.col("_sid")) & inside).select(
        *[F.col("export_id").alias(c) if c == "sample_id" else F.col(f"`{c}`") for c in items.columns])
    return renumber_positions(parts), training.select(F.col("export_id").alias("sample_id"), "repeats")
