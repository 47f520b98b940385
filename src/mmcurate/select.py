"""Selection: a recipe of SQL predicates over signal tables decides which items stay; a ledger says why the rest went.

A row is kept iff every rule that applies to it evaluates to TRUE; FALSE and NULL both drop it
(NULL: a signal the rule reads is missing, e.g. an undecodable or URL-only image). Item rules never
depend on each other; sample rules see the input's signals and `kept_*` counts of what the item
rules kept, so their order cannot change the kept set. The ledger names, for each dropped item,
the first rule in recipe order that did not hold. See docs/selection.md.

>>> recipe = Recipe.from_yaml("nemo_default")
>>> selection = recipe.apply(items, [SignalTable("image_scores", ("image_id",), image_scores)])
>>> selection.summary.show(); selection.drops.groupBy("rule").count().show()
"""
from __future__ import annotations

import operator
import re
from dataclasses import dataclass
from functools import reduce
from pathlib import Path
from typing import Callable, Iterable, Optional

from pyspark import StorageLevel
from pyspark.errors import AnalysisException
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from mmcurate.annotate.text_scores import whitespace_words
from mmcurate.packaged import load_spec, packaged_names
from mmcurate.schema import is_modality, renumber_positions, require_columns, valid_item
from mmcurate.stage import IMAGE_KEY, ITEM_KEY, SAMPLE_KEY

LEVELS = ("image", "text", "sample")
STAGE = "select"
VALID_ITEM = "valid_item"
EMPTY_AFTER_FILTERING = "empty_after_filtering"
PREDICATE_FALSE = "predicate_false"
PREDICATE_NULL = "predicate_null"
NOT_COMPUTED = "not_computed"
_RESERVED_NAMES = frozenset({VALID_ITEM, EMPTY_AFTER_FILTERING, "total"})

DROPS = T.StructType(
    [
        T.StructField("sample_id", T.StringType(), False),
        T.StructField("position", T.IntegerType(), False),
        T.StructField("modality", T.StringType(), True),
        T.StructField("stage", T.StringType(), False),
        T.StructField("rule", T.StringType(), False),
        T.StructField("reason", T.StringType(), False),
        T.StructField("detail", T.StringType(), True),
        T.StructField("recipe", T.StringType(), False),
        T.StructField("recipe_version", T.StringType(), False),
    ]
)
"""The ledger: one row per dropped input item, at its input position; input items = kept + these.
`detail` is the failing rule's `detail` expression on that item (e.g. the score), null without one."""

LEVEL_KEYS = {"image": (IMAGE_KEY, ITEM_KEY), "text": (ITEM_KEY,), "sample": (SAMPLE_KEY,)}
"""The keys of the tables each level's rules can read: image items join image_id- and item-keyed tables."""

KEPT = T.StructType(
    [
        T.StructField("kept_images", T.LongType(), False),
        T.StructField("kept_texts", T.LongType(), False),
        T.StructField("kept_words", T.LongType(), False),
        T.StructField("kept_image_text_ratio", T.DoubleType(), False),
    ]
)
"""What sample rules see of the item rules' outcome, per sample: image and text items kept, words in the kept
texts (Python's `str.split()`), and NeMo's image-to-text ratio over them (`kept_images / max(kept_words, 1)`)."""
KEPT_SOURCE = "kept counts"

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_RULE_KEYS = {"name", "level", "predicate", "detail", "description", "source"}
_RECIPE_KEYS = {"name", "version", "description", "rules", "tables", "drop_invalid_rows"}
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
# joins and the windows), the first failing item check, and the first failing check.
_ITEM, _SID, _ITEM_DROP, _DROP = "_sel_item", "_sel_sample_id", "_sel_item_drop", "_sel_drop"


class RecipeError(ValueError):
    """A recipe is malformed, or a rule's predicate is not a deterministic boolean over its level's table."""


@dataclass(frozen=True)
class Rule:
    """One keep-condition: `predicate` (Spark SQL, TRUE = keep) evaluated per row of its level.

    level: "image" (image items with the image_id- and item-keyed signal tables), "text" (text items
    with the item-keyed tables) or "sample" (sample-keyed tables and the `kept_*` counts; a failure
    drops the whole sample). detail: an optional SQL expression recorded in the ledger per drop.
    """

    name: str
    level: str
    predicate: str
    description: str = ""
    source: str = ""
    detail: Optional[str] = None

    def __post_init__(self):
        if not isinstance(self.name, str) or not _NAME.match(self.name) or self.name in _RESERVED_NAMES:
            raise RecipeError(f"rule name {self.name!r} must be an identifier other than {sorted(_RESERVED_NAMES)}")
        if self.level not in LEVELS:
            raise RecipeError(f"rule {self.name!r}: level must be one of {LEVELS}, got {self.level!r}")
        if not isinstance(self.predicate, str) or not self.predicate.strip():
            raise RecipeError(f"rule {self.name!r}: predicate must be a non-empty SQL expression")
        if self.detail is not None and (not isinstance(self.detail, str) or not self.detail.strip()):
            raise RecipeError(f"rule {self.name!r}: detail must be a non-empty SQL expression when given")

    def columns(self) -> set[str]:
        """The bare words of the predicate and detail (lower case): the columns they may read."""
        return column_words(self.predicate) | (column_words(self.detail) if self.detail else set())


    def row_test(self, columns: Iterable[str]) -> Optional[Callable[[dict], bool]]:
        """The predicate as a Python test of one row's values, when it is a conjunction of boolean columns
        (`decode_ok`, `NOT x`) and comparisons of a column with a number (`sharpness >= 100`) over `columns`; None
        for anything else. It keeps exactly what the select keeps: a NULL or NaN value keeps nothing."""
        known = {c.lower() for c in columns}
        tests = []
        for part in _AND.split(self.predicate.strip()):
            flag, compare = _FLAG.match(part), _COMPARE.match(part)
            if flag and flag["column"].lower() in known:
                tests.append(_flag_test(flag["column"].lower(), bool(flag["negated"])))
            elif compare and compare["column"].lower() in known:
                tests.append(_compare_test(compare["column"].lower(), compare["op"], float(compare["number"])))
            else:
                return None
        return lambda row: all(test(row) for test in tests)


_AND = re.compile(r"\s+AND\s+", re.IGNORECASE)
_FLAG = re.compile(r"^\s*(?P<negated>NOT\s+)?(?P<column>[A-Za-z_][A-Za-z0-9_]*)\s*$", re.IGNORECASE)
_COMPARE = re.compile(r"^\s*(?P<column>[A-Za-z_][A-Za-z0-9_]*)\s*(?P<op>>=|<=|<>|!=|=|>|<)\s*"
                      r"(?P<number>[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?)\s*$")
_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt, "=": operator.eq, "<>": operator.ne,
    "!=": operator.ne,
}


def _flag_test(column: str, negated: bool) -> Callable[[dict], bool]:
    return lambda row: isinstance(row.get(column), bool) and row[column] is not negated


def _compare_test(column: str, op: str, number: float) -> Callable[[dict], bool]:
    compare = _OPS[op]

    def test(row: dict) -> bool:
        value = row.get(column)
        if value is None or isinstance(value, bool) or value != value:  # NULL and NaN keep nothing
            return False
        return compare(value, number)

    return test


def column_words(expression: str) -> set[str]:
    """Identifiers outside strings and comments that are not calls, and backquoted names, lower-cased."""
    found = set()
    for lexeme in _LEXEMES.finditer(expression):
        if lexeme.group("word") and not lexeme.group("call"):
            found.add(lexeme.group("word").lower())
        elif lexeme.group(0).startswith("`"):
            found.add(lexeme.group(0)[1:-1].replace("``", "`").lower())
    return found


@dataclass(frozen=True)
class SignalTable:
    """A table rules can read: its `name`, the `key` it is unique on, and its rows (`df`).

    on_demand: written by an on-demand stage (`Stage.on_demand`), so a key without a row was not computed: an
    item rule reaching such a key drops it with reason `not_computed`, never as a NULL score.
    """

    name: str
    key: tuple[str, ...]
    df: DataFrame
    on_demand: bool = False


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
    """A named, versioned list of rules; `apply` turns items and signal tables into a `Selection`.

    tables: (name, key) of tables the recipe reads whose key no annotate stage recorded (tables
    made with SQL, say); tables the annotate step wrote are found without it.
    drop_invalid_rows: drop items that are not metadata at -1 or text/image at >= 0 (the `valid_item` check,
    NeMo Curator's default); False keeps them, e.g. rows of another modality that no rule reads.
    """

    name: str
    version: str
    rules: tuple[Rule, ...]
    description: str = ""
    tables: tuple[tuple[str, tuple[str, ...]], ...] = ()
    drop_invalid_rows: bool = True

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise RecipeError(f"a recipe's name must be a non-empty string, got {self.name!r}")
        if not isinstance(self.version, str) or not self.version:
            raise RecipeError(f"recipe {self.name!r}: version must be a non-empty string (quote it in YAML)")
        if not isinstance(self.drop_invalid_rows, bool):
            raise RecipeError(f"recipe {self.name!r}: drop_invalid_rows must be true or false")
        names = [rule.name for rule in self.rules]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise RecipeError(f"recipe {self.name!r}: rule names must be unique, repeated: {repeated}")
        for table, key in self.tables:
            if not _NAME.match(str(table)) or not key or not all(isinstance(k, str) and _NAME.match(k) for k in key):
                raise RecipeError(f"recipe {self.name!r}: tables maps a table name to its key columns, "
                                  f"got {table!r}: {key!r}")

    @classmethod
    def from_yaml(cls, source: str | Path) -> "Recipe":
        """Load a recipe from a YAML file, or a packaged one by name (see `packaged_recipes()`)."""
        data = load_spec(source, "recipes", "recipe", RecipeError)
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: dict) -> "Recipe":
        """Build from the YAML structure: name, version, description?, tables?: {name: [key...]},
        drop_invalid_rows?, rules: [{name, level, predicate, detail?, description?, source?}]."""
        if not isinstance(data, dict) or not {"name", "version", "rules"} <= set(data):
            raise RecipeError("a recipe is a mapping with keys name, version and rules")
        _no_unknown_keys(data, _RECIPE_KEYS, f"recipe {data['name']!r}")
        if not isinstance(data["rules"], list):
            raise RecipeError(f"recipe {data['name']!r}: rules must be a list")
        tables = data.get("tables") or {}
        if not isinstance(tables, dict) or not all(isinstance(k, list) for k in tables.values()):
            raise RecipeError(f"recipe {data['name']!r}: tables maps each table name to a list of key columns")
        rules = []
        for raw in data["rules"]:
            if not isinstance(raw, dict):
                raise RecipeError(f"recipe {data['name']!r}: each rule is a mapping, got {raw!r}")
            _no_unknown_keys(raw, _RULE_KEYS, f"rule {raw.get('name')!r}")
            if not {"name", "level", "predicate"} <= set(raw):
                raise RecipeError(f"rule {raw.get('name')!r}: name, level and predicate are required")
            rules.append(Rule(**raw))
        return cls(data["name"], data["version"], tuple(rules), data.get("description", ""),
                   tuple((name, tuple(key)) for name, key in tables.items()), data.get("drop_invalid_rows", True))

    def plan(self, items: DataFrame, tables: Iterable[SignalTable] = ()) -> dict[str, list[tuple[SignalTable, list[str]]]]:
        """Per level, the tables its rules read and which of their columns, found from the rules' words.

        A level reads the tables whose key it has (`LEVEL_KEYS`); a column a rule names that is in
        two of its sources (two tables, or items and a table) is an error naming both.
        """
        require_columns(items, {"sample_id": "string", "position": "int", "modality": "string"}, where="Recipe")
        tables = list(tables)
        seen = [t.name for t in tables]
        if len(set(seen)) != len(seen):
            raise RecipeError(f"recipe {self.name!r}: tables given twice: {sorted({n for n in seen if seen.count(n) > 1})}")
        for table in tables:
            require_columns(table.df, list(table.key), where=f"table {table.name}")
        plan = {}
        for level in LEVELS:
            rules = [r for r in self.rules if r.level == level]
            candidates = [t for t in tables if tuple(t.key) in LEVEL_KEYS[level]]
            sources = _sources(level, items, candidates)
            reads: dict[str, set[str]] = {}
            for rule in rules:
                for word in sorted(rule.columns()):
                    where = sources.get(word, [])
                    if len(where) > 1:
                        raise RecipeError(
                            f"rule {rule.name!r} ({level}): column {word!r} is in both {where[0]} and {where[1]}; "
                            "rename it in one of them (or pass only one table)")
                    if where and where[0] not in ("items", KEPT_SOURCE):
                        reads.setdefault(where[0], set()).add(word)
                    elif not where:
                        _missing_column_hint(rule, word)
            plan[level] = [(t, [c for c in t.df.columns if c.lower() in reads[t.name]])
                           for t in candidates if t.name in reads]
        return plan

    def validate(self, items: DataFrame, tables: Iterable[SignalTable] = ()) -> None:
        """Check every rule against its level's columns (Spark analysis only, no job); raise RecipeError."""
        self._validate(items, self.plan(items, tables))

    def _validate(self, items: DataFrame, plan: dict) -> None:
        for level in ("image", "text"):
            if any(r.level == level for r in self.rules):
                frame = _item_frame(items, level, plan[level])
                for rule in (r for r in self.rules if r.level == level):
                    _check_rule(rule, frame.drop(_ITEM, _SID))
        if any(r.level == "sample" for r in self.rules):
            kept = [F.lit(0).cast(f.dataType).alias(f.name) for f in KEPT.fields]
            frame = _with_sample_columns(items.select(F.col("sample_id").alias(_SID)), plan["sample"], kept)
            for rule in (r for r in self.rules if r.level == "sample"):
                _check_rule(rule, frame.drop(_SID))

    def apply(self, items: DataFrame, tables: Iterable[SignalTable] = ()) -> Selection:
        """Validate, then evaluate every rule once per row and derive curated items, the ledger and the summary."""
        plan = self.plan(items, tables)
        self._validate(items, plan)
        checks = self._checks(plan)
        flagged = self._item_verdicts(items, plan)
        sample_rules = [(i, r) for i, r in enumerate(self.rules) if r.level == "sample"]
        if sample_rules:
            item_checks = [c for c in checks if c[1] != "sample"]
            flagged = _with_first_failure(flagged, item_checks, _ITEM_DROP)
            uses_kept = any(r.columns() & set(KEPT.fieldNames()) for _, r in sample_rules)
            if uses_kept:
                require_columns(items, {"text_content": "string"}, where="kept counts (kept_words)")
            columns = flagged.columns
            frame = _with_sample_columns(flagged, plan["sample"], _kept_columns() if uses_kept else [])
            flagged = frame.select(*columns, *_rule_columns(sample_rules, plan))
        flagged = _with_orphans(_with_first_failure(flagged, checks, _DROP), len(checks))
        kept = flagged.where(F.col(_DROP).isNull()).select(
            *[(F.col(_SID) if c == "sample_id" else F.col(_ITEM).getField(c)).alias(c) for c in items.columns]
        )
        return Selection(renumber_positions(kept), self._ledger(flagged), _summary(flagged, checks), flagged)

    def reaching(self, items: DataFrame, tables: Iterable[SignalTable], columns: Iterable[str]) -> Optional[DataFrame]:
        """The items that reach the first rule reading one of `columns`: those of its level (image or text) that
        item validity and every earlier rule of that level keep. These are the rows that need the columns' values.

        None when no rule reads them, or a sample rule does (a sample rule sees every item of its samples).
        The earlier rules' tables must exist; an on-demand table among them must cover what reaches its rules.
        """
        wanted = {c.lower() for c in columns}
        readers = [(i, rule) for i, rule in enumerate(self.rules) if rule.columns() & wanted]
        if not readers or any(rule.level == "sample" for _, rule in readers):
            return None
        reached = []
        for level in sorted({rule.level for _, rule in readers}):
            first = min(i for i, rule in readers if rule.level == level)
            earlier = Recipe(self.name, self.version, tuple(r for r in self.rules[:first] if r.level == level),
                             drop_invalid_rows=self.drop_invalid_rows)
            rows = items.where(is_modality(level))
            plan = earlier.plan(rows, tables)
            flagged = _with_first_failure(earlier._item_verdicts(rows, plan), earlier._checks(plan), _DROP)
            reached.append(flagged.where(F.col(_DROP).isNull()).select(f"{_ITEM}.*"))
        return reduce(DataFrame.unionByName, reached)

    def _item_verdicts(self, items: DataFrame, plan: dict) -> DataFrame:
        """Items as a `_sel_item` struct plus `_sel_r<i>` (verdict) and `_sel_d<i>` (detail) per item rule."""
        indexed = list(enumerate(self.rules))
        parts, rest = [], items
        for level in ("image", "text"):
            rules = [(i, r) for i, r in indexed if r.level == level]
            if rules:
                parts.append(_item_frame(items, level, plan[level]).select(_ITEM, _SID, *_rule_columns(rules, plan)))
                rest = rest.where(~is_modality(level))
        parts.append(rest.select(*_item_columns(rest)))
        return reduce(lambda a, b: a.unionByName(b, allowMissingColumns=True), parts)

    def _checks(self, plan: dict) -> list[tuple[str, str, Column, Column, Column, Column]]:
        """(name, level, applies, result, detail, computed) in ledger order: item validity, then the rules in
        recipe order. `computed` is false where a rule reads an on-demand table that has no row for the item."""
        modality, position = F.col(f"{_ITEM}.modality"), F.col(f"{_ITEM}.position")
        invalid = F.concat_ws(" at position ", F.coalesce(modality, F.lit("null")), position.cast("string"))
        checks = [(VALID_ITEM, "item", F.lit(True), valid_item(position, modality), invalid, F.lit(True))] \
            if self.drop_invalid_rows else []
        for i, rule in enumerate(self.rules):
            applies = F.lit(True) if rule.level == "sample" else is_modality(rule.level, modality)
            detail = F.col(f"_sel_d{i}") if rule.detail else F.lit(None).cast("string")
            computed = F.col(f"_sel_c{i}") if _on_demand_reads(rule, plan) else F.lit(True)
            checks.append((rule.name, rule.level, applies, F.col(f"_sel_r{i}"), detail, computed))
        return checks

    def _ledger(self, flagged: DataFrame) -> DataFrame:
        return flagged.where(F.col(_DROP).isNotNull()).select(
            F.col(_SID).alias("sample_id"),
            F.col(f"{_ITEM}.position").alias("position"),
            F.col(f"{_ITEM}.modality").alias("modality"),
            F.lit(STAGE).alias("stage"),
            F.col(f"{_DROP}.rule").alias("rule"),
            F.col(f"{_DROP}.reason").alias("reason"),
            F.col(f"{_DROP}.detail").alias("detail"),
            F.lit(self.name).alias("recipe"),
            F.lit(self.version).alias("recipe_version"),
        )


def packaged_recipes() -> list[str]:
    """Names of the recipes shipped in mmcurate/recipes."""
    return packaged_names("recipes")


def _no_unknown_keys(data: dict, allowed: set[str], where: str) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise RecipeError(f"{where}: unknown keys {unknown}; allowed: {sorted(allowed)}")



def _item_columns(items: DataFrame) -> list[Column]:
    """The whole item as one struct, and its sample_id on its own."""
    return [F.struct(*[F.col(f"`{c}`") for c in items.columns]).alias(_ITEM), F.col("sample_id").alias(_SID)]


def _sources(level: str, items: DataFrame, tables: list[SignalTable]) -> dict[str, list[str]]:
    """Lower-cased column name -> where a rule of `level` finds it: "items", the kept counts, or table names."""
    sources: dict[str, list[str]] = {}
    if level == "sample":
        for name in KEPT.fieldNames():
            sources.setdefault(name, []).append(KEPT_SOURCE)
        sources["sample_id"] = ["items"]
    else:
        for name in items.columns:
            sources.setdefault(name.lower(), []).append("items")
    for table in tables:
        key = {k.lower() for k in table.key}
        for name in table.df.columns:
            if name.lower() not in key:
                sources.setdefault(name.lower(), []).append(table.name)
    return sources


def _missing_column_hint(rule: Rule, word: str) -> None:
    """A rule names a column no given table has, which a catalogued annotate stage writes: say which one to run."""
    from mmcurate.annotate import stage_for_column

    for key in LEVEL_KEYS[rule.level]:
        stage = stage_for_column(word, key)
        if stage is not None:
            raise RecipeError(
                f"rule {rule.name!r} ({rule.level}) reads {word!r}, a column of table {stage.table!r}, which is missing: "
                f"run the annotate stage {stage.name!r} first (mmcurate annotate --stages {stage.name})")


def _item_frame(items: DataFrame, level: str, planned: list[tuple[SignalTable, list[str]]]) -> DataFrame:
    """The level's items (their columns, and the whole item as `_sel_item`) left-joined with the planned columns of
    each table on its key (an on-demand table also with `_sel_has_<name>`, true where it has the row). Tables are
    unique on their key, as the annotate stages make them."""
    rows = items.where(is_modality(level))
    frame = rows.select(*_item_columns(rows), *[F.col(f"`{c}`") for c in rows.columns])
    for table, columns in planned:
        present = [F.lit(True).alias(f"_sel_has_{table.name}")] if table.on_demand else []
        frame = frame.join(_nan_as_null(table.df.select(*table.key, *columns)).select("*", *present),
                           list(table.key), "left")
    return frame


def _on_demand_reads(rule: Rule, plan: dict) -> list[str]:
    """The on-demand tables an item rule reads columns of (sample rules: none, their stages are never narrowed)."""
    if rule.level == "sample":
        return []
    words = rule.columns()
    return [t.name for t, columns in plan[rule.level] if t.on_demand and {c.lower() for c in columns} & words]


def _with_sample_columns(frame: DataFrame, planned: list[tuple[SignalTable, list[str]]], extra: list[Column]) -> DataFrame:
    """`frame` (keyed by `_sel_sample_id`) with the planned sample tables' columns, `extra` columns and `sample_id`."""
    for table, columns in planned:
        frame = frame.join(_nan_as_null(table.df.select(F.col(table.key[0]).alias(_SID), *columns)), _SID, "left")
    return frame.select("*", *extra, F.col(_SID).alias("sample_id"))


def _kept_columns() -> list[Column]:
    """`KEPT` per sample over the flagged items: what passed every item check (`_sel_item_drop` null)."""
    sample = Window.partitionBy(_SID)
    kept = F.col(_ITEM_DROP).isNull()
    modality = F.col(f"{_ITEM}.modality")
    images = F.sum((kept & is_modality("image", modality)).cast("long")).over(sample)
    texts = F.sum((kept & is_modality("text", modality)).cast("long")).over(sample)
    words = F.sum(F.when(kept & is_modality("text", modality), whitespace_words(F.col(f"{_ITEM}.text_content")))
                  .otherwise(F.lit(0).cast("long"))).over(sample)
    return [images.alias("kept_images"), texts.alias("kept_texts"), words.alias("kept_words"),
            (images / F.greatest(words, F.lit(1))).alias("kept_image_text_ratio")]


def _rule_columns(rules: list[tuple[int, Rule]], plan: dict) -> list[Column]:
    """`_sel_r<i>` (the predicate), for rules with one `_sel_d<i>` (the detail as a string), and for rules reading
    on-demand tables `_sel_c<i>` (every such table has the item's row)."""
    columns = []
    for i, rule in rules:
        columns.append(F.expr(rule.predicate).alias(f"_sel_r{i}"))
        if rule.detail:
            columns.append(F.expr(rule.detail).cast("string").alias(f"_sel_d{i}"))
        tables = _on_demand_reads(rule, plan)
        if tables:
            present = [F.col(f"_sel_has_{name}").isNotNull() for name in tables]
            columns.append(reduce(lambda a, b: a & b, present).alias(f"_sel_c{i}"))
    return columns


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


def _check_rule(rule: Rule, table: DataFrame) -> None:
    """Spark parses and resolves the predicate against `table`: it must be a boolean valid in a WHERE clause,
    with no subquery and no call whose answer changes between runs; the detail, if any, any such expression.
    The lexical check runs first, so a predicate naming other tables is refused whatever views the session has."""
    for what, expression in (("predicate", rule.predicate), ("detail", rule.detail)):
        if expression is None:
            continue
        problem = _lexical_problem(expression)
        if problem:
            raise RecipeError(f"rule {rule.name!r} ({rule.level}): {what} {expression!r}: {problem}")
        try:
            expr = F.expr(expression)
            dtype = table.select(expr.alias("_value")).schema["_value"].dataType
            if what == "predicate" and not isinstance(dtype, T.BooleanType):
                raise RecipeError(
                    f"rule {rule.name!r}: predicate {expression!r} is {dtype.simpleString()}, not boolean"
                )
            table.where(expr if what == "predicate" else expr.isNotNull()).schema  # no aggregates, windows, generators
        except AnalysisException as e:
            message = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise RecipeError(
                f"rule {rule.name!r} ({rule.level}): {what} {expression!r} is invalid: {message}"
            ) from e


def _with_first_failure(flagged: DataFrame, checks, column: str) -> DataFrame:
    """Add `column` = (index, rule, reason, detail) of the first check in order that applies and is not TRUE."""
    failures = []
    for index, (name, _, applies, result, detail, computed) in enumerate(checks):
        reason = F.when(~computed, F.lit(NOT_COMPUTED)).when(result.isNull(), F.lit(PREDICATE_NULL)) \
            .otherwise(F.lit(PREDICATE_FALSE))
        verdict = F.struct(F.lit(index).alias("index"), F.lit(name).alias("rule"), reason.alias("reason"),
                           detail.alias("detail"))
        failures.append(F.when(_fails(applies, result), verdict))
    if not failures:  # no check at all (no item rules, drop_invalid_rows off): nothing fails
        return flagged.withColumn(column, F.lit(None).cast("struct<index:int,rule:string,reason:string,detail:string>"))
    return flagged.withColumn(column, F.coalesce(*failures))


def _fails(applies: Column, result: Column) -> Column:
    return applies & ~F.coalesce(result, F.lit(False))


def _with_orphans(flagged: DataFrame, index: int) -> DataFrame:
    """Drop as `empty_after_filtering` what the rules left of a sample without content (NeMo's orphan removal)."""
    content_left = F.max((F.col(_DROP).isNull() & (F.col(f"{_ITEM}.modality") != "metadata")).cast("int"))
    has_content = F.coalesce(content_left.over(Window.partitionBy(_SID)), F.lit(0)) == 1
    orphan = F.struct(F.lit(index).alias("index"), F.lit(EMPTY_AFTER_FILTERING).alias("rule"),
                      F.lit(EMPTY_AFTER_FILTERING).alias("reason"), F.lit(None).cast("string").alias("detail"))
    return flagged.withColumn(_DROP, F.coalesce(F.col(_DROP), F.when(~has_content, orphan)))


def _summary(flagged: DataFrame, checks) -> DataFrame:
    """Per check, in ledger order: rows `evaluated` (applies, not dropped by an earlier check), `dropped` (ledger rows
    naming it), `kept` and `failed` (rows it fails whatever the order); then the total. evaluated = dropped + kept."""
    index = F.col(f"{_DROP}.index")
    orphan_check = (EMPTY_AFTER_FILTERING, "sample", F.lit(True), F.coalesce(index != len(checks), F.lit(True)), None,
                    None)
    rows = []
    for i, (name, level, applies, result, _, _) in enumerate(checks + [orphan_check]):
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
