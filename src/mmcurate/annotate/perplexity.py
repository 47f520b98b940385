"""Perplexity under a causal LM: per text item, per document (token-weighted) and its dataset-wide decile.

`text_perplexity` scores each distinct text once (texts truncated to `max_tokens`) and stores the
summed negative log-likelihood and the number of predicted tokens, so `document_perplexity` can
weight texts by their tokens in Spark: exp(sum nll / sum tokens) per document. Its
`perplexity_decile` (1 = the least perplexing tenth) comes from approximate quantiles over all
documents, so a recipe or a mix reads "the middle 80%" without knowing the scale of a model.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator

import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from mmcurate.annotate.embeddings import text_items, unique_texts
from mmcurate.models.language import cached_causal_lm
from mmcurate.models.runner import Batches
from mmcurate.models.stage import ModelStage
from mmcurate.stage import ITEM_KEY, SAMPLE_KEY, Dependency, Stage

TEXT_PERPLEXITY = T.StructType([
    T.StructField("sample_id", T.StringType(), False),
    T.StructField("position", T.IntegerType(), False),
    T.StructField("model", T.StringType(), False),
    T.StructField("n_tokens", T.IntegerType(), True),
    T.StructField("nll_sum", T.DoubleType(), True),
    T.StructField("perplexity", T.DoubleType(), True),
    T.StructField("error", T.StringType(), True),
])

_BY_HASH = T.StructType([T.StructField("text_hash", T.StringType(), False)] + TEXT_PERPLEXITY.fields[3:])

DOCUMENT_PERPLEXITY = T.StructType([
    T.StructField("sample_id", T.StringType(), False),
    T.StructField("model", T.StringType(), False),
    T.StructField("document_tokens", T.LongType(), False),
    T.StructField("document_perplexity", T.DoubleType(), False),
    T.StructField("perplexity_decile", T.IntegerType(), False),
])


@dataclass(frozen=True)
class TextPerplexity(ModelStage):
    """`items` -> `text_perplexity`: a causal LM's perplexity of each text item (`model_path`: a transformers
    directory); a text of fewer than two tokens gets null and error `too_short`."""

    max_tokens: int = 1024
    batch_size: int = 16

    name = table = "text_perplexity"
    input = "items"
    key = ITEM_KEY
    version = "1"
    reads = {"sample_id": "string", "position": "int", "modality": "string", "text_content": "string"}
    schema = TEXT_PERPLEXITY
    requires = (Dependency("transformers", "transformers"),)

    def scope(self, items: DataFrame) -> DataFrame:
        return text_items(items)

    def compute(self, items: DataFrame) -> DataFrame:
        texts, unique = unique_texts(items)
        scores = self.map_batches(unique, self.score_partition, _BY_HASH)
        return texts.join(scores, "text_hash").select(*ITEM_KEY, F.lit(self.model_name).alias("model"),
                                                       *[f.name for f in _BY_HASH.fields[1:]])

    def score_partition(self, frames: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        lm = cached_causal_lm(self.model_path, self.device, self.precision)
        batches = Batches(self.batch_size)
        for frame in frames:
            texts = list(frame["text_content"])
            scored = batches.run(texts, lambda chunk: lm.token_nll(chunk, self.max_tokens))
            n_tokens = [n if n else None for n, _ in scored]
            nll = [v if n else None for n, v in scored]
            yield pd.DataFrame({
                "text_hash": frame["text_hash"],
                "n_tokens": pd.array(n_tokens, dtype="Int32"),
                "nll_sum": nll,
                "perplexity": [math.exp(v / n) if n else None for n, v in scored],
                "error": [None if n else "too_short" for n, _ in scored],
            })


@dataclass(frozen=True)
class DocumentPerplexity(Stage):
    """`text_perplexity` -> `document_perplexity`: token-weighted perplexity per document and its decile among
    all documents (recomputed whole when new texts are scored: deciles depend on every document)."""

    relative_error: float = 0.001

    name = table = "document_perplexity"
    input = "text_perplexity"
    key = SAMPLE_KEY
    version = "1"
    incremental = False
    reads = {"sample_id": "string", "model": "string", "n_tokens": "int", "nll_sum": "double"}
    schema = DOCUMENT_PERPLEXITY

    def compute(self, scores: DataFrame) -> DataFrame:
        docs = (scores.where(F.col("n_tokens").isNotNull())
                .groupBy("sample_id", "model")
                .agg(F.sum("n_tokens").cast("long").alias("document_tokens"), F.sum("nll_sum").alias("_nll"))
                .select("sample_id", "model", "document_tokens",
                        F.exp(F.col("_nll") / F.col("document_tokens")).alias("document_perplexity")))
        accuracy = int(1 / self.relative_error)
        cuts = docs.groupBy("model").agg(F.percentile_approx(
            "document_perplexity", [i / 10 for i in range(1, 10)], accuracy).alias("_cuts"))
        decile = F.lit(1) + F.size(F.filter("_cuts", lambda cut: cut < F.col("document_perplexity")))
        return docs.join(F.broadcast(cuts), "model").select(
            "sample_id", "model", "document_tokens", "document_perplexity", decile.cast("int").alias("perplexity_decile"))
