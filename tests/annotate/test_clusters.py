"""k-means clusters of planted document embeddings: well-separated groups come out as clusters, the summary
names each cluster's size and nearest members, and a mix can weight or cap them."""
import numpy as np
import pytest

from mmcurate import steps
from mmcurate.annotate.clusters import Clusters
from mmcurate.lakehouse import Lakehouse


def planted_groups(sizes=(30, 20, 10), dim=16, seed=3):
    """Documents around `len(sizes)` orthogonal directions (cosine to their direction > 0.99); group g has
    sizes[g] members named g{g}_{i}, the first of which sits exactly on the direction."""
    rng = np.random.default_rng(seed)
    rows = []
    for g, size in enumerate(sizes):
        axis = np.eye(dim)[g]
        for i in range(size):
            v = axis if i == 0 else axis + rng.normal(scale=0.02, size=dim)
            rows.append((f"g{g}_{i:02d}", "image" if g < 2 else "text", "m", v.tolist()))
    return rows


@pytest.fixture(scope="module")
def lake(spark, tmp_path_factory):
    lake = Lakehouse.open(spark, str(tmp_path_factory.mktemp("clusters")), backend="embedded")
    embeddings = spark.createDataFrame(planted_groups(), "sample_id string, source string, model string, "
                                                         "embedding array<double>")
    lake.write(embeddings, "sample_embeddings", commit_info={"step": "annotate", "key": ["sample_id"]})
    steps.annotate(lake, [{"stage": "clusters", "n_clusters": 3, "seed": 1}, "cluster_summary"])
    return lake


def test_separated_groups_become_clusters(lake):
    rows = lake.read("clusters").collect()
    assert len(rows) == 60
    by_group = {}
    for r in rows:
        by_group.setdefault(r.sample_id.split("_")[0], set()).add(r.cluster)
        assert 0 <= r.cluster_distance < 0.01
        assert r.embedded_from == ("text" if r.sample_id.startswith("g2") else "image") and r.model == "m"
    assert all(len(clusters) == 1 for clusters in by_group.values())
    assert len(set().union(*by_group.values())) == 3


def test_summary_is_queryable_with_sizes_and_nearest_examples(lake):
    summary = {r.cluster_size: r for r in lake.sql(
        "SELECT * FROM cluster_summary ORDER BY cluster_size DESC").collect()}
    assert sorted(summary) == [10, 20, 30]
    assert summary[30].examples[0] == "g0_00" and len(summary[30].examples) == 5  # exactly on the centroid's axis
    assert (summary[10].text_embedded, summary[10].image_embedded) == (10, 0)
    again = steps.annotate(lake, ["cluster_summary"])
    assert again[0].action == "up_to_date"


def test_one_cluster_and_fit_fraction(spark):
    embeddings = spark.createDataFrame(planted_groups(), "sample_id string, source string, model string, "
                                                         "embedding array<double>")
    one = Clusters(n_clusters=1)(embeddings).collect()
    assert {r.cluster for r in one} == {0} and len(one) == 60
    sampled = Clusters(n_clusters=3, seed=1, fit_fraction=0.5)(embeddings).collect()
    assert len(sampled) == 60  # fitted on about half, every document assigned
    assert len({r.cluster for r in sampled if r.sample_id.startswith("g0")}) == 1
    with pytest.raises(ValueError, match="fit_fraction"):
        Clusters(fit_fraction=0)
