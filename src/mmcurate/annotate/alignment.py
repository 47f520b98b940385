"""Image-text alignment from stored embeddings: the per-document similarity matrix and the policies over it.

`pair_scores` holds, for every document, the cosine similarity of each of its images with each of
its texts (`image_position`, `text_position`, `score`), computed by Spark from `image_embeddings`
and `text_embeddings` of the same model: no model runs here, and nothing is embedded twice.
`image_alignment` turns each document's matrix into one row per image item that recipes read:

- NeMo Curator's CLIP filter: `clip_max_similarity`, the image's best score over the document's
  texts (keep iff >= 0.15; an image whose document has no text has no row, so the rule drops it,
  as NeMo does), with the text that achieves it (`clip_best_text_position`).
- MMC4's assignment (allenai/mmc4 `linear_assignment.py`): images whose best score is below
  `min_similarity` are left unassigned; the rest are assigned to texts by a maximum-similarity
  bipartite matching, each text taking at most one image; when images outnumber texts, the
  images the matching leaves out go to their best text. `mmc4_text_position` records the text,
  `mmc4_similarity` the score.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from mmcurate.annotate.embeddings import embedded_items, fully_embedded
from mmcurate.schema import is_modality
from mmcurate.stage import ITEM_KEY, SAMPLE_KEY, Dependency, Stage
from mmcurate.vectors import dot

PAIR_SCORES = T.StructType([
    T.StructField("sample_id", T.StringType(), False),
    T.StructField("image_position", T.IntegerType(), False),
    T.StructField("text_position", T.IntegerType(), False),
    T.StructField("model", T.StringType(), False),
    T.StructField("score", T.DoubleType(), False),
])

IMAGE_ALIGNMENT = T.StructType([
    T.StructField("sample_id", T.StringType(), False),
    T.StructField("position", T.IntegerType(), False),
    T.StructField("clip_max_similarity", T.DoubleType(), False),
    T.StructField("clip_best_text_position", T.IntegerType(), False),
    T.StructField("mmc4_text_position", T.IntegerType(), True),
    T.StructField("mmc4_similarity", T.DoubleType(), True),
])


@dataclass(frozen=True)
class PairScores(Stage):
    """`items` (+ `image_embeddings`, `text_embeddings`) -> `pair_scores`: each document's image x text cosines.

    Incremental per sample: a document's pairs are computed once, when every one of its items has
    its embedding row (a document waits until then). Images or texts whose embedding is null
    (undecodable, empty) have no pairs. Only embeddings of the same model are paired.
    """

    name = table = "pair_scores"
    input = "items"
    joins = ("image_embeddings", "text_embeddings")
    key = ("sample_id", "image_position", "text_position")
    increment_by = SAMPLE_KEY
    version = "1"
    reads = {"sample_id": "string", "position": "int", "modality": "string", "image_id": "string",
             "text_content": "string"}
    schema = PAIR_SCORES

    def scope(self, items: DataFrame, image_embeddings: DataFrame, text_embeddings: DataFrame) -> DataFrame:
        images, texts = embedded_items(items, image_embeddings, text_embeddings)
        return (items.join(fully_embedded(items, image_embeddings, text_embeddings), "sample_id", "left_semi")
                .join(images, "sample_id", "left_semi").join(texts, "sample_id", "left_semi"))

    def compute(self, items: DataFrame, image_embeddings: DataFrame, text_embeddings: DataFrame) -> DataFrame:
        items = self.scope(items, image_embeddings, text_embeddings)
        images = (items.where(is_modality("image") & F.col("image_id").isNotNull())
                  .select("sample_id", F.col("position").alias("image_position"), "image_id")
                  .join(image_embeddings.where(F.col("embedding").isNotNull())
                        .select("image_id", "model", F.col("embedding").alias("_image")), "image_id"))
        texts = (text_embeddings.where(F.col("embedding").isNotNull())
                 .join(items.select("sample_id").distinct(), "sample_id", "left_semi")
                 .select("sample_id", F.col("position").alias("text_position"), "model",
                         F.col("embedding").alias("_text")))
        return images.join(texts, ["sample_id", "model"]).select(
            "sample_id", "image_position", "text_position", "model", dot(F.col("_image"), F.col("_text")).alias("score"))


def mmc4_assignment(scores: np.ndarray, min_similarity: float) -> list[int | None]:
    """For an images x texts matrix, the text index each image is assigned to (None: below min_similarity)."""
    from scipy.optimize import linear_sum_assignment

    assigned: list[int | None] = [None] * scores.shape[0]
    eligible = np.flatnonzero(scores.max(axis=1) >= min_similarity) if scores.shape[1] else np.array([], int)
    if eligible.size:
        rows, cols = linear_sum_assignment(scores[eligible], maximize=True)
        for r, c in zip(rows, cols):
            assigned[int(eligible[r])] = int(c)
        for i in eligible:  # images beyond the number of texts go to their best text
            if assigned[int(i)] is None:
                assigned[int(i)] = int(np.argmax(scores[i]))
    return assigned


@dataclass(frozen=True)
class ImageAlignment(Stage):
    """`pair_scores` -> `image_alignment`: per image item, NeMo's max similarity and MMC4's assigned text."""

    min_similarity: float = 0.15

    name = table = "image_alignment"
    input = "pair_scores"
    key = ITEM_KEY
    increment_by = SAMPLE_KEY
    version = "1"
    reads = {"sample_id": "string", "image_position": "int", "text_position": "int", "score": "double"}
    schema = IMAGE_ALIGNMENT
    requires = (Dependency("scipy", "scipy"),)

    def compute(self, pairs: DataFrame) -> DataFrame:
        return (pairs.select("sample_id", "image_position", "text_position", "score")
                .groupBy("sample_id").applyInPandas(lambda pairs: self.align_document(pairs), self.schema))

    def align_document(self, pairs: pd.DataFrame) -> pd.DataFrame:
        """One document's pairs -> one row per image (rows and columns in position order)."""
        matrix = pairs.pivot_table(index="image_position", columns="text_position", values="score", aggfunc="max")
        images, texts = list(matrix.index), list(matrix.columns)
        scores = matrix.to_numpy(dtype=float, na_value=-np.inf)
        best = scores.argmax(axis=1)
        assigned = mmc4_assignment(scores, self.min_similarity)
        return pd.DataFrame({
            "sample_id": pairs["sample_id"].iloc[0],
            "position": images,
            "clip_max_similarity": scores.max(axis=1),
            "clip_best_text_position": [texts[j] for j in best],
            "mmc4_text_position": pd.array([texts[a] if a is not None else None for a in assigned], dtype="Int32"),
            "mmc4_similarity": [float(scores[i, a]) if a is not None else None for i, a in enumerate(assigned)],
        })
