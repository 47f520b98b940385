"""Near-duplicate images: 64-bit pHashes within a Hamming distance, found by pigeonhole banding, never all pairs.

Two hashes at distance <= k agree exactly on at least one of k + 1 disjoint blocks of their bits,
so only hashes sharing a block value are compared (on their distinct values: a million copies of one
image are one value), and the pairs within distance k link into clusters.
"""
from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from mmcurate.dedup.components import connected_components
from mmcurate.stage import IMAGE_KEY, Stage


def blocks(phash: Column, n_blocks: int) -> Column:
    """The hash cut into `n_blocks` contiguous bit ranges, as an array of (block, value) structs."""
    sizes = [64 // n_blocks + (1 if i < 64 % n_blocks else 0) for i in range(n_blocks)]
    parts, start = [], 0
    for i, size in enumerate(sizes):
        mask = F.lit((1 << size) - 1).cast("long") if size < 64 else F.lit(-1).cast("long")
        value = F.shiftrightunsigned(phash, start).bitwiseAND(mask)
        parts.append(F.struct(F.lit(i).alias("block"), value.alias("value")))
        start += size
    return F.array(*parts)


def hamming(a: Column, b: Column) -> Column:
    """Differing bits of two 64-bit hashes."""
    return F.bit_count(a.bitwiseXOR(b))


@dataclass(frozen=True)
class NearDuplicateImages(Stage):
    """`image_scores` -> `near_duplicate_images`: each image's pHash cluster (distance <= `max_distance`).

    Rule `NOT is_near_duplicate_image` keeps, of each cluster, the image with the smallest image_id,
    wherever it is used. Undecodable images (no pHash) are clusters of one.
    """

    max_distance: int = 4
    max_rounds: int = 40

    name = table = "near_duplicate_images"
    input = "image_scores"
    key = IMAGE_KEY
    version = "1"
    incremental = False
    reads = {"image_id": "string", "phash": "bigint"}
    schema = T.StructType([
        T.StructField("image_id", T.StringType(), False),
        T.StructField("phash_cluster", T.StringType(), False),
        T.StructField("phash_cluster_size", T.LongType(), False),
        T.StructField("is_near_duplicate_image", T.BooleanType(), False),
    ])

    def __post_init__(self):
        super().__post_init__()
        if not 0 <= self.max_distance < 32:
            raise ValueError(f"max_distance must be in [0, 31], got {self.max_distance}")

    def compute(self, scores: DataFrame) -> DataFrame:
        hashes = scores.where(F.col("phash").isNotNull()).select("phash").distinct()
        banded = hashes.select("phash", F.explode(blocks(F.col("phash"), self.max_distance + 1)).alias("_b")).select(
            "phash", F.col("_b.block").alias("block"), F.col("_b.value").alias("value"))
        left, right = banded.alias("l"), banded.alias("r")
        pairs = (left.join(right, ["block", "value"])
                 .where(F.col("l.phash") < F.col("r.phash"))
                 .where(hamming(F.col("l.phash"), F.col("r.phash")) <= self.max_distance)
                 .select(F.col("l.phash").alias("src"), F.col("r.phash").alias("dst")).distinct())
        clusters = connected_components(pairs, max_rounds=self.max_rounds)  # phash -> smallest phash
        images = scores.select("image_id", "phash").join(
            clusters.select(F.col("node").alias("phash"), F.col("component").alias("_c")), "phash", "left")
        # name each cluster by its smallest image_id (stable whatever the hash values)
        cluster_key = F.coalesce(F.col("_c").cast("string"), F.col("phash").cast("string"),
                                 F.concat(F.lit("image:"), F.col("image_id")))
        named = images.withColumn("_k", cluster_key)
        heads = named.groupBy("_k").agg(F.min("image_id").alias("phash_cluster"),
                                        F.count(F.lit(1)).alias("phash_cluster_size"))
        return named.join(heads, "_k").select(
            "image_id", "phash_cluster", "phash_cluster_size",
            (F.col("phash_cluster") != F.col("image_id")).alias("is_near_duplicate_image"))
