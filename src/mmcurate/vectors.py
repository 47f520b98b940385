"""Spark column expressions over embedding arrays (unit length, dot product, sums, evaluated in the JVM, no UDF)
and k-means over them."""
from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F


def unit(vector: Column) -> Column:
    """The array scaled to unit L2 norm (a zero vector stays zero)."""
    norm = F.sqrt(F.aggregate(vector, F.lit(0.0).cast("double"), lambda acc, x: acc + x * x))
    return F.transform(vector, lambda x: x / F.greatest(norm, F.lit(1e-12)))


def dot(a: Column, b: Column) -> Column:
    """The dot product of two equal-length arrays (the cosine similarity of unit vectors), as a double."""
    return F.aggregate(F.zip_with(a, b, lambda x, y: x * y), F.lit(0.0).cast("double"), lambda acc, x: acc + x)


def vector_sum(vectors: Column) -> Column:
    """The element-wise sum of an array of equal-length arrays (e.g. `F.array_agg(embedding)` of a group)."""
    return F.transform(vectors[0], lambda _, i: F.aggregate(vectors, F.lit(0.0).cast("double"), lambda acc, v: acc + v[i]))


def kmeans(vectors: DataFrame, k: int, seed: int, max_iterations: int, fit_fraction: float = 1.0) -> tuple[DataFrame, DataFrame]:
    """Spark ML k-means over a unit-vector column `v`: (`vectors` with an int `cluster`, the k unit centroids as
    (`cluster`, `_center`)). Fitted on a seeded `fit_fraction` of the rows (all rows are assigned); k is
    capped by the rows fitted on, and k = 1 (which Spark ML refuses) is the normalised mean."""
    fit = vectors if fit_fraction >= 1.0 else vectors.sample(fraction=fit_fraction, seed=seed)
    k = max(1, min(k, fit.count()))
    if k == 1:
        sums = fit.select(F.posexplode("v")).groupBy("pos").agg(F.sum("col").alias("x"))
        centers = sums.agg(unit(F.transform(F.array_sort(F.collect_list(F.struct("pos", "x"))),
                                            lambda e: e["x"])).alias("_center")).withColumn("cluster", F.lit(0))
        return vectors.withColumn("cluster", F.lit(0)), centers
    from pyspark.ml.clustering import KMeans
    from pyspark.ml.functions import array_to_vector

    model = KMeans(k=k, seed=seed, maxIter=max_iterations, featuresCol="_features", predictionCol="cluster").fit(
        fit.select(array_to_vector("v").alias("_features")))
    clustered = model.transform(vectors.withColumn("_features", array_to_vector("v"))).drop("_features")
    rows = [(i, [float(x) for x in c]) for i, c in enumerate(model.clusterCenters())]  # k rows, whatever the data
    centers = vectors.sparkSession.createDataFrame(rows, "cluster int, c array<double>")
    return (clustered.withColumn("cluster", F.col("cluster").cast("int")),
            centers.select("cluster", unit(F.col("c")).alias("_center")))
