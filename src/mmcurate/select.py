"""Selection: a recipe of SQL predicates over score tables decides which items stay; a ledger says why the rest went.

A row is kept iff every rule that applies to it evaluates to TRUE; FALSE and NULL both drop it
(NULL: a score the rule reads is missing, e.g. an undecodable or URL-only image). Rules never
depend on each other, so their order cannot change the kept set; the ledger names, for each
dropped item, the first rule in recipe order that did not hold. See docs/selection.md.

>>> recipe = Recipe.from_yaml("nemo_default")
>>> selection = recipe.apply(items, image_scores=image_scores, sample_scores=sample_scores)
>>> selection.summary.show(); selection.drops.groupBy("rule").count().show()
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import reduce
from importlib.resources import files
from pathlib import Path
from typing import Optional

import yaml
from pyspark import StorageLevel
from pyspark.errors import AnalysisException
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from mmcurate.schema import renumber_positions, require_columns, valid_item

LEVELS = ("image", "text", "sample")
STAGE = "select"
VALID_ITEM = "valid_item"
EMPTY_AFTER_FILTERING = "empty_after_filtering"
PREDICATE_FALSE = "predicate_false"
PREDICATE_NULL = "predicate_null"
_RESERVED_NAMES = frozenset({VALID_ITEM, EMPTY_AFTER_FILTERING, "total"})

DROPS = T.StructType(
    [
        T.StructField("sample_id", T.StringType(), False),
        T.StructField("position", T.IntegerType(), False),
        T.StructField("modality", T.StringType(), True),
        T.StructField("stage", T.StringType(), False),
        T.StructField("rule", T.StringType(), False),
        T.StructField("reason", T.StringType(), False),
        T.StructField("recipe", T.StringType(), False),
        T.StructField("recipe_version", T.StringType(), False),
    ]
)
"""The ledger: one row per dropped input item, at its input position; input items = kept + these."""

_RECIPES = files("mmcurate") / "recipes"
_SCORE_TABLES = {"image": "image_scores", "text": "paragraph_scores", "sample": "sample_scores"}
_SCORE_KEYS = {"image": ["image_id"], "text": ["sample_id", "position"], "sample": ["sample_id"]}
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_RULE_KEYS = {"name", "level", "predicate", "description", "source"}
_RECIPE_KEYS = {"name", "version", "description", "rules"}
# Lexemes of a predicate: comments and quoted text are skipped, so only bare words are checked.
_LEXEMES = re.compile(
    r"--[^\n]*|/\*.*?\*/|'(?:\\.|[^'\\])*'|\"(?:\\.|[^\"\\])*\"|`(?:``|[^`])*`"
    r"|(?P<word>[A-Za-z_][A-Za-z0-9_]*)(?P<call>\s*\()?",
    re.S,
)
_QUERY_WORDS = frozenset({"select", "table", "values"})  # a subquery would read other tables
_DENIED_CALLS = frozenset(  # results that change between runs, or that call into the JVM
    {
        "rand", "randn", "random", "randstr", "uniform", "uuid", "shuffle", "monotonically_increasing_id",
        "spark_partition_id", "input_file_name", "input_file_block_start", "input_file_block_length",
        "reflect", "java_method", "try_reflect",
    }
)
# Working columns: the whole item as a struct, its sample_id on top (so one hash partitioning serves the sample
# join and both windows), and the first failing check.
_ITEM, _SID, _DROP = "_sel_item", "_sel_sample_id", "_sel_drop"


class RecipeError(ValueError):
    """A recipe is malformed, or a rule's predicate is not a deterministic boolean over its level's table."""


@dataclass(frozen=True)
class Rule:
    """One keep-condition: `predicate` (Spark SQL, TRUE = keep) evaluated per row of its level's table.

    level: "image" (image items joined with image_scores), "text" (text items joined with
    paragraph_scores) or "sample" (sample_scores; a failure drops the whole sample).
    """

    name: str
    level: str
    predicate: str
    description: str = ""
    source: str = ""

    def __post_init__(self):
        if not isinstance(self.name, str) or not _NAME.match(self.name) or self.name in _RESERVED_NAMES:
            raise RecipeError(f"rule name {self.name!r} must be an identifier other than {sorted(_RESERVED_NAMES)}")
        if self.level not in LEVELS:
            raise RecipeError(f"rule {self.name!r}: level must be one of {LEVELS}, got {self.level!r}")
        if not isinstance(self.predicate, str) or not self.predicate.strip():
            raise RecipeError(f"rule {self.name!r}: predicate must be a non-empty SQL expression")


def _lexical_problem(predicate: str) -> Optional[str]:
    """Why a predicate that Spark would accept is still no row filter (subquery, non-deterministic call), or None."""
    for lexeme in _LEXEMES.finditer(predicate):
        word = (lexeme.group("word") or "").lower()
        if word in _QUERY_WORDS:
            return f"subqueries are not allowed ({word.upper()}); a rule reads only its level's columns"
        if lexeme.group("call") and word in _DENIED_CALLS:
            return f"{word}() is not allowed: a rule must answer the same on every run, without calling the JVM"
    return None


@dataclass(frozen=True)
class Selection:
    """What a recipe did: `curated` items (positions renumbered), the `drops` ledger and per-rule `summary` counts.

    All three derive lazily from `flagged` (every input item with its verdict); `persist()` it
    before computing more than one of them on a large input.
    """

    curated: DataFrame
    drops: DataFrame
    summary: DataFrame
    flagged: DataFrame

    def persist(self) -> "Selection":
        """Cache the verdicts shared by curated, drops and summary (memory and disk)."""
        self.flagged.persist(StorageLevel.MEMORY_AND_DISK)
        return self

    def unpersist(self) -> "Selection":
        self.flagged.unpersist()
        return self


@dataclass(frozen=True)
class Recipe:
    """A named, versioned list of rules; `apply` turns items and score tables into a `Selection`."""

    name: str
    version: str
    rules: tuple[Rule, ...]
    description: str = ""

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise RecipeError(f"a recipe's name must be a non-empty string, got {self.name!r}")
        if not isinstance(self.version, str) or not self.version:
            raise RecipeError(f"recipe {self.name!r}: version must be a non-empty string (quote it in YAML)")
        names = [rule.name for rule in self.rules]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise RecipeError(f"recipe {self.name!r}: rule names must be unique, repeated: {repeated}")

    @classmethod
    def from_yaml(cls, source: str | Path) -> "Recipe":
        """Load a recipe from a YAML file, or a packaged one by name (see `packaged_recipes()`)."""
        path = Path(source)
        if path.is_file():
            text = path.read_text(encoding="utf-8")
        elif str(source) in packaged_recipes():
            text = (_RECIPES / f"{source}.yaml").read_text(encoding="utf-8")
        else:
            raise RecipeError(f"no recipe file {str(source)!r} and no packaged recipe of that name; "
                              f"packaged: {packaged_recipes()}")
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise RecipeError(f"recipe {str(source)!r} is not valid YAML: {e}") from e
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: dict) -> "Recipe":
        """Build from the YAML structure: name, version, description?, rules: [{name, level, predicate, ...}]."""
        if not isinstance(data, dict) or not {"name", "version", "rules"} <= set(data):
            raise RecipeError("a recipe is a mapping with keys name, version and rules")
        _no_unknown_keys(data, _RECIPE_KEYS, f"recipe {data['name']!r}")
        if not isinstance(data["rules"], list):
            raise RecipeError(f"recipe {data['name']!r}: rules must be a list")
        rules = []
        for raw in data["rules"]:
            if not isinstance(raw, dict):
                raise RecipeError(f"recipe {data['name']!r}: each rule is a mapping, got {raw!r}")
            _no_unknown_keys(raw, _RULE_KEYS, f"rule {raw.get('name')!r}")
            if not {"name", "level", "predicate"} <= set(raw):
                raise RecipeError(f"rule {raw.get('name')!r}: name, level and predicate are required")
            rules.append(Rule(**raw))
        return cls(data["name"], data["version"], tuple(rules), data.get("description", ""))

    def validate(
        self,
        items: DataFrame,
        image_scores: Optional[DataFrame] = None,
        sample_scores: Optional[DataFrame] = None,
        paragraph_scores: Optional[DataFrame] = None,
    ) -> None:
        """Check every predicate against its level's joined table (Spark analysis only, no job); raise RecipeError."""
        self._validate(_level_tables(items, image_scores, sample_scores, paragraph_scores))

    def apply(
        self,
        items: DataFrame,
        image_scores: Optional[DataFrame] = None,
        sample_scores: Optional[DataFrame] = None,
        paragraph_scores: Optional[DataFrame] = None,
    ) -> Selection:
        """Validate, then evaluate every rule once per row and derive curated items, the ledger and the summary."""
        tables = _level_tables(items, image_scores, sample_scores, paragraph_scores)
        self._validate(tables)
        checks = self._checks()
        flagged = _with_orphans(_with_first_failure(self._verdicts(items, tables), checks), len(checks))
        kept = flagged.where(F.col(_DROP).isNull()).select(
            *[(F.col(_SID) if c == "sample_id" else F.col(_ITEM).getField(c)).alias(c) for c in items.columns]
        )
        return Selection(renumber_positions(kept), self._ledger(flagged), _summary(flagged, checks), flagged)

    def _validate(self, tables: dict) -> None:
        for rule in self.rules:
            table = tables[rule.level]
            if table is None:
                raise RecipeError(f"rule {rule.name!r} is {rule.level}-level: pass {_SCORE_TABLES[rule.level]}")
            _check_predicate(rule, table.drop(_ITEM, _SID))

    def _verdicts(self, items: DataFrame, tables: dict) -> DataFrame:
        """Items as a `_sel_item` struct plus one nullable boolean `_sel_r<i>` per rule (null where not applied)."""
        indexed = list(enumerate(self.rules))
        parts, rest = [], items
        for level in ("image", "text"):
            rules = [(i, r) for i, r in indexed if r.level == level]
            if rules:
                results = [F.expr(r.predicate).alias(f"_sel_r{i}") for i, r in rules]
                parts.append(tables[level].select(_ITEM, _SID, *results))
                rest = rest.where(~_is(F.col("modality"), level))
        parts.append(rest.select(*_item_columns(rest)))
        flagged = reduce(lambda a, b: a.unionByName(b, allowMissingColumns=True), parts)
        rules = [(i, r) for i, r in indexed if r.level == "sample"]
        if rules:
            verdicts = tables["sample"].select(
                F.col("sample_id").alias(_SID), *[F.expr(r.predicate).alias(f"_sel_r{i}") for i, r in rules]
            )
            flagged = flagged.join(verdicts, _SID, "left")
        return flagged

    def _checks(self) -> list[tuple[str, str, Column, Column]]:
        """(name, level, applies, result) in ledger order: item validity, then the rules in recipe order."""
        modality = F.col(f"{_ITEM}.modality")
        checks = [(VALID_ITEM, "item", F.lit(True), valid_item(F.col(f"{_ITEM}.position"), modality))]
        for i, rule in enumerate(self.rules):
            applies = F.lit(True) if rule.level == "sample" else _is(modality, rule.level)
            checks.append((rule.name, rule.level, applies, F.col(f"_sel_r{i}")))
        return checks

    def _ledger(self, flagged: DataFrame) -> DataFrame:
        return flagged.where(F.col(_DROP).isNotNull()).select(
            F.col(_SID).alias("sample_id"),
            F.col(f"{_ITEM}.position").alias("position"),
            F.col(f"{_ITEM}.modality").alias("modality"),
            F.lit(STAGE).alias("stage"),
            F.col(f"{_DROP}.rule").alias("rule"),
            F.col(f"{_DROP}.reason").alias("reason"),
            F.lit(self.name).alias("recipe"),
            F.lit(self.version).alias("recipe_version"),
        )


def packaged_recipes() -> list[str]:
    """Names of the recipes shipped in mmcurate/recipes."""
    return sorted(p.name[: -len(".yaml")] for p in _RECIPES.iterdir() if p.name.endswith(".yaml"))


def _no_unknown_keys(data: dict, allowed: set[str], where: str) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise RecipeError(f"{where}: unknown keys {unknown}; allowed: {sorted(allowed)}")


def _is(modality: Column, value: str) -> Column:
    """modality = value, with null as false (so a null modality is never split away)."""
    return F.coalesce(modality == value, F.lit(False))


def _item_columns(items: DataFrame) -> list[Column]:
    """The whole item as one struct, and its sample_id on its own."""
    return [F.struct(*[F.col(f"`{c}`") for c in items.columns]).alias(_ITEM), F.col("sample_id").alias(_SID)]


def _level_tables(items, image_scores, sample_scores, paragraph_scores) -> dict[str, Optional[DataFrame]]:
    """Per level, the table its predicates see: the level's items (their columns; a score column of the same name wins)
    left-joined with its scores on their key, plus the whole item as `_sel_item`; sample rules see sample_scores only.

    Score tables are unique on their key, as the annotate stages make them; a repeated key would repeat its item.
    """
    require_columns(items, {"sample_id": "string", "position": "int", "modality": "string"}, where="Recipe.apply")

    def joined(level: str, scores: Optional[DataFrame]) -> Optional[DataFrame]:
        if scores is None:
            return None
        scores = _nan_as_null(scores)
        keys = _SCORE_KEYS[level]
        require_columns(scores, keys, where=_SCORE_TABLES[level])
        rows = items.where(_is(F.col("modality"), level))
        shown = [F.col(f"`{c}`") for c in rows.columns if c in keys or c not in scores.columns]
        return rows.select(*_item_columns(rows), *shown).join(scores, keys, "left")

    if sample_scores is not None:
        require_columns(sample_scores, ["sample_id"], where="sample_scores")
        sample_scores = _nan_as_null(sample_scores)
    return {
        "image": joined("image", image_scores),
        "text": joined("text", paragraph_scores),
        "sample": sample_scores,
    }


def _nan_as_null(scores: DataFrame) -> DataFrame:
    """NaN scores become NULL: Spark orders NaN above every number, so `score >= t` would keep a NaN;
    as NULL the row is dropped with reason predicate_null like any missing score."""
    floating = {f.name for f in scores.schema.fields if isinstance(f.dataType, (T.DoubleType, T.FloatType))}
    if not floating:
        return scores
    return scores.select(*[
        F.nanvl(F.col(f"`{c}`"), F.lit(None).cast(scores.schema[c].dataType)).alias(c) if c in floating
        else F.col(f"`{c}`") for c in scores.columns
    ])


def _check_predicate(rule: Rule, table: DataFrame) -> None:
    """Spark parses and resolves the predicate against `table`: it must be a boolean valid in a WHERE clause,
    with no subquery and no call whose answer changes between runs. The lexical check runs first, so
    a predicate naming other tables is refused whatever views the session happens to have."""
    problem = _lexical_problem(rule.predicate)
    if problem:
        raise RecipeError(f"rule {rule.name!r} ({rule.level}): predicate {rule.predicate!r}: {problem}")
    try:
        expr = F.expr(rule.predicate)
        dtype = table.select(expr.alias("_keep")).schema["_keep"].dataType
        if not isinstance(dtype, T.BooleanType):
            raise RecipeError(
                f"rule {rule.name!r}: predicate {rule.predicate!r} is {dtype.simpleString()}, not boolean"
            )
        table.where(expr).schema  # rejects aggregates, window functions and generators
    except AnalysisException as e:
        message = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise RecipeError(
            f"rule {rule.name!r} ({rule.level}): predicate {rule.predicate!r} is invalid: {message}"
        ) from e


def _with_first_failure(flagged: DataFrame, checks) -> DataFrame:
    """Add `_sel_drop` = (index, rule, reason) of the first check in order that applies and is not TRUE, else null."""
    failures = []
    for index, (name, _, applies, result) in enumerate(checks):
        reason = F.when(result.isNull(), F.lit(PREDICATE_NULL)).otherwise(F.lit(PREDICATE_FALSE))
        verdict = F.struct(F.lit(index).alias("index"), F.lit(name).alias("rule"), reason.alias("reason"))
        failures.append(F.when(_fails(applies, result), verdict))
    return flagged.withColumn(_DROP, F.coalesce(*failures))


def _fails(applies: Column, result: Column) -> Column:
    return applies & ~F.coalesce(result, F.lit(False))


def _with_orphans(flagged: DataFrame, index: int) -> DataFrame:
    """Drop as `empty_after_filtering` what the rules left of a sample without content (NeMo's orphan removal)."""
    content_left = F.max((F.col(_DROP).isNull() & (F.col(f"{_ITEM}.modality") != "metadata")).cast("int"))
    has_content = F.coalesce(content_left.over(Window.partitionBy(_SID)), F.lit(0)) == 1
    orphan = F.struct(F.lit(index).alias("index"), F.lit(EMPTY_AFTER_FILTERING).alias("rule"),
                      F.lit(EMPTY_AFTER_FILTERING).alias("reason"))
    return flagged.withColumn(_DROP, F.coalesce(F.col(_DROP), F.when(~has_content, orphan)))


def _summary(flagged: DataFrame, checks) -> DataFrame:
    """Per check, in ledger order: rows `evaluated` (applies, not dropped by an earlier check), `dropped` (ledger rows
    naming it), `kept` and `failed` (rows it fails whatever the order); then the total. evaluated = dropped + kept."""
    index = F.col(f"{_DROP}.index")
    orphan_check = (EMPTY_AFTER_FILTERING, "sample", F.lit(True), F.coalesce(index != len(checks), F.lit(True)))
    rows = []
    for i, (name, level, applies, result) in enumerate(checks + [orphan_check]):
        rows.append(F.struct(
            F.lit(i).alias("order"), F.lit(name).alias("rule"), F.lit(level).alias("level"),
            F.count_if(applies & (index.isNull() | (index >= i))).alias("evaluated"),
            F.count_if(index == i).alias("dropped"),
            F.count_if(applies & (index.isNull() | (index > i))).alias("kept"),
            F.count_if(_fails(applies, result)).alias("failed"),
        ))
    dropped = F.count_if(index.isNotNull())
    rows.append(F.struct(
        F.lit(len(rows)).alias("order"), F.lit("total").alias("rule"), F.lit(None).cast("string").alias("level"),
        F.count(F.lit(1)).alias("evaluated"), dropped.alias("dropped"), F.count_if(index.isNull()).alias("kept"),
        dropped.alias("failed"),
    ))
    return flagged.agg(F.array(*rows).alias("_rows")).select(F.inline("_rows"))
