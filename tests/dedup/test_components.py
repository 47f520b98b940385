"""Connected components in DataFrames against a plain union-find, on chains, stars, cycles and mixtures."""
import random

import pytest

from mmcurate.dedup.components import ComponentsDidNotConverge, connected_components


def union_find(edges):
    parent = {}

    def find(x):
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in edges:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return {x: min(y for y in parent if find(y) == find(x)) for x in parent}


def graphs():
    rng = random.Random(7)
    chain = [(f"n{i:04d}", f"n{i + 1:04d}") for i in range(300)]
    reversed_chain = [(b, a) for a, b in chain[::-1]]
    star = [("hub", f"leaf{i:03d}") for i in range(200)]
    cycle = [(f"c{i}", f"c{(i + 1) % 50}") for i in range(50)]
    shuffled_chain = [(f"s{p:03d}", f"s{q:03d}") for p, q in zip(*(lambda o: (o[:-1], o[1:]))(rng.sample(range(250), 250)))]
    mixture = chain[:40] + star[:30] + cycle + [("x", "x"), ("y", "z"), ("z", "y"), ("y", "z")]
    random_graph = [(f"r{rng.randrange(400):03d}", f"r{rng.randrange(400):03d}") for _ in range(300)]
    return {"chain": chain, "reversed_chain": reversed_chain, "star": star, "cycle": cycle,
            "shuffled_chain": shuffled_chain, "mixture": mixture, "random": random_graph}


@pytest.mark.parametrize("name", sorted(graphs()))
def test_components_equal_union_find(spark, name):
    edges = graphs()[name]
    df = spark.createDataFrame(edges, "src string, dst string")
    got = {r.node: r.component for r in connected_components(df).collect()}
    assert got == union_find(edges)


def test_a_round_bound_that_is_too_small_says_so(spark):
    edges = spark.createDataFrame(graphs()["shuffled_chain"], "src string, dst string")
    with pytest.raises(ComponentsDidNotConverge, match="after 1 rounds"):
        connected_components(edges, max_rounds=1)
