"""k-means clusters of documents over their embeddings, and a per-cluster summary to look at them in SQL.

`clusters` puts every document of `sample_embeddings` (the mean of its image embeddings, or its text
embedding when it has no image) in one of `n_clusters` k-means clusters, with its cosine distance
to the centroid. `cluster_summary` gives each cluster's size, how many members are image- or
text-embedded, and the ids of the members nearest the centroid, so clusters of charts, screenshots
or product photos can be named and then down- or up-weighted by a mix.
"""
from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from mmcurate.stage import SAMPLE_KEY, Stage
from mmcurate.vectors import dot, kmeans, unit

CLUSTERS = T.StructType([
    T.StructField("sample_id", T.StringType(), False),
    T.StructField("cluster", T.IntegerType(), False),
    T.StructField("cluster_distance", T.DoubleType(), False),
    T.StructField("embedded_from", T.StringType(), True),
    T.StructField("model", T.StringType(), True),
])
"""One row per embedded document: its cluster, 1 - cosine(embedding, centroid), and what was embedded."""

CLUSTER_SUMMARY = T.StructType([
    T.StructField("cluster", T.IntegerType(), False),
    T.StructField("cluster_size", T.LongType(), False),
    T.StructField("image_embedded", T.LongType(), False),
    T.StructField("text_embedded", T.LongType(), False),
    T.StructField("mean_distance", T.DoubleType(), False),
    T.StructField("examples", T.ArrayType(T.StringType()), False),
])


@dataclass(frozen=True)
class Clusters(Stage):
    """`sample_embeddings` -> `clusters`: k-means (Spark ML, seeded) over the unit document embeddings.

    Refitted whole when `sample_embeddings` has a new version (centroids move as data arrives);
    `fit_fraction` < 1 fits on a seeded sample of the documents and assigns all of them.
    """

    n_clusters: int = 100
    seed: int = 42
    max_iterations: int = 30
    fit_fraction: float = 1.0

    name = table = "clusters"
    input = "sample_embeddings"
    key = SAMPLE_KEY
    version = "1"
    incremental = False
    reads = {"sample_id": "string"}
    schema = CLUSTERS

    def __post_init__(self):
        super().__post_init__()
        if self.n_clusters < 1:
            raise ValueError(f"n_clusters must be >= 1, got {self.n_clusters}")
        if not 0 < self.fit_fraction <= 1:
            raise ValueError(f"fit_fraction must be in (0, 1], got {self.fit_fraction}")

    def compute(self, embeddings: DataFrame) -> DataFrame:
        if "embedding" not in embeddings.columns:
            raise ValueError(f"{self.input} has no column 'embedding'; columns: {embeddings.columns}")

        def optional(name: str):
            return F.col(name) if name in embeddings.columns else F.lit(None).cast("string")

        vectors = embeddings.where(F.col("embedding").isNotNull()).select(
            "sample_id", unit(F.col("embedding").cast("array<double>")).alias("v"),
            optional("source").alias("embedded_from"), optional("model").alias("model"))
        clustered, centers = kmeans(vectors, self.n_clusters, self.seed, self.max_iterations, self.fit_fraction)
        return clustered.join(F.broadcast(centers), "cluster").select(
            "sample_id", "cluster", (F.lit(1.0) - dot(F.col("v"), F.col("_center"))).alias("cluster_distance"),
            "embedded_from", "model")


@dataclass(frozen=True)
class ClusterSummary(Stage):
    """`clusters` -> `cluster_summary`: per cluster its size, members by embedding source, mean distance to the
    centroid and the `examples` member ids nearest the centroid (ties by id)."""

    examples: int = 5

    name = table = "cluster_summary"
    input = "clusters"
    key = ("cluster",)
    version = "1"
    incremental = False
    reads = {"sample_id": "string", "cluster": "int", "cluster_distance": "double", "embedded_from": "string"}
    schema = CLUSTER_SUMMARY

    def __post_init__(self):
        super().__post_init__()
        if self.examples < 0:
            raise ValueError(f"examples must be >= 0, got {self.examples}")

    def compute(self, clusters: DataFrame) -> DataFrame:
        nearest = Window.partitionBy("cluster").orderBy("cluster_distance", "sample_id")
        ranked = clusters.withColumn("_rank", F.row_number().over(nearest))
        example = F.when(F.col("_rank") <= self.examples, F.struct("_rank", "sample_id"))
        return ranked.groupBy("cluster").agg(
            F.count(F.lit(1)).alias("cluster_size"),
            F.count_if(F.col("embedded_from") == "image").alias("image_embedded"),
            F.count_if(F.col("embedded_from") == "text").alias("text_embedded"),
            F.avg("cluster_distance").alias("mean_distance"),
            F.transform(F.array_sort(F.collect_list(example)), lambda e: e["sample_id"]).alias("examples"),
        )
