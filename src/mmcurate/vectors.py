"""Spark column expressions over embedding arrays: unit length and dot product, evaluated in the JVM (no UDF)."""
from __future__ import annotations

from pyspark.sql import Column
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
