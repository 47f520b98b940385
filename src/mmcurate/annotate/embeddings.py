"""Embedding stages: every unique image and every unique text embedded once, stored with the model's id.

`image_embeddings` reads the content-addressed `images` table, so an image shared by a thousand
documents is embedded once; `text_embeddings` groups text items by the SHA-256 of their text and
embeds each distinct text once, then gives every item its vector. Both batch across documents
(full Arrow batches of `batch_size`), decode on `decode_threads` threads one batch ahead of the
forward pass, and record undecodable or empty inputs as a null embedding with an `error`.

>>> steps.annotate(lake, [ImageEmbeddings(model_path="/dbfs/models/clip-vit-l-14"),
...                       TextEmbeddings(model_path="/dbfs/models/clip-vit-l-14")])
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Iterator, Optional

import pandas as pd
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from mmcurate.images import MAX_PIXELS, ImageDecodeError
from mmcurate.models.encoders import BACKENDS, Encoder, load_encoder
from mmcurate.models.runner import Batches, load_once, parallel_map, prefetch, task_device
from mmcurate.models.stage import ModelStage
from mmcurate.schema import is_modality
from mmcurate.stage import IMAGE_KEY, ITEM_KEY, SAMPLE_KEY, Dependency, Stage
from mmcurate.vectors import unit, vector_sum

EMBEDDING = T.ArrayType(T.FloatType(), False)

IMAGE_EMBEDDINGS = T.StructType([
    T.StructField("image_id", T.StringType(), False),
    T.StructField("model", T.StringType(), False),
    T.StructField("embedding", EMBEDDING, True),
    T.StructField("error", T.StringType(), True),
])
"""One row per image_id: its L2-normalised embedding, or null with the reason it could not be computed."""

TEXT_EMBEDDINGS = T.StructType([
    T.StructField("sample_id", T.StringType(), False),
    T.StructField("position", T.IntegerType(), False),
    T.StructField("text_hash", T.StringType(), False),
    T.StructField("model", T.StringType(), False),
    T.StructField("embedding", EMBEDDING, True),
    T.StructField("error", T.StringType(), True),
])
"""One row per text item: the embedding of its stripped text (identical texts share one computation)."""

_BY_HASH = T.StructType([TEXT_EMBEDDINGS["text_hash"], TEXT_EMBEDDINGS["embedding"], TEXT_EMBEDDINGS["error"]])


def text_items(items: DataFrame) -> DataFrame:
    """The text items with a text: what every per-text model stage writes a row for (`scope`)."""
    return items.where(is_modality("text") & F.col("text_content").isNotNull())


def unique_texts(items: DataFrame) -> tuple[DataFrame, DataFrame]:
    """(item key + text_hash of every text item, one row of text_hash + text_content per distinct text):
    a model stage scores the second and joins the scores back through the first."""
    texts = text_items(items).select(*ITEM_KEY, F.sha2("text_content", 256).alias("text_hash"), "text_content")
    unique = texts.groupBy("text_hash").agg(F.min("text_content").alias("text_content"))
    return texts.drop("text_content"), unique


@dataclass(frozen=True)
class EncoderStage(ModelStage):
    """A model stage whose model is an image/text encoder (`backend`: open_clip or transformers)."""

    backend: str = "open_clip"
    architecture: Optional[str] = None

    requires = (Dependency("open_clip", "open_clip_torch"), Dependency("transformers", "transformers"))

    def __post_init__(self):
        super().__post_init__()
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {self.backend!r}")

    def encoder(self, max_pixels: int = MAX_PIXELS) -> Encoder:
        """This worker's encoder, loaded on the first call (per process, path and device) and reused after."""
        device = task_device(self.device)
        key = (self.backend, self.model_path, self.architecture, self.precision, max_pixels)
        return load_once(key, device, lambda: load_encoder(self.backend, self.model_path, device, self.precision,
                                                   self.architecture, max_pixels))


@dataclass(frozen=True)
class ImageEmbeddings(EncoderStage):
    """`images` -> `image_embeddings`: one embedding per unique image, decoded and preprocessed on threads."""

    decode_threads: int = 4
    max_pixels: int = MAX_PIXELS

    operational = ("device", "batch_size", "gpus", "decode_threads")
    name = table = "image_embeddings"
    input = "images"
    key = IMAGE_KEY
    version = "1"
    reads = {"image_id": "string", "binary_content": "binary"}
    schema = IMAGE_EMBEDDINGS

    def compute(self, images: DataFrame) -> DataFrame:
        return self.map_batches(images.select("image_id", "binary_content"), self.embed_partition, self.schema)

    def embed_partition(self, frames: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        encoder = self.encoder(self.max_pixels)
        batches = Batches(self.batch_size)

        def tensor(data):
            try:
                return encoder.image_tensor(bytes(data) if data is not None else b""), None
            except ImageDecodeError as e:
                return None, e.reason
            except Exception as e:  # a preprocessor failing on an odd image: that image only
                return None, f"preprocess_error: {type(e).__name__}: {e}"

        with ThreadPoolExecutor(max(1, self.decode_threads), thread_name_prefix="mmcurate-decode") as pool:
            prepare = lambda frame: parallel_map(tensor, list(frame["binary_content"]), pool)  # noqa: E731
            for frame, prepared in prefetch(frames, prepare):
                tensors = [t for t, _ in prepared]
                embeddings = batches.run_where(tensors, [t is not None for t in tensors], encoder.embed_images)
                yield pd.DataFrame({"image_id": frame["image_id"], "model": self.model_name,
                                    "embedding": embeddings, "error": [e for _, e in prepared]})


@dataclass(frozen=True)
class TextEmbeddings(EncoderStage):
    """`items` -> `text_embeddings`: each distinct text embedded once (texts are stripped; the model truncates
    to its context, 77 tokens for CLIP), every text item given its text's vector."""

    name = table = "text_embeddings"
    input = "items"
    key = ITEM_KEY
    version = "1"
    reads = {"sample_id": "string", "position": "int", "modality": "string", "text_content": "string"}
    schema = TEXT_EMBEDDINGS

    def scope(self, items: DataFrame) -> DataFrame:
        return text_items(items)

    def compute(self, items: DataFrame) -> DataFrame:
        texts, unique = unique_texts(items)
        vectors = self.map_batches(unique, self.embed_partition, _BY_HASH)
        return texts.join(vectors, "text_hash").select(
            *ITEM_KEY, "text_hash", F.lit(self.model_name).alias("model"), "embedding", "error")

    def embed_partition(self, frames: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        encoder = self.encoder()
        batches = Batches(self.batch_size)
        for frame in frames:
            stripped = [text.strip() for text in frame["text_content"]]
            embeddings = batches.run_where(stripped, [bool(t) for t in stripped], encoder.embed_texts)
            yield pd.DataFrame({"text_hash": frame["text_hash"], "embedding": embeddings,
                                "error": [None if text else "empty" for text in stripped]})


def embedded_items(items: DataFrame, image_embeddings: DataFrame, text_embeddings: DataFrame) -> tuple[DataFrame, DataFrame]:
    """(sample_id of each image item with a vector, sample_id of each text item with a vector)."""
    images = items.where(is_modality("image")).select("sample_id", "image_id").join(
        image_embeddings.where(F.col("embedding").isNotNull()).select("image_id"), "image_id").select("sample_id")
    texts = text_embeddings.where(F.col("embedding").isNotNull()).select("sample_id")
    return images, texts


def fully_embedded(items: DataFrame, image_embeddings: DataFrame, text_embeddings: DataFrame) -> DataFrame:
    """The sample_ids whose every image (with bytes) and every text item has its embedding row (a vector or an
    error): stages computed per document wait for these, so a document is never done with half its items."""
    images = items.where(is_modality("image") & F.col("image_id").isNotNull()).select("sample_id", "image_id")
    texts = items.where(is_modality("text") & F.col("text_content").isNotNull()).select(*ITEM_KEY)
    waiting = images.join(image_embeddings.select("image_id"), "image_id", "left_anti").select("sample_id").unionByName(
        texts.join(text_embeddings.select(*ITEM_KEY), list(ITEM_KEY), "left_anti").select("sample_id"))
    return items.select("sample_id").distinct().join(waiting, "sample_id", "left_anti")


SAMPLE_EMBEDDINGS = T.StructType([
    T.StructField("sample_id", T.StringType(), False),
    T.StructField("model", T.StringType(), False),
    T.StructField("source", T.StringType(), False),
    T.StructField("embedding", T.ArrayType(T.DoubleType()), False),
])


@dataclass(frozen=True)
class SampleEmbeddings(Stage):
    """`items` (+ `image_embeddings`, `text_embeddings`) -> `sample_embeddings`: one unit vector per document for
    semantic dedup and clustering, computed in Spark from the stored vectors (no model runs).

    `prefer` "image": the mean of the document's image embeddings, or of its text embeddings when it has
    no embedded image (`source` says which); "text" the other way round. A document waits until all its
    items have their embedding rows.
    """

    prefer: str = "image"

    name = table = "sample_embeddings"
    input = "items"
    joins = ("image_embeddings", "text_embeddings")
    key = SAMPLE_KEY
    version = "1"
    reads = {"sample_id": "string", "position": "int", "modality": "string", "image_id": "string",
             "text_content": "string"}
    schema = SAMPLE_EMBEDDINGS

    def __post_init__(self):
        super().__post_init__()
        if self.prefer not in ("image", "text"):
            raise ValueError(f"prefer must be 'image' or 'text', got {self.prefer!r}")

    def scope(self, items: DataFrame, image_embeddings: DataFrame, text_embeddings: DataFrame) -> DataFrame:
        images, texts = embedded_items(items, image_embeddings, text_embeddings)
        return (items.join(fully_embedded(items, image_embeddings, text_embeddings), "sample_id", "left_semi")
                .join(images.unionByName(texts), "sample_id", "left_semi"))

    def compute(self, items: DataFrame, image_embeddings: DataFrame, text_embeddings: DataFrame) -> DataFrame:
        items = self.scope(items, image_embeddings, text_embeddings)
        images = (items.where(is_modality("image")).select("sample_id", "image_id")
                  .join(image_embeddings.where(F.col("embedding").isNotNull()), "image_id")
                  .select("sample_id", "model", "embedding", F.lit("image").alias("source")))
        texts = (text_embeddings.where(F.col("embedding").isNotNull())
                 .join(items.select("sample_id").distinct(), "sample_id", "left_semi")
                 .select("sample_id", "model", "embedding", F.lit("text").alias("source")))
        means = images.unionByName(texts).groupBy("sample_id", "model", "source").agg(
            F.array_agg(F.col("embedding").cast("array<double>")).alias("_vectors"))
        total = vector_sum(F.col("_vectors"))  # its direction is the mean's
        rank = F.when(F.col("source") == self.prefer, 0).otherwise(1)
        best = Window.partitionBy("sample_id").orderBy(rank)
        return (means.select("sample_id", "model", "source", unit(total).alias("embedding"))
                .withColumn("_rank", F.row_number().over(best)).where("_rank = 1").drop("_rank"))
