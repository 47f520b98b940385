"""`text_tokens`: how many tokens a tokenizer makes of each text item, counted once per distinct text.

A mix reads these counts to size documents and budgets in the tokens a model will see; the
tokenizer is a `tokenizer.json` (the `tokenizers` library's format, saved by every fast Hugging Face
tokenizer) or a directory holding one, read on the executors, never downloaded.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterator

import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from mmcurate.annotate.embeddings import text_items, unique_texts
from mmcurate.models.encoders import require_path
from mmcurate.models.runner import load_once
from mmcurate.models.stage import ModelStage
from mmcurate.stage import ITEM_KEY, Dependency, Resources

TEXT_TOKENS = T.StructType([
    T.StructField("sample_id", T.StringType(), False),
    T.StructField("position", T.IntegerType(), False),
    T.StructField("tokenizer", T.StringType(), False),
    T.StructField("n_tokens", T.LongType(), False),
])

_BY_HASH = T.StructType([T.StructField("text_hash", T.StringType(), False),
                         T.StructField("n_tokens", T.LongType(), False)])


@dataclass(frozen=True)
class TextTokenCounts(ModelStage):
    """`items` -> `text_tokens`: tokens per text item under the tokenizer at `model_path` (no special tokens)."""

    device: str = "cpu"
    batch_size: int = 1024

    name = table = "text_tokens"
    input = "items"
    key = ITEM_KEY
    version = "1"
    reads = {"sample_id": "string", "position": "int", "modality": "string", "text_content": "string"}
    schema = TEXT_TOKENS
    requires = (Dependency("tokenizers", "tokenizers"),)

    @property
    def resources(self) -> Resources:  # type: ignore[override]
        return Resources(cpus=1.0, gpus=0.0)

    def scope(self, items: DataFrame) -> DataFrame:
        return text_items(items)

    def compute(self, items: DataFrame) -> DataFrame:
        texts, unique = unique_texts(items)
        counts = self.map_batches(unique, self.count_partition, _BY_HASH)
        return texts.join(counts, "text_hash").select(*ITEM_KEY, F.lit(self.model_name).alias("tokenizer"), "n_tokens")

    def count_partition(self, frames: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        tokenizer = load_once(("tokenizer", self.model_path), "cpu", lambda: load_tokenizer(self.model_path))
        for frame in frames:
            encoded = tokenizer.encode_batch(list(frame["text_content"]), add_special_tokens=False)
            yield pd.DataFrame({"text_hash": frame["text_hash"], "n_tokens": [len(e.ids) for e in encoded]})


def load_tokenizer(path: str):
    """The `tokenizers.Tokenizer` in `path` (a tokenizer.json, or a directory holding one)."""
    from tokenizers import Tokenizer

    require_path(path, "tokenizer")
    file = os.path.join(path, "tokenizer.json") if os.path.isdir(path) else path
    return Tokenizer.from_file(require_path(file, "tokenizer.json"))
