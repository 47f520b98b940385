"""The `image_scores` and `image_qr` tables: each unique image decoded once per table, so recipes never re-decode."""
from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import DataFrame
from pyspark.sql import types as T

from mmcurate.annotate.image_signals import image_signals, qr_signals
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
class _PerImage(Stage):
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

    def compute(self, images: DataFrame) -> DataFrame:
        signals = row_udf(T.StructType(self.schema.fields[1:]), self.score)("binary_content")
        return expand(images, self.key, signals)


@dataclass(frozen=True)
class ImageScores(_PerImage):
    """`images` -> `image_scores`: decode check, header facts, sharpness and pHash from one OpenCV decode.

    >>> image_scores = images.transform(ImageScores())
    """

    name = table = "image_scores"
    version = "2"
    schema = IMAGE_SCORES

    def score(self, data) -> dict:
        """The signals of one image's bytes (a null scores as error 'empty')."""
        return image_signals(data if data is not None else b"", self.max_pixels)


@dataclass(frozen=True)
class ImageQR(_PerImage):
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
