"""Table schemas of the lakehouse and the checks every stage uses to state what it reads.

The `items` columns follow NeMo Curator's interleaved schema where the two overlap, so data
moves between the tools without renames (see docs/tables.md).
"""
from __future__ import annotations

from typing import Iterable, Mapping, Union

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

METADATA_POSITION = -1
MODALITIES = ("text", "image", "metadata")

ITEMS = T.StructType(
    [
        T.StructField("sample_id", T.StringType(), False),
        T.StructField("position", T.IntegerType(), False),
        T.StructField("modality", T.StringType(), False),
        T.StructField("content_type", T.StringType(), True),
        T.StructField("text_content", T.StringType(), True),
        T.StructField("image_id", T.StringType(), True),
        T.StructField("image_url", T.StringType(), True),
        T.StructField("source_ref", T.StringType(), True),
        T.StructField("materialize_error", T.StringType(), True),
    ]
)
"""One row per item. Columns beyond these are passthrough fields and are kept intact. An image item whose
`image_id` is null has no bytes yet: a URL to fetch, a `source_ref` to materialize, or `materialize_error`."""

IMAGES = T.StructType(
    [
        T.StructField("image_id", T.StringType(), False),
        T.StructField("binary_content", T.BinaryType(), True),
        T.StructField("content_type", T.StringType(), True),
        T.StructField("width", T.IntegerType(), True),
        T.StructField("height", T.IntegerType(), True),
        T.StructField("n_bytes", T.LongType(), True),
    ]
)
"""Content-addressed image store: `image_id` is the sha256 hex digest of `binary_content`."""

QUARANTINE = T.StructType(
    [
        T.StructField("source", T.StringType(), False),
        T.StructField("locator", T.StringType(), False),
        T.StructField("stage", T.StringType(), False),
        T.StructField("reason", T.StringType(), False),
        T.StructField("detail", T.StringType(), True),
        T.StructField("sample_id", T.StringType(), True),
        T.StructField("snippet", T.StringType(), True),
    ]
)
"""Bad input: where it came from (`source` file, `locator` inside it), which stage refused it, why."""

SNIPPET_CHARS = 512
"""Quarantine keeps at most this many characters of the raw input, so a bad 1 GB blob stays small."""

CORE_ITEM_COLUMNS = tuple(f.name for f in ITEMS.fields)

ColumnSpec = Union[Iterable[str], Mapping[str, Union[str, T.DataType]], T.StructType]


class SchemaError(ValueError):
    """A DataFrame lacks columns a stage reads, or has them with the wrong type."""


def _as_type_map(spec: ColumnSpec) -> dict[str, T.DataType | None]:
    if isinstance(spec, T.StructType):
        return {f.name: f.dataType for f in spec.fields}
    if isinstance(spec, Mapping):
        return {
            name: (T._parse_datatype_string(t) if isinstance(t, str) else t)
            for name, t in spec.items()
        }
    return {name: None for name in spec}


def require_columns(df: DataFrame, spec: ColumnSpec, where: str = "input") -> DataFrame:
    """Fail fast, naming every missing or mistyped column and the columns present.

    `spec` is a list of names (any type), a mapping name -> type (DDL string or DataType), or a
    StructType. Returns `df` so it can sit inside `DataFrame.transform` chains.

    >>> require_columns(items, {"sample_id": "string", "position": "int"}, where="renumber")
    """
    wanted = _as_type_map(spec)
    present = {f.name: f.dataType for f in df.schema.fields}
    missing = [name for name in wanted if name not in present]
    mistyped = [
        f"{name} (expected {t.simpleString()}, got {present[name].simpleString()})"
        for name, t in wanted.items()
        if name in present and t is not None and present[name].simpleString() != t.simpleString()  # nullability aside
    ]
    if missing or mistyped:
        parts = []
        if missing:
            parts.append("missing columns: " + ", ".join(missing))
        if mistyped:
            parts.append("mistyped columns: " + ", ".join(mistyped))
        have = ", ".join(f"{n}:{t.simpleString()}" for n, t in present.items())
        raise SchemaError(f"{where}: {'; '.join(parts)}. Present columns: {have}")
    return df


def items_columns(items: DataFrame, where: str) -> DataFrame:
    """`items` checked against ITEMS; `materialize_error`, which tables written before it existed lack, is added
    as null so exports read old and new lakehouses alike."""
    if "materialize_error" not in items.columns:
        items = items.withColumn("materialize_error", F.lit(None).cast("string"))
    return require_columns(items, ITEMS, where=where)


def is_modality(value: str, modality: Column | None = None) -> Column:
    """modality = value, with null as false (a row of null modality belongs to no modality's rules)."""
    return F.coalesce((F.col("modality") if modality is None else modality) == value, F.lit(False))


DOCUMENT_SEPARATOR = "\n\n"
"""Between the texts of a document's text: OBELICS joins a document's paragraphs with a blank line."""


def document_texts(items: DataFrame) -> DataFrame:
    """One row per sample of `items` (`sample_id`, `document`): its text items in position order joined with a
    blank line ("" for a sample without text), the text document-level signals and dedup stages read."""
    require_columns(items, {"sample_id": "string", "position": "int", "modality": "string",
                            "text_content": "string"}, where="document_texts")
    texts = F.array_sort(F.collect_list(F.when(is_modality("text"), F.struct("position", "text_content"))))
    return items.groupBy("sample_id").agg(
        F.array_join(F.transform(texts, lambda t: t["text_content"]), DOCUMENT_SEPARATOR).alias("document"))


def renumber_positions(items: DataFrame) -> DataFrame:
    """Make content positions gap-free (0..n-1) per sample, keeping their order; metadata rows stay -1.

    Use after item-level drops (an image removed from the middle of a document), matching NeMo
    Curator's filter repair step.
    """
    require_columns(items, {"sample_id": "string", "position": "int"}, where="renumber_positions")
    content = F.col("position") >= 0
    order = Window.partitionBy("sample_id", content.alias("_is_content")).orderBy("position")
    new_position = F.when(content, F.row_number().over(order) - 1).otherwise(F.col("position"))
    return items.withColumn("position", new_position.cast("int"))


def drop_orphan_metadata(items: DataFrame) -> DataFrame:
    """Remove metadata rows of samples that have no content rows left (the sample disappears)."""
    require_columns(items, {"sample_id": "string", "modality": "string"}, where="drop_orphan_metadata")
    has_content = F.max((F.col("modality") != "metadata").cast("int")).over(Window.partitionBy("sample_id"))
    return items.withColumn("_has_content", has_content).where("_has_content = 1").drop("_has_content")


def valid_item(position: Column | None = None, modality: Column | None = None) -> Column:
    """True where (modality, position) is well formed: metadata at -1, text/image at >= 0."""
    position = F.col("position") if position is None else position
    modality = F.col("modality") if modality is None else modality
    return F.coalesce(
        ((modality == "metadata") & (position == METADATA_POSITION))
        | (modality.isin("text", "image") & (position >= 0)),
        F.lit(False),
    )
