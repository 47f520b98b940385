"""SemDeDup on planted embeddings: near-identical vectors are found within clusters, exact copies go first,
and eps calibrates to a target fraction."""
import numpy as np
import pytest

from mmcurate import steps
from mmcurate.dedup.semantic import SemanticDuplicates, calibrate_eps
from mmcurate.lakehouse import Lakehouse
from mmcurate.select import Recipe, Rule


def planted(seed=5):
    """40 random unit directions; 8 of them get a near copy (cosine > 0.999), 5 an exact copy (the same vector)."""
    rng = np.random.default_rng(seed)
    rows, near, exact = [], set(), set()
    for i in range(40):
        v = rng.normal(size=16)
        rows.append((f"s{i:02d}", v.tolist()))
        if i < 8:
            rows.append((f"s{i:02d}_near", (v + rng.normal(scale=0.01, size=16)).tolist()))
            near.add(f"s{i:02d}")
        elif i < 13:
            rows.append((f"s{i:02d}_copy", v.tolist()))
            exact.add(f"s{i:02d}_copy")
    rows.append(("no_embedding", None))
    return rows, near, exact


def test_planted_semantic_and_exact_duplicates(spark, tmp_path):
    rows, near, exact = planted()
    lake = Lakehouse.open(spark, str(tmp_path / "lake"), backend="embedded")
    lake.write(spark.createDataFrame(rows, "sample_id string, embedding array<double>"), "sample_embeddings")
    [done] = steps.annotate(lake, [SemanticDuplicates(n_clusters=4)])
    assert done.rows_added == len(rows)
    table = lake.read("semantic_duplicates")
    out = {r.sample_id: r for r in table.collect()}
    assert {s for s, r in out.items() if r.semantic_exact_copy} == exact
    assert all(out[s].semantic_max_similarity == 1.0 for s in exact)
    # of each near pair, the one ranked later (closer to its centroid) is the duplicate
    flagged = {s for s, r in out.items() if not r.semantic_exact_copy and r.semantic_max_similarity > 0.99}
    assert {f.replace("_near", "") for f in flagged} == near and len(flagged) == len(near)
    assert out["no_embedding"].semantic_max_similarity == -1.0 and out["no_embedding"].semantic_cluster is None

    candidates = len(rows) - len(exact)  # the calibration counts what is not an exact copy
    eps, achieved = calibrate_eps(table, len(near) / candidates)
    assert achieved == pytest.approx(len(near) / candidates, abs=0.03)
    assert {s for s, r in out.items() if not r.semantic_exact_copy and r.semantic_max_similarity > 1 - eps} == flagged
    items = spark.createDataFrame([(sid, 0, "text", f"text of {sid}") for sid, _ in rows],
                                  "sample_id string, position int, modality string, text_content string")
    lake.write(items, "items")
    recipe = Recipe("semdedup", "1", (
        Rule("exact", "sample", "NOT semantic_exact_copy"),
        Rule("semantic", "sample", f"semantic_max_similarity <= {1 - eps}", detail="semantic_max_similarity"),
    ))
    selection = steps.select(lake, recipe)
    dropped = {(r.sample_id, r.rule) for r in selection.drops.collect()}
    assert dropped == {(s, "exact") for s in exact} | {(s, "semantic") for s in flagged}
