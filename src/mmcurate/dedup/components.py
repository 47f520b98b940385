"""Connected components of an edge list in DataFrame operations (no GraphFrames jar, works through Spark Connect).

Alternating large-star and small-star rounds (Kiveris et al., "Connected Components in MapReduce
and Beyond", SoCC 2014): each round is a join and a `groupBy` over the edges; the edge set shrinks
to stars around each component's smallest node in O(log^2 n) rounds, so long chains converge
in few rounds (plain label propagation needs as many rounds as the chain is long). Every round's
edges are checkpointed, so the plan does not grow with the rounds.

>>> components = connected_components(edges, max_rounds=40)      # node, component (its smallest node)
"""
from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F


class ComponentsDidNotConverge(RuntimeError):
    """The edge set still changed after `max_rounds` rounds of large-star and small-star."""


def _undirected(edges: DataFrame) -> DataFrame:
    return edges.select(F.col("u"), F.col("v")).unionByName(edges.select(F.col("v").alias("u"), F.col("u").alias("v")))


def _large_star(edges: DataFrame) -> DataFrame:
    """Link every neighbour larger than a node to the smallest of the node and its neighbours."""
    both = _undirected(edges)
    smallest = both.groupBy("u").agg(F.least(F.min("v"), F.first("u")).alias("m"))
    linked = both.join(smallest, "u").where(F.col("v") > F.col("u"))
    return linked.select(F.col("v").alias("u"), F.col("m").alias("v")).distinct()


def _small_star(edges: DataFrame) -> DataFrame:
    """Link a node and its smaller neighbours to the smallest of them."""
    down = edges.select(F.greatest("u", "v").alias("u"), F.least("u", "v").alias("v"))
    smallest = down.groupBy("u").agg(F.min("v").alias("m"))
    linked = down.join(smallest, "u")
    pairs = linked.select(F.col("v").alias("u"), F.col("m").alias("v")).unionByName(
        linked.select(F.col("u"), F.col("m").alias("v")))
    return pairs.where(F.col("u") != F.col("v")).distinct()


def connected_components(edges: DataFrame, src: str = "src", dst: str = "dst", max_rounds: int = 40) -> DataFrame:
    """One row per node of `edges` (columns `src`, `dst`, same orderable type): `node`, `component`, the
    component's smallest node. Self-loops and repeated edges are fine; raises ComponentsDidNotConverge."""
    nodes = edges.select(F.col(src).alias("node")).unionByName(edges.select(F.col(dst).alias("node"))).distinct()
    current = (edges.select(F.col(src).alias("u"), F.col(dst).alias("v"))
               .where(F.col("u").isNotNull() & F.col("v").isNotNull() & (F.col("u") != F.col("v")))
               .select(F.greatest("u", "v").alias("u"), F.least("u", "v").alias("v")).distinct()
               .localCheckpoint())
    for _ in range(max_rounds):
        following = _small_star(_large_star(current)).localCheckpoint()
        if following.exceptAll(current).isEmpty() and current.exceptAll(following).isEmpty():
            # converged: every edge is (node, its component's smallest node)
            roots = following.groupBy("u").agg(F.min("v").alias("component"))
            return nodes.join(roots.withColumnRenamed("u", "node"), "node", "left").select(
                "node", F.coalesce("component", "node").alias("component"))
        current = following
    raise ComponentsDidNotConverge(f"connected components still changing after {max_rounds} rounds")
