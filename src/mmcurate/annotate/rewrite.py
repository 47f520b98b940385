"""Rewriting: a causal LM rephrases text items from a prompt template; both versions stay queryable.

`rewritten_texts` holds one row per rewritten text item, keyed like the item it rewrites, with the
new text and its provenance: the model, the prompt template (and its hash), the hash of the
original text and the generation settings in the commit. The `items` table is never changed;
`with_rewrites` gives the items with rewritten texts swapped in (the original kept beside it), for
a curated table, an export or a comparison. Each distinct text is generated once; temperature 0
(the default) is greedy decoding, deterministic across runs. A text too long for the model's
context is cut, never the instruction around it.

>>> steps.annotate(lake, [Rewrites(model_path="/dbfs/models/rephraser", prompt="Rewrite clearly:\\n{text}\\n")])
>>> rewritten = with_rewrites(lake.read("items"), lake.read("rewritten_texts"))
"""
from __future__ import annotations

import hashlib
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
from mmcurate.schema import require_columns
from mmcurate.stage import ITEM_KEY, Dependency

REWRITTEN_TEXTS = T.StructType([
    T.StructField("sample_id", T.StringType(), False),
    T.StructField("position", T.IntegerType(), False),
    T.StructField("original_hash", T.StringType(), False),
    T.StructField("model", T.StringType(), False),
    T.StructField("prompt_hash", T.StringType(), False),
    T.StructField("rewritten_text", T.StringType(), True),
    T.StructField("new_tokens", T.IntegerType(), True),
    T.StructField("error", T.StringType(), True),
])

_BY_HASH = T.StructType([T.StructField("text_hash", T.StringType(), False)] + REWRITTEN_TEXTS.fields[5:])


@dataclass(frozen=True)
class Rewrites(ModelStage):
    """`items` -> `rewritten_texts`: `prompt` (with `{text}`) completed by a causal LM for each text item."""

    prompt: str = "Rewrite the following text in clear, well-formed English.\n\nText: {text}\n\nRewritten:"
    max_new_tokens: int = 256
    max_prompt_tokens: int = 1024
    temperature: float = 0.0
    seed: int = 0
    min_chars: int = 1
    batch_size: int = 8

    name = table = "rewritten_texts"
    input = "items"
    key = ITEM_KEY
    version = "1"
    reads = {"sample_id": "string", "position": "int", "modality": "string", "text_content": "string"}
    schema = REWRITTEN_TEXTS
    requires = (Dependency("transformers", "transformers"),)

    def __post_init__(self):
        super().__post_init__()
        if "{text}" not in self.prompt:
            raise ValueError("prompt must contain {text}, where each item's text goes")
        if self.max_new_tokens < 1 or self.temperature < 0:
            raise ValueError("max_new_tokens must be >= 1 and temperature >= 0")

    @property
    def prompt_hash(self) -> str:
        return hashlib.sha256(self.prompt.encode()).hexdigest()[:16]

    def scope(self, items: DataFrame) -> DataFrame:
        return text_items(items)

    def compute(self, items: DataFrame) -> DataFrame:
        texts, unique = unique_texts(items)
        generated = self.map_batches(unique, self.generate_partition, _BY_HASH)
        return texts.join(generated, "text_hash").select(
            *ITEM_KEY, F.col("text_hash").alias("original_hash"), F.lit(self.model_name).alias("model"),
            F.lit(self.prompt_hash).alias("prompt_hash"), "rewritten_text", "new_tokens", "error")

    def generate_partition(self, frames: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        lm = cached_causal_lm(self.model_path, self.device, self.precision)
        batches = Batches(self.batch_size)
        for frame in frames:
            texts = [t.strip() for t in frame["text_content"]]
            prompts = [lm.prompt(self.prompt, t, self.max_prompt_tokens, self.max_new_tokens) for t in texts]
            outputs = batches.run_where(prompts, [len(t) >= self.min_chars for t in texts], lambda chunk: lm.generate(
                chunk, self.max_new_tokens, self.temperature, self.seed, self.max_prompt_tokens))
            yield pd.DataFrame({
                "text_hash": frame["text_hash"],
                "rewritten_text": [out[0] if out else None for out in outputs],
                "new_tokens": pd.array([out[1] if out else None for out in outputs], dtype="Int32"),
                "error": ["too_short" if out is None else None if out[0] else "empty_generation" for out in outputs]})


def with_rewrites(items: DataFrame, rewrites: DataFrame) -> DataFrame:
    """`items` with each rewritten text item's `text_content` replaced by its rewrite; `original_text` keeps
    the original (null where nothing was rewritten), `rewrite_model` says which model wrote it."""
    require_columns(rewrites, {"sample_id": "string", "position": "int", "rewritten_text": "string",
                               "model": "string"}, where="with_rewrites")
    done = rewrites.where(F.col("rewritten_text").isNotNull() & (F.length("rewritten_text") > 0)).select(
        *ITEM_KEY, "rewritten_text", F.col("model").alias("rewrite_model"))
    joined = items.join(done, list(ITEM_KEY), "left")
    changed = F.col("rewritten_text").isNotNull()
    return joined.select(
        *[F.when(changed, F.col("rewritten_text")).otherwise(F.col(c)).alias(c) if c == "text_content" else F.col(c)
          for c in items.columns],
        F.when(changed, F.col("text_content")).alias("original_text"), "rewrite_model")
