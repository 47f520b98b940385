"""The `sample_counts`, `document_scores`, `paragraph_scores` and `web_quality_scores` tables: per-sample and
per-text-item signals."""
from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from mmcurate.annotate.text_signals import OBELICS_PUNCTUATION_MIN_WORDS, text_signals
from mmcurate.annotate.web_quality import web_quality_signals
from mmcurate.schema import document_texts, is_modality
from mmcurate.stage import ITEM_KEY, SAMPLE_KEY, Dependency, Stage, batch_size_conf, expand, row_udf

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


def whitespace_words(text: Column) -> Column:
    """Number of whitespace-separated words, exactly Python's `len(str(text).split())`; 0 for null."""
    return F.coalesce(F.regexp_count(text, F.lit(f"[^{_PY_WHITESPACE}]+")), F.lit(0)).cast("long")


_ITEM_READS = {"sample_id": "string", "position": "int", "modality": "string", "text_content": "string"}
DOCUMENT_SCORES = T.StructType([T.StructField("sample_id", T.StringType(), False), *TEXT_SIGNALS.fields])
PARAGRAPH_SCORES = T.StructType(
    [T.StructField("sample_id", T.StringType(), False), T.StructField("position", T.IntegerType(), False),
     *TEXT_SIGNALS.fields]
)



@dataclass(frozen=True)
class SampleCounts(Stage):
    """`items` -> `sample_counts`: images, texts and words per sample and NeMo's image-to-text ratio (Spark built-ins).

    Metadata rows count as neither images nor text; every sample of `items` gets a row, text-only
    and metadata-only ones included. The counts are of the *input*; a recipe's sample rules also
    see `kept_*` counts of what its item rules kept.

    >>> sample_counts = items.transform(SampleCounts())
    """

    name = table = "sample_counts"
    input = "items"
    key = SAMPLE_KEY
    version = "1"
    reads = {"sample_id": "string", "modality": "string", "text_content": "string"}
    schema = SAMPLE_COUNTS

    def compute(self, items: DataFrame) -> DataFrame:
        counts = items.groupBy("sample_id").agg(
            F.sum(is_modality("image").cast("long")).alias("n_images"),
            F.sum(is_modality("text").cast("long")).alias("n_texts"),
            F.sum(F.when(is_modality("text"), whitespace_words(F.col("text_content"))).otherwise(0)).alias("n_words"),
        )
        return counts.select(
            "sample_id", "n_images", "n_texts", "n_words",
            (F.col("n_images") / F.greatest(F.col("n_words"), F.lit(1))).alias("image_text_ratio"),
            (F.col("n_images") == 0).alias("text_only"),
        )


@dataclass(frozen=True)
class TextSignals(Stage):
    """Shared by the two text stages: `text_signals` of one string per row, in one pandas UDF."""

    punctuation_min_words: int = 0

    def score(self, text) -> dict:
        return text_signals(text or "", punctuation_min_words=self.punctuation_min_words)

    def signals(self, text: Column) -> Column:
        return row_udf(TEXT_SIGNALS, self.score)(text)


@dataclass(frozen=True)
class DocumentScores(TextSignals):
    """`items` -> `document_scores`: OBELICS and Gopher signals and the language of each sample's document text.

    The document text is the sample's text items in position order joined with a blank line, the
    text OBELICS' document-level filters score. Every sample gets a row (an empty document scores
    as the empty string).

    >>> document_scores = items.transform(DocumentScores())
    """

    name = table = "document_scores"
    input = "items"
    key = SAMPLE_KEY
    version = "1"
    reads = _ITEM_READS
    schema = DOCUMENT_SCORES

    def compute(self, items: DataFrame) -> DataFrame:
        return expand(document_texts(items), self.key, self.signals(F.col("document")))


@dataclass(frozen=True)
class ParagraphScores(TextSignals):
    """`items` -> `paragraph_scores`: text signals per text item, for OBELICS' paragraph-level rules.

    Each text item is scored as one paragraph (readers emit one text item per paragraph); the
    punctuation ratio counts as passing below `punctuation_min_words` tokens, as OBELICS does.

    >>> paragraph_scores = items.transform(ParagraphScores())
    """

    punctuation_min_words: int = OBELICS_PUNCTUATION_MIN_WORDS

    name = table = "paragraph_scores"
    input = "items"
    key = ITEM_KEY
    version = "1"
    reads = _ITEM_READS
    schema = PARAGRAPH_SCORES

    def scope(self, items: DataFrame) -> DataFrame:
        return items.where(is_modality("text"))

    def compute(self, items: DataFrame) -> DataFrame:
        return expand(self.scope(items), self.key, self.signals(F.col("text_content")))


_WEB_DOUBLES = ("gopher_mean_word_length", "gopher_hash_ratio", "gopher_ellipsis_ratio", "gopher_bullet_lines",
                "gopher_end_ellipsis_lines", "gopher_alpha_words", "dup_para_frac", "dup_para_char_frac",
                "dup_line_frac", "dup_line_char_frac", "top_2_gram_frac", "top_3_gram_frac", "top_4_gram_frac",
                *[f"dup_{n}_gram_frac" for n in range(5, 11)], "fineweb_punct_lines", "fineweb_short_lines",
                "fineweb_dup_line_chars", "fineweb_newline_words")
WEB_QUALITY = T.StructType(
    [T.StructField("gopher_words", T.LongType(), True), T.StructField("gopher_stop_words", T.IntegerType(), True)]
    + [T.StructField(name, T.DoubleType(), True) for name in _WEB_DOUBLES]
    + [T.StructField("c4_lorem_ipsum", T.BooleanType(), True), T.StructField("c4_curly_bracket", T.BooleanType(), True),
       T.StructField("c4_sentences", T.IntegerType(), True), T.StructField("c4_kept_lines", T.IntegerType(), True)]
)
"""The columns of `web_quality.web_quality_signals`: Gopher quality and repetition, C4 and FineWeb (datatrove's
definitions); ratios are null where their denominator is 0."""


@dataclass(frozen=True)
class WebQualityScores(Stage):
    """`items` -> `web_quality_scores`: Gopher quality and repetition, C4 and FineWeb signals of each sample's
    document text (text items joined by a blank line), as datatrove computes them (spaCy English words).

    >>> scores = items.transform(WebQualityScores())   # then the gopher, c4 or fineweb recipe
    """

    batch_size: int = 64

    name = table = "web_quality_scores"
    input = "items"
    key = SAMPLE_KEY
    version = "1"
    operational = ("batch_size",)
    reads = _ITEM_READS
    schema = T.StructType([T.StructField("sample_id", T.StringType(), False), *WEB_QUALITY.fields])
    requires = (Dependency("spacy", "spacy"),)

    @property
    def spark_conf(self) -> dict[str, str]:
        return batch_size_conf(self.batch_size)

    def score(self, text) -> dict:
        return web_quality_signals(text)

    def compute(self, items: DataFrame) -> DataFrame:
        return expand(document_texts(items), self.key, row_udf(WEB_QUALITY, self.score)(F.col("document")))


@dataclass(frozen=True)
class ParagraphWebQualityScores(WebQualityScores):
    """`items` -> `paragraph_web_quality_scores`: the same signals per text item, for paragraph- or line-level
    rules (e.g. drop a text item none of whose lines C4 keeps: `c4_kept_lines > 0` at the text level)."""

    name = table = "paragraph_web_quality_scores"
    key = ITEM_KEY
    schema = T.StructType([T.StructField("sample_id", T.StringType(), False),
                           T.StructField("position", T.IntegerType(), False), *WEB_QUALITY.fields])

    def scope(self, items: DataFrame) -> DataFrame:
        return items.where(is_modality("text"))

    def compute(self, items: DataFrame) -> DataFrame:
        return expand(self.scope(items), self.key, row_udf(WEB_QUALITY, self.score)(F.col("text_content")))
