"""The `sample_scores` and `paragraph_scores` tables: per-document and per-text-item signals that recipes select on."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import pandas as pd
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from mmcurate.annotate.text_signals import OBELICS_PUNCTUATION_MIN_WORDS, text_signals
from mmcurate.schema import require_columns

TEXT_SIGNALS = T.StructType(
    [
        T.StructField("word_count", T.LongType(), True),
        T.StructField("char_repetition_ratio", T.DoubleType(), True),
        T.StructField("word_repetition_ratio", T.DoubleType(), True),
        T.StructField("special_character_ratio", T.DoubleType(), True),
        T.StructField("stopword_ratio", T.DoubleType(), True),
        T.StructField("flagged_word_ratio", T.DoubleType(), True),
        T.StructField("punctuation_ratio", T.DoubleType(), True),
        T.StructField("mean_word_length", T.DoubleType(), True),
        T.StructField("symbol_word_ratio", T.DoubleType(), True),
        T.StructField("bullet_line_ratio", T.DoubleType(), True),
        T.StructField("ellipsis_line_ratio", T.DoubleType(), True),
        T.StructField("alpha_word_ratio", T.DoubleType(), True),
        T.StructField("lang", T.StringType(), True),
        T.StructField("lang_score", T.DoubleType(), True),
    ]
)
"""The columns of `text_signals` (OBELICS words and ratios, Gopher ratios, py3langid language)."""

SAMPLE_COUNTS = T.StructType(
    [
        T.StructField("sample_id", T.StringType(), False),
        T.StructField("n_images", T.LongType(), False),
        T.StructField("n_texts", T.LongType(), False),
        T.StructField("n_words", T.LongType(), False),
        T.StructField("image_text_ratio", T.DoubleType(), False),
        T.StructField("text_only", T.BooleanType(), False),
    ]
)
"""Counts per sample; `n_words` and `image_text_ratio` are NeMo Curator's image-to-text ratio inputs."""

# Python's str.isspace() characters, as a Java regex class: NeMo counts words with str.split().
_PY_WHITESPACE = (
    "\\x{9}-\\x{d}\\x{1c}-\\x{20}\\x{85}\\x{a0}\\x{1680}\\x{2000}-\\x{200a}"
    "\\x{2028}\\x{2029}\\x{202f}\\x{205f}\\x{3000}"
)
DOCUMENT_SEPARATOR = "\n\n"  # OBELICS joins a document's paragraphs with a blank line


def whitespace_words(text: Column) -> Column:
    """Number of whitespace-separated words, exactly Python's `len(str(text).split())`; 0 for null."""
    return F.coalesce(F.regexp_count(text, F.lit(f"[^{_PY_WHITESPACE}]+")), F.lit(0)).cast("long")


def _text_signals_udf(punctuation_min_words: int):
    """Iterator pandas UDF: text -> struct of `text_signals` (a null text scores as the empty string)."""
    names = TEXT_SIGNALS.fieldNames()

    @F.pandas_udf(TEXT_SIGNALS)
    def signals(batches: Iterator[pd.Series]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            rows = [text_signals(t or "", punctuation_min_words=punctuation_min_words) for t in batch]
            yield pd.DataFrame(rows, columns=names, dtype=object)

    return signals


@dataclass(frozen=True)
class SampleScores:
    """`items` -> `sample_scores`: per-sample counts (Spark aggregates) and document-level text signals.

    The document text is the sample's text items in position order joined with a blank line, the
    text OBELICS' document-level filters score. Metadata rows count as neither images nor text;
    every sample of `items` gets a row, text-only and metadata-only ones included.

    text_signals=False keeps only the counts (Spark built-ins, no Python): enough for NeMo-style
    recipes, and far cheaper than scoring every document's text.

    >>> sample_scores = items.transform(SampleScores())
    """

    text_signals: bool = True

    reads = {"sample_id": "string", "position": "int", "modality": "string", "text_content": "string"}
    adds = {f.name: f.dataType.simpleString() for f in SAMPLE_COUNTS.fields[1:] + TEXT_SIGNALS.fields}

    def __call__(self, items: DataFrame) -> DataFrame:
        require_columns(items, self.reads, where="SampleScores")
        is_text = F.coalesce(F.col("modality") == "text", F.lit(False))
        is_image = F.coalesce(F.col("modality") == "image", F.lit(False))
        texts = F.array_sort(F.collect_list(F.when(is_text, F.struct("position", "text_content"))))
        counts = items.groupBy("sample_id").agg(
            F.sum(is_image.cast("long")).alias("n_images"),
            F.sum(is_text.cast("long")).alias("n_texts"),
            F.sum(F.when(is_text, whitespace_words(F.col("text_content"))).otherwise(0)).alias("n_words"),
            F.array_join(F.transform(texts, lambda t: t["text_content"]), DOCUMENT_SEPARATOR).alias("_document"),
        )
        scored = counts.select(
            "sample_id",
            "n_images",
            "n_texts",
            "n_words",
            (F.col("n_images") / F.greatest(F.col("n_words"), F.lit(1))).alias("image_text_ratio"),
            (F.col("n_images") == 0).alias("text_only"),
            *([_text_signals_udf(0)("_document").alias("_s")] if self.text_signals else []),
        )
        return scored.select(*SAMPLE_COUNTS.fieldNames(), *(["_s.*"] if self.text_signals else []))


@dataclass(frozen=True)
class ParagraphScores:
    """`items` -> `paragraph_scores`: text signals per text item, for OBELICS' paragraph-level rules.

    Each text item is scored as one paragraph (readers emit one text item per paragraph); the
    punctuation ratio counts as passing below `punctuation_min_words` tokens, as OBELICS does.

    >>> paragraph_scores = items.transform(ParagraphScores())
    """

    punctuation_min_words: int = OBELICS_PUNCTUATION_MIN_WORDS

    reads = {"sample_id": "string", "position": "int", "modality": "string", "text_content": "string"}
    adds = {f.name: f.dataType.simpleString() for f in TEXT_SIGNALS.fields}

    def __call__(self, items: DataFrame) -> DataFrame:
        require_columns(items, self.reads, where="ParagraphScores")
        texts = items.where(F.col("modality") == "text")
        scored = texts.select(
            "sample_id", "position", _text_signals_udf(self.punctuation_min_words)("text_content").alias("_s")
        )
        return scored.select("sample_id", "position", "_s.*")
