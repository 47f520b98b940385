"""SemDeDup (Abbas et al. 2023) on an embedding column: k-means, then within each cluster the highest cosine
similarity of every item to the items ranked before it.

Embeddings are L2-normalised; Spark ML's k-means clusters them (Euclidean on unit vectors orders
like cosine). In each cluster, items are ranked by their distance to the centroid, farthest first
(SemDeDup's default keeps the "hard" examples), and each item's `semantic_max_similarity` is its
highest cosine similarity to an earlier-ranked item. The rule `semantic_max_similarity <= 1 - eps`
then drops what SemDeDup drops for that eps, so eps is re-tuned in the recipe without recomputing;
`calibrate_eps` picks the eps that removes a target fraction.

Exact duplicates go first by default: identical vectors (the same image embedded twice) collapse to
one representative before clustering and their copies get `semantic_exact_copy = true`, so they
neither distort the clusters nor count towards the calibrated semantic fraction.
"""
from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from mmcurate.stage import SAMPLE_KEY, Stage
from mmcurate.vectors import dot, kmeans, unit


@dataclass(frozen=True)
class SemanticDuplicates(Stage):
    """`sample_embeddings` -> `semantic_duplicates`: SemDeDup's max similarity to earlier items of its cluster.

    Its input is the `sample_embeddings` table, keyed by sample_id, with an array<float|double>
    `column` (image embeddings for samples with images, text embeddings for text-only ones; both are
    fine in one column), written by an embedding stage or planted with `Lakehouse.write`.
    """

    column: str = "embedding"
    n_clusters: int = 100
    seed: int = 42
    max_iterations: int = 50
    exact_first: bool = True

    name = table = "semantic_duplicates"
    input = "sample_embeddings"
    key = SAMPLE_KEY
    version = "1"
    incremental = False
    schema = T.StructType([
        T.StructField("sample_id", T.StringType(), False),
        T.StructField("semantic_cluster", T.IntegerType(), True),
        T.StructField("semantic_rank", T.IntegerType(), True),
        T.StructField("semantic_max_similarity", T.DoubleType(), False),
        T.StructField("semantic_exact_copy", T.BooleanType(), False),
    ])

    reads = {"sample_id": "string"}

    def __post_init__(self):
        super().__post_init__()
        if self.n_clusters < 1:
            raise ValueError(f"n_clusters must be >= 1, got {self.n_clusters}")

    def compute(self, embeddings: DataFrame) -> DataFrame:
        if self.column not in embeddings.columns:
            raise ValueError(f"{self.input} has no column {self.column!r}; columns: {embeddings.columns}")
        vectors = embeddings.where(F.col(self.column).isNotNull()).select(
            "sample_id", unit(F.col(self.column).cast("array<double>")).alias("v"))
        if self.exact_first:
            firsts = vectors.groupBy("v").agg(F.min("sample_id").alias("_first"))
            vectors = vectors.join(firsts, "v")
        else:
            vectors = vectors.withColumn("_first", F.col("sample_id"))
        representatives = vectors.where(F.col("sample_id") == F.col("_first")).select("sample_id", "v").localCheckpoint()
        clustered, centers = kmeans(representatives, self.n_clusters, self.seed, self.max_iterations)
        ranked = (clustered.join(centers, "cluster")
                  .withColumn("_distance", F.lit(1.0) - dot(F.col("v"), F.col("_center")))
                  .withColumn("rank", F.row_number().over(
                      Window.partitionBy("cluster").orderBy(F.desc("_distance"), F.col("sample_id"))).cast("int"))
                  .select("sample_id", F.col("cluster").cast("int").alias("cluster"), "rank", "v")
                  .localCheckpoint())
        later, earlier = ranked.alias("i"), ranked.alias("j")
        best = (later.join(earlier, (F.col("i.cluster") == F.col("j.cluster")) & (F.col("j.rank") < F.col("i.rank")))
                .groupBy(F.col("i.sample_id").alias("sample_id"))
                .agg(F.max(dot(F.col("i.v"), F.col("j.v"))).alias("_best")))
        reps = ranked.join(best, "sample_id", "left").select(
            "sample_id", "cluster", "rank", F.coalesce("_best", F.lit(-1.0)).alias("_best"))
        every = embeddings.select("sample_id").join(
            vectors.select("sample_id", "_first"), "sample_id", "left").join(
            reps.withColumnRenamed("sample_id", "_first"), "_first", "left")
        copy = F.coalesce(F.col("_first") != F.col("sample_id"), F.lit(False))
        return every.select(
            "sample_id",
            F.col("cluster").alias("semantic_cluster"),
            F.when(~copy, F.col("rank")).alias("semantic_rank"),
            F.when(copy, F.lit(1.0)).otherwise(F.coalesce("_best", F.lit(-1.0))).alias("semantic_max_similarity"),
            copy.alias("semantic_exact_copy"),
        )


def calibrate_eps(table: DataFrame, target_fraction: float) -> tuple[float, float]:
    """The eps whose rule `semantic_max_similarity <= 1 - eps` removes about `target_fraction` of the non-exact
    items, and the fraction it actually removes: (eps, achieved)."""
    if not 0 < target_fraction < 1:
        raise ValueError(f"target_fraction must be in (0, 1), got {target_fraction}")
    semantic = table.where(~F.col("semantic_exact_copy"))
    cut = semantic.select(F.percentile(F.col("semantic_max_similarity"), F.lit(1 - target_fraction)).alias("q")).first().q
    eps = max(0.0, 1.0 - float(cut))
    achieved = semantic.select(F.avg((F.col("semantic_max_similarity") > 1 - eps).cast("double")).alias("f")).first().f
    return eps, float(achieved or 0.0)
