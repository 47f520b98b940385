"""The `image_scores` table: each unique image decoded once and its signals recorded, so recipes never re-decode."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from mmcurate.annotate.image_signals import image_signals
from mmcurate.images import MAX_PIXELS
from mmcurate.schema import require_columns

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
_MAX_RECORDS = "spark.sql.execution.arrow.maxRecordsPerBatch"


def _signals_udf(max_pixels: int):
    """Iterator pandas UDF: bytes -> struct of image signals (empty bytes for a null, which scores as error 'empty')."""
    names = _SIGNALS.fieldNames()

    @F.pandas_udf(_SIGNALS)
    def signals(batches: Iterator[pd.Series]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            rows = [image_signals(data if data is not None else b"", max_pixels) for data in batch]
            yield pd.DataFrame(rows, columns=names, dtype=object)  # object: a 64-bit phash must not pass through float

    return signals


@dataclass(frozen=True)
class ImageScores:
    """`images` -> `image_scores`: one pandas-UDF pass calling `image_signals` per row of the content-addressed store.

    The `images` table holds one row per image_id, so each distinct image is decoded once however
    many documents use it. The stage never touches session settings: Arrow batches reaching the UDF
    are capped by `spark.sql.execution.arrow.maxBytesPerBatch` (64 MiB by default in Spark 4) and by
    `spark.sql.execution.arrow.maxRecordsPerBatch`; a job that owns its session applies
    `spark_conf` to cap them at `batch_size` images.

    >>> image_scores = images.transform(ImageScores())
    """

    max_pixels: int = MAX_PIXELS
    batch_size: int = 64

    reads = {"image_id": "string", "binary_content": "binary"}
    adds = {f.name: f.dataType.simpleString() for f in _SIGNALS.fields}

    @property
    def spark_conf(self) -> dict[str, str]:
        """Session settings for a job running this stage: at most `batch_size` images per Arrow batch."""
        return {_MAX_RECORDS: str(self.batch_size)}

    def __call__(self, images: DataFrame) -> DataFrame:
        require_columns(images, self.reads, where="ImageScores")
        scored = images.select("image_id", _signals_udf(self.max_pixels)("binary_content").alias("_s"))
        return scored.select("image_id", "_s.*")
