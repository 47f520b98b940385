"""Exact duplicates: images by content hash, documents and paragraphs by normalised text hash.

The keeper of a group of copies is its first member in a deterministic order (smallest
`sample_id`, then `position`), so reruns on the same input keep the same copies. Aggregates are
`groupBy`s (combined map-side) joined back, never windows over a group, so one image in 100,000
documents or one boilerplate paragraph does not put all its rows in one task.

>>> steps.annotate(lake, [ImageCopies(), ParagraphDuplicates(domain_column="url")])
>>> # rules: image `image_documents <= 10`; text `NOT is_duplicate_paragraph`
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import reduce
from typing import Optional

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from mmcurate.schema import document_texts, is_modality, require_columns
from mmcurate.stage import IMAGE_KEY, ITEM_KEY, SAMPLE_KEY, Stage

_ITEM_READS = {"sample_id": "string", "position": "int", "modality": "string", "text_content": "string"}


def normalized_text(text: Column) -> Column:
    """Lower case, every run of whitespace one space, trimmed: what two copies of a text share after re-layout."""
    return F.trim(F.regexp_replace(F.lower(text), r"\s+", " "))


def text_hash(text: Column) -> Column:
    """sha256 hex of the normalised text; null for a text that is empty once normalised (never a duplicate)."""
    normal = normalized_text(text)
    return F.when(F.length(normal) > 0, F.sha2(normal, 256))


def _domains(items: DataFrame, domain_column: Optional[str]) -> DataFrame:
    """sample_id -> `domain`: the host of the metadata row's `domain_column` (the value itself if not a URL),
    or one global scope when domain_column is None."""
    samples = items.select("sample_id").distinct()
    if domain_column is None:
        return samples.select("sample_id", F.lit("").alias("domain"))
    require_columns(items, [domain_column], where="domain scope")
    value = F.col(f"`{domain_column}`").cast("string")
    per_sample = items.where(F.col("modality") == "metadata").groupBy("sample_id").agg(
        F.first(F.coalesce(F.try_parse_url(value, F.lit("HOST")), value), ignorenulls=True).alias("domain"))
    return samples.join(per_sample, "sample_id", "left").select("sample_id", F.coalesce("domain", F.lit("")).alias("domain"))


def _with_first(rows: DataFrame, group: list[str], order: list[str], prefix: str) -> DataFrame:
    """rows + `{prefix}_copies` (rows in its group) and `{prefix}_first` (the group's smallest `order` struct);
    rows whose group has a null column form groups of one."""
    complete = reduce(lambda a, b: a & b, [F.col(g).isNotNull() for g in group])
    firsts = (rows.where(complete)
              .groupBy(*group)
              .agg(F.count(F.lit(1)).alias(f"{prefix}_copies"), F.min(F.struct(*order)).alias(f"{prefix}_first")))
    joined = rows.join(firsts, group, "left")
    mine = F.struct(*[F.col(c) for c in order])
    return joined.select(
        *rows.columns,
        F.coalesce(f"{prefix}_copies", F.lit(1)).alias(f"{prefix}_copies"),
        F.coalesce(f"{prefix}_first", mine).alias(f"{prefix}_first"),
    )


@dataclass(frozen=True)
class ImageCopies(Stage):
    """`items` -> `image_copies`: per image, the documents using it and its occurrences.

    Rules: `image_documents <= 10` drops an image from every document when more than 10 documents
    use it, keeping their text (OBELICS drops image URLs seen more than 10 times);
    `image_first_sample = sample_id` keeps an image only in its first document. Text-only samples have
    no image: nothing here can touch them. Distribution of copies:
    `SELECT image_documents AS k, count(*) AS images FROM image_copies GROUP BY 1 ORDER BY 1`.
    """

    name = table = "image_copies"
    input = "items"
    key = IMAGE_KEY
    version = "1"
    incremental = False
    reads = {"sample_id": "string", "modality": "string", "image_id": "string"}
    schema = T.StructType([
        T.StructField("image_id", T.StringType(), False),
        T.StructField("image_documents", T.LongType(), False),
        T.StructField("image_occurrences", T.LongType(), False),
        T.StructField("image_first_sample", T.StringType(), True),
    ])

    def compute(self, items: DataFrame) -> DataFrame:
        images = items.where(is_modality("image") & F.col("image_id").isNotNull())
        # (image, document) pairs first, shuffled on both columns, then per image (combined map-side): a
        # distinct count would shuffle every pair of a hot image to one task
        pairs = images.groupBy("image_id", "sample_id").agg(F.count(F.lit(1)).alias("_n"))
        return pairs.groupBy("image_id").agg(
            F.count(F.lit(1)).alias("image_documents"),
            F.sum("_n").alias("image_occurrences"),
            F.min("sample_id").alias("image_first_sample"),
        )


@dataclass(frozen=True)
class SampleImageDuplicates(Stage):
    """`items` -> `sample_image_duplicates`: per sample, how many of its images are first used by another sample.

    Rule `NOT has_duplicate_image` keeps one document per duplicated image (the first by sample_id);
    every sample gets a row, and a text-only sample has 0 duplicate images, so it always passes.
    `image_duplicate_of` names the first such other sample (a good rule `detail`).
    """

    name = table = "sample_image_duplicates"
    input = "items"
    key = SAMPLE_KEY
    version = "1"
    incremental = False
    reads = {"sample_id": "string", "modality": "string", "image_id": "string"}
    schema = T.StructType([
        T.StructField("sample_id", T.StringType(), False),
        T.StructField("duplicate_images", T.LongType(), False),
        T.StructField("has_duplicate_image", T.BooleanType(), False),
        T.StructField("image_duplicate_of", T.StringType(), True),
    ])

    def compute(self, items: DataFrame) -> DataFrame:
        images = items.where(is_modality("image") & F.col("image_id").isNotNull())
        first = images.groupBy("image_id").agg(F.min("sample_id").alias("_first"))
        other = images.join(first, "image_id").where(F.col("_first") != F.col("sample_id"))
        per_sample = other.groupBy("sample_id").agg(F.count(F.lit(1)).alias("_n"), F.min("_first").alias("_of"))
        samples = items.select("sample_id").distinct().join(per_sample, "sample_id", "left")
        n = F.coalesce("_n", F.lit(0)).cast("long")
        return samples.select("sample_id", n.alias("duplicate_images"), (n > 0).alias("has_duplicate_image"),
                              F.col("_of").alias("image_duplicate_of"))


@dataclass(frozen=True)
class DocumentDuplicates(Stage):
    """`items` -> `document_duplicates`: whole documents by the hash of their normalised text (`document_texts`).

    Copies count within a scope: the whole lakehouse, or per domain (`domain_column`, e.g. the `url`
    passthrough: its host). Rule `NOT is_duplicate_document` keeps the first copy. A document
    without text has a null hash and is never a duplicate.
    """

    domain_column: Optional[str] = None

    name = table = "document_duplicates"
    input = "items"
    key = SAMPLE_KEY
    version = "1"
    incremental = False
    reads = _ITEM_READS
    schema = T.StructType([
        T.StructField("sample_id", T.StringType(), False),
        T.StructField("document_hash", T.StringType(), True),
        T.StructField("document_domain", T.StringType(), True),
        T.StructField("document_copies", T.LongType(), False),
        T.StructField("document_first_sample", T.StringType(), True),
        T.StructField("is_duplicate_document", T.BooleanType(), False),
    ])

    def compute(self, items: DataFrame) -> DataFrame:
        documents = document_texts(items).select("sample_id", text_hash(F.col("document")).alias("document_hash"))
        documents = documents.join(_domains(items, self.domain_column), "sample_id")
        flagged = _with_first(documents, ["domain", "document_hash"], ["sample_id"], "document")
        first = F.col("document_first.sample_id")
        return flagged.select(
            "sample_id", "document_hash", F.col("domain").alias("document_domain"), "document_copies",
            first.alias("document_first_sample"), (first != F.col("sample_id")).alias("is_duplicate_document"))


def _paragraphs(items: DataFrame, domain_column: Optional[str]) -> DataFrame:
    """Text items with `paragraph_hash`, `paragraph_copies` and `paragraph_first` (sample_id, position) in scope."""
    texts = items.where(is_modality("text")).select(
        "sample_id", "position", text_hash(F.col("text_content")).alias("paragraph_hash"))
    texts = texts.join(_domains(items, domain_column), "sample_id")
    return _with_first(texts, ["domain", "paragraph_hash"], ["sample_id", "position"], "paragraph")


def _is_repeat(first: Column) -> Column:
    return (first["sample_id"] != F.col("sample_id")) | (first["position"] != F.col("position"))


@dataclass(frozen=True)
class ParagraphDuplicates(Stage):
    """`items` -> `paragraph_duplicates`: each text item's normalised-text hash and whether an earlier one has it.

    "Earlier" is the order (sample_id, position), within the scope (global, or per domain of
    `domain_column`). Rule `NOT is_duplicate_paragraph` removes a paragraph seen before (MINT-1T,
    OmniCorpus); blank paragraphs are never duplicates.
    """

    domain_column: Optional[str] = None

    name = table = "paragraph_duplicates"
    input = "items"
    key = ITEM_KEY
    version = "1"
    incremental = False
    reads = _ITEM_READS
    schema = T.StructType([
        T.StructField("sample_id", T.StringType(), False),
        T.StructField("position", T.IntegerType(), False),
        T.StructField("paragraph_hash", T.StringType(), True),
        T.StructField("paragraph_copies", T.LongType(), False),
        T.StructField("paragraph_first_sample", T.StringType(), True),
        T.StructField("is_duplicate_paragraph", T.BooleanType(), False),
    ])

    def compute(self, items: DataFrame) -> DataFrame:
        first = F.col("paragraph_first")
        return _paragraphs(items, self.domain_column).select(
            "sample_id", "position", "paragraph_hash", "paragraph_copies",
            first["sample_id"].alias("paragraph_first_sample"), _is_repeat(first).alias("is_duplicate_paragraph"))


@dataclass(frozen=True)
class DocumentParagraphDuplicates(Stage):
    """`items` -> `document_paragraph_duplicates`: per sample, the share of its paragraphs seen before.

    Rule `duplicate_paragraph_share <= 0.8` drops a document mostly made of paragraphs seen
    elsewhere (MINT-1T / OmniCorpus). Every sample gets a row (no paragraphs: share 0).
    """

    domain_column: Optional[str] = None

    name = table = "document_paragraph_duplicates"
    input = "items"
    key = SAMPLE_KEY
    version = "1"
    incremental = False
    reads = _ITEM_READS
    schema = T.StructType([
        T.StructField("sample_id", T.StringType(), False),
        T.StructField("n_paragraphs", T.LongType(), False),
        T.StructField("duplicate_paragraphs", T.LongType(), False),
        T.StructField("duplicate_paragraph_share", T.DoubleType(), False),
    ])

    def compute(self, items: DataFrame) -> DataFrame:
        paragraphs = _paragraphs(items, self.domain_column).where(F.col("paragraph_hash").isNotNull())
        counts = paragraphs.groupBy("sample_id").agg(
            F.count(F.lit(1)).alias("_n"), F.sum(_is_repeat(F.col("paragraph_first")).cast("long")).alias("_dup"))
        n, dup = F.coalesce("_n", F.lit(0)).cast("long"), F.coalesce("_dup", F.lit(0)).cast("long")
        return items.select("sample_id").distinct().join(counts, "sample_id", "left").select(
            "sample_id", n.alias("n_paragraphs"), dup.alias("duplicate_paragraphs"),
            (dup / F.greatest(n, F.lit(1))).alias("duplicate_paragraph_share"))
