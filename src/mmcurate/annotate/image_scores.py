"""The `image_scores` and `image_qr` tables: each unique image decoded once per table, so recipes never re-decode."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from pyspark.sql import DataFrame
from pyspark.sql import types as T

from mmcurate.annotate.image_signals import image_signals, image_signals_and_pixels, qr_area_ratio, qr_signals
from mmcurate.images import MAX_PIXELS
from mmcurate.stage import IMAGE_KEY, Dependency, Stage, batch_size_conf, row_udf, expand

IMAGE_SCORES = T.StructType(
    [
        T.StructField("image_id", T.StringType(), False),
        T.StructField("decode_ok", T.BooleanType(), True),
        T.StructField("error", T.StringType(), True),
        T.StructField("format", T.StringType(), True),
        T.StructField("width", T.IntegerType(), True),
        T.StructField("height", T.IntegerType(), True),
        T.StructField("aspect_ratio", T.DoubleType(), True),
        T.StructField("n_bytes", T.LongType(), True),
        T.StructField("sharpness", T.DoubleType(), True),
        T.StructField("phash", T.LongType(), True),
    ]
)
"""One row per image_id; scores are null where the image did not decode (`error` says why)."""

IMAGE_QR = T.StructType(
    [
        T.StructField("image_id", T.StringType(), False),
        T.StructField("qr_area_ratio", T.DoubleType(), True),
    ]
)
"""One row per image_id it was computed for; null where the image did not decode. No row: not computed."""


@dataclass(frozen=True)
class PerImageStage(Stage):
    """A per-image pandas-UDF pass over the content-addressed `images` calling `score` on each image's bytes.

    The `images` table holds one row per image_id, so each distinct image is scored once however many
    documents use it. While it runs, Arrow batches reaching the UDF hold at most `batch_size` images
    (`spark_conf`, applied per operation by the annotate step).
    """

    max_pixels: int = MAX_PIXELS
    batch_size: int = 64

    operational = ("batch_size",)
    input = "images"
    key = IMAGE_KEY
    reads = {"image_id": "string", "binary_content": "binary"}
    requires = (Dependency("cv2", "opencv-python-headless"),)

    @property
    def spark_conf(self) -> dict[str, str]:
        return batch_size_conf(self.batch_size)

    def score(self, data) -> dict:
        raise NotImplementedError

    def score_with_pixels(self, data) -> tuple[dict, Optional[np.ndarray]]:
        """`score`, and the RGB array it decoded (None if none), for a stage scoring the same image next."""
        return self.score(data), None

    def score_pixels(self, data, rgb: Optional[np.ndarray]) -> dict:
        """`score`, given the RGB array `ImageScores` decoded from `data` (None: it did not, so decode here)."""
        return self.score(data)

    def compute(self, images: DataFrame) -> DataFrame:
        signals = row_udf(T.StructType(self.schema.fields[1:]), self.score)("binary_content")
        return expand(images, self.key, signals)


FUSED_FLAG = "_then_scored"
"""The column of a fused pass telling whether the second stage scored the image (its predicate held)."""


def fused_scores(images: DataFrame, first: PerImageStage, then: PerImageStage, wanted: Callable[[dict], bool]) -> DataFrame:
    """`first`'s and `then`'s signals of each image from one decode: `then` scores only the images whose `first`
    signals pass `wanted` (the recipe rules before `then`'s), reusing `first`'s pixels; FUSED_FLAG marks them."""
    fields = [*first.schema.fields[1:], *then.schema.fields[1:], T.StructField(FUSED_FLAG, T.BooleanType(), True)]
    skipped = {f.name: None for f in then.schema.fields[1:]}

    def score(data) -> dict:
        data = data if data is not None else b""
        row, rgb = first.score_with_pixels(data)
        if not wanted(row):
            return {**row, **skipped, FUSED_FLAG: False}
        return {**row, **then.score_pixels(data, rgb), FUSED_FLAG: True}

    return expand(images, first.key, row_udf(T.StructType(fields), score)("binary_content"))


@dataclass(frozen=True)
class ImageScores(PerImageStage):
    """`images` -> `image_scores`: decode check, header facts, sharpness and pHash from one OpenCV decode.

    >>> image_scores = images.transform(ImageScores())
    """

    name = table = "image_scores"
    version = "2"
    schema = IMAGE_SCORES

    def score(self, data) -> dict:
        """The signals of one image's bytes (a null scores as error 'empty')."""
        return image_signals(data if data is not None else b"", self.max_pixels)

    def score_with_pixels(self, data) -> tuple[dict, Optional[np.ndarray]]:
        return image_signals_and_pixels(data if data is not None else b"", self.max_pixels)


@dataclass(frozen=True)
class ImageQR(PerImageStage):
    """`images` -> `image_qr`: the QR-code area ratio (OpenCV's detector, ~10x a decode), scored on demand.

    With a recipe, the annotate step offers it only the images that the recipe's earlier image rules keep
    (NeMo's order: blur, then QR); images no rule needs get no row, and a later recipe that needs them
    scores just those.
    """

    name = table = "image_qr"
    version = "1"
    schema = IMAGE_QR
    on_demand = True

    def score(self, data) -> dict:
        return qr_signals(data if data is not None else b"", self.max_pixels)

    def score_pixels(self, data, rgb: Optional[np.ndarray]) -> dict:
        """The QR signal from pixels already decoded as `qr_signals` decodes them; bytes they were not decoded
        from (undecodable, or refused by the header probe) take `score`'s own path, so the value never differs."""
        return {"qr_area_ratio": qr_area_ratio(rgb)} if rgb is not None else self.score(data)
