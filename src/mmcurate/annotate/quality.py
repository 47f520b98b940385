"""A DCLM-style fastText quality classifier: a score per document, and a helper that trains one from a table.

DCLM (Li et al. 2024) keeps the documents a bigram fastText model scores most like its positives
(OpenHermes / ELI5 answers vs random web text). `quality_scores` applies any supervised fastText
`.bin` (its own binary format: no pickle) to each document's text, newlines folded to spaces as
fastText's `predict` requires, and records the probability of the `positive_label`.
`train_quality_classifier` trains such a model from labelled rows of a table.

>>> train_quality_classifier(labelled, "/dbfs/models/quality.bin", text="document", label="is_good")
>>> steps.annotate(lake, [QualityScores(model_path="/dbfs/models/quality.bin")])
"""
from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from mmcurate.models.encoders import require_path
from mmcurate.models.runner import load_once
from mmcurate.models.stage import ModelStage
from mmcurate.schema import document_texts
from mmcurate.stage import SAMPLE_KEY, Dependency

QUALITY_SCORES = T.StructType([
    T.StructField("sample_id", T.StringType(), False),
    T.StructField("model", T.StringType(), False),
    T.StructField("quality_score", T.DoubleType(), True),
])
FASTTEXT = Dependency("fasttext", "fasttext-community")
_LINE_BREAKS = re.compile(r"\s*\n\s*")


def fasttext_line(text: str) -> str:
    """A text as one fastText input line (its predict refuses newlines)."""
    return _LINE_BREAKS.sub(" ", text or "").strip()


def load_fasttext(path: str):
    import fasttext

    return fasttext.load_model(require_path(path, "fastText model"))


@dataclass(frozen=True)
class QualityScores(ModelStage):
    """`items` -> `quality_scores`: P(`positive_label`) of each document's text under a fastText classifier
    (null for a document without text)."""

    positive_label: str = "__label__hq"
    device: str = "cpu"
    gpus: float = 0.0
    batch_size: int = 1024

    name = table = "quality_scores"
    input = "items"
    key = SAMPLE_KEY
    version = "1"
    reads = {"sample_id": "string", "position": "int", "modality": "string", "text_content": "string"}
    schema = QUALITY_SCORES
    requires = (FASTTEXT,)

    def compute(self, items: DataFrame) -> DataFrame:
        return self.map_batches(document_texts(items), self.score_partition, self.schema)

    def score_partition(self, frames: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        model = load_once(("fasttext", self.model_path), "cpu", lambda: load_fasttext(self.model_path))
        if self.positive_label not in model.labels:
            raise ValueError(f"{self.model_path}: no label {self.positive_label!r}; its labels are {model.labels}")
        for frame in frames:
            lines = [fasttext_line(text) for text in frame["document"]]
            labels, probabilities = model.predict(lines, k=-1)
            scores = [float(dict(zip(ls, ps)).get(self.positive_label, 0.0)) if line else None  # no text: no score
                      for line, ls, ps in zip(lines, labels, probabilities)]
            yield pd.DataFrame({"sample_id": frame["sample_id"], "model": self.model_name, "quality_score": scores})


def train_quality_classifier(labelled: DataFrame, path: str, text: str = "document", label: str = "label",
                             positive_label: str = "__label__hq", negative_label: str = "__label__cc",
                             epoch: int = 5, lr: float = 0.1, word_ngrams: int = 2, dim: int = 100,
                             min_count: int = 1, seed: int = 0) -> dict:
    """Train a fastText classifier on `labelled` (a boolean or 0/1 `label` column, a `text` column) and save it
    to `path`. The rows stream to a local training file (fastText trains on one machine: give it a labelled
    sample, not the corpus). Returns counts and the model's labels."""
    if text not in labelled.columns or label not in labelled.columns:
        raise ValueError(f"labelled rows need columns {text!r} and {label!r}; got {labelled.columns}")
    rows = labelled.select(F.col(text).alias("t"), F.col(label).cast("boolean").alias("y")).where(
        F.col("t").isNotNull() & F.col("y").isNotNull())
    counts = {True: 0, False: 0}

    def lines():
        for row in rows.toLocalIterator():
            line = fasttext_line(row.t)
            if line:
                counts[row.y] += 1
                yield f"{positive_label if row.y else negative_label} {line}"

    def both_classes():
        if not counts[True] or not counts[False]:
            raise ValueError(f"need positive and negative rows with text; got {counts[True]} and {counts[False]}")

    model = fit_fasttext(lines(), path, before_training=both_classes, epoch=epoch, lr=lr, word_ngrams=word_ngrams,
                         dim=dim, min_count=min_count, seed=seed)
    return {"positives": counts[True], "negatives": counts[False], "labels": list(model.labels), "path": path}


def fit_fasttext(lines: Iterable[str], path: str, before_training: Callable[[], None] = lambda: None,
                 epoch: int = 5, lr: float = 0.1, word_ngrams: int = 2, dim: int = 100, min_count: int = 1,
                 seed: int = 0):
    """Train a supervised fastText model on `lines` (`__label__x text`, streamed to a local file, one thread so
    a seed reproduces it) and save it to `path`; `before_training` may refuse the data once it is written."""
    import fasttext

    with tempfile.TemporaryDirectory() as tmp:
        train = os.path.join(tmp, "train.txt")
        with open(train, "w", encoding="utf-8") as f:
            for line in lines:
                f.write(line + "\n")
        before_training()
        model = fasttext.train_supervised(train, epoch=epoch, lr=lr, wordNgrams=word_ngrams, dim=dim,
                                          minCount=min_count, seed=seed, thread=1, verbose=0)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    model.save_model(path)
    return model
