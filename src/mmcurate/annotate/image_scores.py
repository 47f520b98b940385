"""The `image_scores` table: each unique image decoded once and its signals recorded, so recipes never re-decode."""
from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import DataFrame
from pyspark.sql import types as T

from mmcurate.annotate.image_signals import image_signals
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
        T.StructField("qr_area_ratio", T.DoubleType(), True),
        T.StructField("phash", T.LongType(), True),
    ]
)
"""One row per image_id; scores are null where the image did not decode (`error` says why)."""

_SIGNALS = T.StructType(IMAGE_SCORES.fields[1:])


@dataclass(frozen=True)
class ImageScores(Stage):
    """`images` -> `image_scores`: one pandas-UDF pass calling `image_signals` per row of the content-addressed store.

    The `images` table holds one row per image_id, so each distinct image is decoded once however
    many documents use it. While it runs, Arrow batches reaching the UDF hold at most `batch_size`
    images (`spark_conf`, applied per operation by the annotate step).

    >>> image_scores = images.transform(ImageScores())
    """

    max_pixels: int = MAX_PIXELS
    batch_size: int = 64

    operational = ("batch_size",)
    name = table = "image_scores"
    input = "images"
    key = IMAGE_KEY
    version = "1"
    reads = {"image_id": "string", "binary_content": "binary"}
    schema = IMAGE_SCORES
    requires = (Dependency("cv2", "opencv-python-headless"),)

    @property
    def spark_conf(self) -> dict[str, str]:
        return batch_size_conf(self.batch_size)

    def score(self, data) -> dict:
        """The signals of one image's bytes (a null scores as error 'empty')."""
        return image_signals(data if data is not None else b"", self.max_pixels)

    def compute(self, images: DataFrame) -> DataFrame:
        signals = row_udf(_SIGNALS, self.score)("binary_content")
        return expand(images, self.key, signals)
