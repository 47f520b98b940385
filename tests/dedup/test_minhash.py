"""MinHash near-duplicate documents: signatures equal datasketch's; planted near copies are exactly the clusters."""
import random

import pytest
from datasketch import MinHash

from mmcurate.dedup.minhash import NearDuplicateDocuments, shingles, signature

ITEMS = "sample_id string, position int, modality string, text_content string"
VOCABULARY = [f"w{i}" for i in range(3000)]


def test_signature_equals_datasketch_legacy_minhash():
    text = "OpenCV reads an image, shows it in a window and writes it back to the disk; then it blurs it."
    reference = MinHash(num_perm=250, seed=42, scheme="legacy")
    for gram in shingles(text, 5):
        reference.update(gram)
    assert (signature(text, 5, 250, 42) == reference.hashvalues).all()
    assert shingles("one two", 5) == {b"one two"} and signature("  ...  ", 5, 8, 1) is None


def planted(seed=3):
    """30 base documents of 300 words, each with 0-3 near copies (1% of words replaced: Jaccard ~0.9), split into paragraphs."""
    rng = random.Random(seed)
    docs, clusters = {}, {}
    for d in range(30):
        base = [rng.choice(VOCABULARY) for _ in range(300)]
        members = [f"d{d:02d}c0"]
        docs[members[0]] = base
        for c in range(1, rng.randrange(0, 4) + 1):
            copy = list(base)
            for i in rng.sample(range(len(copy)), 3):
                copy[i] = rng.choice(VOCABULARY)
            members.append(f"d{d:02d}c{c}")
            docs[members[-1]] = copy
        for m in members:
            clusters[m] = members[0]
    rows = []
    for sid, words in docs.items():
        rows.append((sid, -1, "metadata", None))
        for p in range(3):
            rows.append((sid, p, "text", " ".join(words[p * 100:(p + 1) * 100])))
    rows += [("image_only", 0, "image", None), ("short", 0, "text", "Hello!")]
    clusters.update(image_only="image_only", short="short")
    return rows, clusters


@pytest.mark.parametrize("verify", [None, 0.5])
def test_planted_near_copies_are_exactly_the_clusters(spark, verify):
    rows, clusters = planted()
    out = spark.createDataFrame(rows, ITEMS).transform(NearDuplicateDocuments(verify_threshold=verify)).collect()
    got = {r.sample_id: r.minhash_cluster for r in out}
    assert got == clusters
    sizes = {r.sample_id: r.minhash_cluster_size for r in out}
    assert all(sizes[s] == sum(1 for c in clusters.values() if c == clusters[s]) for s in clusters)
    assert {r.sample_id for r in out if r.is_near_duplicate} == {s for s, c in clusters.items() if s != c}


def test_bad_parameters_are_refused():
    with pytest.raises(ValueError, match="verify_threshold"):
        NearDuplicateDocuments(verify_threshold=1.5)
    with pytest.raises(ValueError, match=">= 1"):
        NearDuplicateDocuments(bands=0)


def test_one_giant_bucket_is_one_cluster(spark):
    """200 copies of one document share every band (a hot bucket): star links, one cluster, one keeper."""
    text = " ".join(VOCABULARY[:200])
    rows = [(f"copy{i:03d}", 0, "text", text) for i in range(200)] + [("other", 0, "text", " ".join(VOCABULARY[500:700]))]
    out = {r.sample_id: r for r in spark.createDataFrame(rows, ITEMS).transform(NearDuplicateDocuments()).collect()}
    assert {r.minhash_cluster for s, r in out.items() if s != "other"} == {"copy000"}
    assert out["copy150"].minhash_cluster_size == 200 and out["other"].minhash_cluster_size == 1
    assert sum(r.is_near_duplicate for r in out.values()) == 199
