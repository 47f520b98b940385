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
from mmcurate.vectors import dot, unit


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
        from pyspark.ml.clustering import KMeans
        from pyspark.ml.functions import array_to_vector

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
        n = representatives.count()
        k = max(1, min(self.n_clusters, n))
        if k == 1:  # Spark's KMeans needs k >= 2; one cluster's centroid is the mean
            clustered = representatives.withColumn("cluster", F.lit(0))
            sums = representatives.select(F.posexplode("v")).groupBy("pos").agg(F.sum("col").alias("x"))
            centers = sums.agg(unit(F.transform(F.array_sort(F.collect_list(F.struct("pos", "x"))),
                                                lambda e: e["x"])).alias("_center")).withColumn("cluster", F.lit(0))
        else:
            model = KMeans(k=k, seed=self.seed, maxIter=self.max_iterations, featuresCol="features",
                           predictionCol="cluster").fit(
                representatives.select("sample_id", array_to_vector("v").alias("features")))
            clustered = model.transform(representatives.select("sample_id", "v", array_to_vector("v").alias("features")))
            centers = self.spark_centers(model, embeddings)
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

    @staticmethod
    def spark_centers(model, like: DataFrame) -> DataFrame:
        """The k centroids (k rows: small whatever the data) as a (cluster, unit vector) DataFrame."""
        rows = [(i, [float(x) for x in c]) for i, c in enumerate(model.clusterCenters())]
        centers = like.sparkSession.createDataFrame(rows, "cluster int, c array<double>")
        return centers.select("cluster", unit(F.col("c")).alias("_center"))


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
