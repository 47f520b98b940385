"""The stage contract: what every annotate (and later dedup, model and mix) stage declares about itself.

A stage is a small frozen dataclass that turns one lakehouse table (`input`: `items` or `images`)
into a *signal table* unique on `key`. It declares the output `table`, its `version`, the columns it
`reads`, the exact `schema` it writes (key first), the Spark settings it wants while it runs, the
`resources` it needs and its optional dependencies (checked when the stage is built). Stages do no
I/O: `mmcurate.steps.annotate` reads the input, runs only the keys the table lacks, and appends.

>>> class Sharpness(Stage):
...     name = table = "sharpness"; input = "images"; key = IMAGE_KEY; version = "1"
...     reads = {"image_id": "string", "binary_content": "binary"}
...     schema = T.StructType([T.StructField("image_id", T.StringType(), False),
...                            T.StructField("sharpness", T.DoubleType(), True)])
...     def compute(self, images): return images.select("image_id", laplacian("binary_content").alias("sharpness"))
"""
from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
from dataclasses import dataclass
from typing import Any, ClassVar, Iterator, Mapping

import pandas as pd
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from mmcurate.schema import require_columns

IMAGE_KEY = ("image_id",)
ITEM_KEY = ("sample_id", "position")
SAMPLE_KEY = ("sample_id",)
_MAX_RECORDS = "spark.sql.execution.arrow.maxRecordsPerBatch"


class MissingDependencyError(ImportError):
    """A stage needs a package that is not installed; the message says what to install."""


@dataclass(frozen=True)
class Resources:
    """What one task of a stage needs: CPU cores, GPUs (fractions share a device) and GPU memory."""

    cpus: float = 1.0
    gpus: float = 0.0
    gpu_memory_gb: float = 0.0


@dataclass(frozen=True)
class Dependency:
    """An importable module a stage needs, with the pip requirement that provides it."""

    module: str
    install: str


class Stage:
    """Base of every stage: subclasses are frozen dataclasses whose fields are the stage's parameters.

    Class attributes to set: `name` (also the registry name), `table`, `input` (`items`, `images` or
    another stage's table), `key`, `version`, `reads`, `schema`; optionally `incremental`,
    `spark_conf`, `resources`, `requires`. Implement `compute`. Bump `version` whenever the same
    parameters would give different values: the annotate step then recomputes the table instead of
    mixing old and new rows.

    incremental=True: a key's row depends only on that key's input rows, so only new keys are
    computed (`increment_by`: the input columns that say a row is done, when the key is not an input
    column, e.g. a sample's image x text pairs are done per sample_id). Stages whose rows depend on the whole input (copy counts, duplicate clusters) set it
    False: their table is recomputed whenever the input table has a new version, else left alone.
    `joins` names further lakehouse tables `compute` reads (passed as keyword arguments by table name).
    `operational` names parameters that change how a stage runs but not its values (batch sizes,
    devices, threads): they stay out of the fingerprint, so tuning them never recomputes a table.
    on_demand=True: an expensive stage whose rows a recipe needs only where its earlier rules keep the row
    (QR after blur, a model score after the cheap heuristics): given recipes, the annotate step computes
    only those rows, and a key without a row is "not computed", which select refuses to read as a score.
    """

    name: ClassVar[str]
    table: ClassVar[str]
    input: ClassVar[str]
    key: ClassVar[tuple[str, ...]]
    version: ClassVar[str]
    reads: ClassVar[Mapping[str, str]]
    schema: ClassVar[T.StructType]
    incremental: ClassVar[bool] = True
    on_demand: ClassVar[bool] = False
    joins: ClassVar[tuple[str, ...]] = ()
    increment_by: ClassVar[tuple[str, ...] | None] = None
    operational: ClassVar[tuple[str, ...]] = ()
    resources: ClassVar[Resources] = Resources()
    requires: ClassVar[tuple[Dependency, ...]] = ()

    def __post_init__(self):
        check_dependencies(self)

    @property
    def params(self) -> dict[str, Any]:
        """The stage's parameters (its dataclass fields), as recorded in the commit that writes its rows."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)} if dataclasses.is_dataclass(self) else {}

    @property
    def spark_conf(self) -> dict[str, str]:
        """Runtime SQL settings the annotate step applies while this stage runs (and restores after)."""
        return {}

    @property
    def fingerprint(self) -> str:
        """Name, version and the parameters that affect values in one short hash: rows of a table are only ever
        from one fingerprint."""
        values = {k: v for k, v in self.params.items() if k not in self.operational}
        text = json.dumps({"name": self.name, "version": self.version, "params": values}, sort_keys=True,
                          default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def describe(self) -> dict[str, Any]:
        """What the commit info records about this stage."""
        return {"stage": self.name, "version": self.version, "params": self.params, "key": list(self.key),
                "fingerprint": self.fingerprint, "resources": dataclasses.asdict(self.resources),
                "on_demand": self.on_demand}

    @classmethod
    def needs_parameters(cls) -> tuple[str, ...]:
        """Parameters without a default (a model path): such a stage runs only from a config that gives them."""
        if not dataclasses.is_dataclass(cls):
            return ()
        missing = dataclasses.MISSING
        return tuple(f.name for f in dataclasses.fields(cls) if f.default is missing and f.default_factory is missing)

    def scope(self, df: DataFrame, **tables: DataFrame) -> DataFrame:
        """The input rows this stage writes rows for (all by default; text items for a per-text stage). The annotate
        step offers only these, so input rows that never give a row are not offered again on every run."""
        return df

    def compute(self, df: DataFrame, **tables: DataFrame) -> DataFrame:
        """The signal rows of `df` (the input table, possibly only its rows without a signal yet); `tables`
        holds the tables named in `joins`."""
        raise NotImplementedError

    def __call__(self, df: DataFrame, **tables: DataFrame) -> DataFrame:
        """Check the input, compute, and return exactly `schema`'s columns in its order."""
        require_columns(df, self.reads, where=type(self).__name__)
        missing = sorted(set(self.joins) - set(tables))
        if missing:
            raise ValueError(f"stage {self.name!r} reads the tables {missing}; pass them by name")
        out = self.compute(df, **{name: tables[name] for name in self.joins})
        require_columns(out, self.schema, where=f"{type(self).__name__} output")
        return out.select(*[F.col(f"`{f.name}`") for f in self.schema.fields])


def check_dependencies(stage: Stage) -> None:
    """Raise MissingDependencyError naming the module and the pip install that provides it."""
    for dep in stage.requires:
        if importlib.util.find_spec(dep.module) is None:
            raise MissingDependencyError(
                f"stage {stage.name!r} needs the {dep.module!r} module: pip install '{dep.install}'"
            )


def batch_size_conf(batch_size: int) -> dict[str, str]:
    """At most `batch_size` rows per Arrow batch reaching a pandas UDF (image bytes, model inputs)."""
    return {_MAX_RECORDS: str(batch_size)}


def row_udf(schema: T.StructType, per_row) -> Any:
    """An iterator pandas UDF calling `per_row(value) -> dict` on each value and returning a struct of `schema`.

    `per_row` is pickled with the UDF, so it may be a bound method of a (picklable) stage.
    """
    names = schema.fieldNames()

    @F.pandas_udf(schema)
    def run(batches: Iterator[pd.Series]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            # object dtype: a 64-bit hash or an int column with nulls must not pass through float
            yield pd.DataFrame([per_row(value) for value in batch], columns=names, dtype=object)

    return run


def expand(df: DataFrame, key: tuple[str, ...], value: Column) -> DataFrame:
    """The key columns of `df` and the fields of the struct `value` as columns (the UDF evaluated once per row)."""
    return df.select(*key, value.alias("_signals")).select(*key, "_signals.*")
