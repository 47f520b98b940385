"""Near-duplicate images by pHash: planted hashes within distance k cluster exactly; banding is never all pairs."""
import random

import pytest

from mmcurate.annotate.image_signals import hamming
from mmcurate.dedup.phash import NearDuplicateImages

SCORES = "image_id string, phash bigint"


def signed(value: int) -> int:
    return value - (1 << 64) if value >= (1 << 63) else value


def test_planted_clusters_within_distance_are_recovered(spark):
    rng = random.Random(11)
    rows, expected = [], {}
    for c in range(20):
        base = rng.getrandbits(64)
        members = [f"c{c:02d}m0"]
        rows.append((members[0], signed(base)))
        for m in range(1, rng.randrange(1, 5)):
            flipped = base
            for bit in rng.sample(range(64), rng.randrange(0, 5)):  # 0..4 bits: within k = 4 of the base
                flipped ^= 1 << bit
            members.append(f"c{c:02d}m{m}")
            rows.append((members[-1], signed(flipped)))
        for m in members:
            expected[m] = members[0]
    rows += [("undecodable", None), ("same_a", 12345), ("same_b", 12345)]
    expected.update(undecodable="undecodable", same_a="same_a", same_b="same_a")
    # planted clusters are far apart (random 64-bit bases differ in ~32 bits); check the premise
    bases = [h for sid, h in rows if sid.endswith("m0")]
    assert min(hamming(a, b) for i, a in enumerate(bases) for b in bases[i + 1:]) > 2 * 4
    out = spark.createDataFrame(rows, SCORES).transform(NearDuplicateImages(max_distance=4)).collect()
    assert {r.image_id: r.phash_cluster for r in out} == expected
    assert {r.image_id for r in out if r.is_near_duplicate_image} == {i for i, c in expected.items() if i != c}


def test_distance_zero_joins_only_equal_hashes(spark):
    rows = [("a", 0), ("b", 1), ("c", 0)]
    out = spark.createDataFrame(rows, SCORES).transform(NearDuplicateImages(max_distance=0)).collect()
    assert {r.image_id: (r.phash_cluster, r.phash_cluster_size) for r in out} == {"a": ("a", 2), "b": ("b", 1), "c": ("a", 2)}
    with pytest.raises(ValueError, match="max_distance"):
        NearDuplicateImages(max_distance=40)
