"""Near-duplicate documents: MinHash over word n-grams, banded LSH, connected components.

As text-dedup's `minhash` (ChenghaoMou/text-dedup): words are the runs of `[A-Za-z0-9_]` of the
lower-cased text (other characters split), shingles are word n-grams joined with a space (a text
shorter than n is one shingle), each shingle hashes to 32 bits (the first 4 bytes of its sha1,
little-endian) and every permutation is `(a * h + b) mod (2^61 - 1)`, kept to 32 bits, with `a, b`
drawn from `numpy.random.RandomState(seed)`. The signature of `bands * rows` values is cut into
bands; documents sharing any band are candidates (threshold ~ (1/bands)^(1/rows), ~0.72 for 25 x 10).
Candidates link to their bucket's smallest sample id (a star: connectivity without listing all
pairs of a bucket), optionally only where the two signatures agree on at least `verify_threshold`
of their values, and the components of those links are the duplicate clusters.
"""
from __future__ import annotations

import hashlib
import re
import struct
from dataclasses import dataclass
from functools import lru_cache
from typing import Optional

import numpy as np
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from mmcurate.dedup.components import connected_components
from mmcurate.schema import document_texts
from mmcurate.stage import SAMPLE_KEY, Stage, row_udf

MERSENNE_PRIME = (1 << 61) - 1
MAX_HASH = (1 << 32) - 1
_WORD_SPLIT = re.compile(r"[^A-Za-z0-9_]+")


def shingles(text: str, ngram: int) -> set[bytes]:
    """Word n-grams of the lower-cased text (text-dedup's `ngrams` over `NON_ALPHA.split`); empty for no words."""
    words = [w for w in _WORD_SPLIT.split(text.lower()) if w]
    if not words:
        return set()
    if len(words) < ngram:
        return {" ".join(words).encode("utf-8")}
    return {" ".join(words[i:i + ngram]).encode("utf-8") for i in range(len(words) - ngram + 1)}


@lru_cache(maxsize=8)
def permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The (a, b) of each permutation, drawn as datasketch and text-dedup draw them (a, b, a, b, ...)."""
    gen = np.random.RandomState(seed)
    pairs = np.array([(gen.randint(1, MERSENNE_PRIME, dtype=np.uint64), gen.randint(0, MERSENNE_PRIME, dtype=np.uint64))
                      for _ in range(num_perm)], dtype=np.uint64).T
    return pairs[0], pairs[1]


def signature(text: str, ngram: int, num_perm: int, seed: int) -> Optional[np.ndarray]:
    """The MinHash signature (uint64 values < 2^32), or None for a text without words.

    Equal to datasketch's `MinHash(num_perm, seed)` updated with the same shingles: the products
    wrap around in uint64 exactly as they do there.
    """
    grams = shingles(text, ngram)
    if not grams:
        return None
    hashes = np.array([int.from_bytes(hashlib.sha1(g).digest()[:4], "little") for g in sorted(grams)], dtype=np.uint64)
    a, b = permutations(num_perm, seed)
    with np.errstate(over="ignore"):
        values = ((hashes[:, None] * a + b) % np.uint64(MERSENNE_PRIME)) & np.uint64(MAX_HASH)
    return values.min(axis=0)


def band_hashes(values: np.ndarray, bands: int, rows: int) -> list[int]:
    """One signed 64-bit hash per band of the signature (sha1 of the band's values)."""
    out = []
    for i in range(bands):
        chunk = values[i * rows:(i + 1) * rows].astype("<u4").tobytes()
        out.append(struct.unpack("<q", hashlib.sha1(struct.pack("<i", i) + chunk).digest()[:8])[0])
    return out


_SIGNED = T.StructType([T.StructField("bands", T.ArrayType(T.LongType())), T.StructField("minhash", T.ArrayType(T.LongType()))])


@dataclass(frozen=True)
class NearDuplicateDocuments(Stage):
    """`items` -> `near_duplicate_documents`: the MinHash cluster of each sample's text and whether it is a copy.

    Rule `NOT is_near_duplicate` keeps one document per cluster, the one with the smallest
    sample_id. Every sample gets a row; a sample without words is a cluster of one.
    Defaults as text-dedup: 5-grams, 25 bands x 10 rows (threshold ~0.7).
    """

    ngram: int = 5
    bands: int = 25
    rows: int = 10
    seed: int = 42
    verify_threshold: Optional[float] = None
    max_rounds: int = 40

    name = table = "near_duplicate_documents"
    input = "items"
    key = SAMPLE_KEY
    version = "1"
    incremental = False
    reads = {"sample_id": "string", "position": "int", "modality": "string", "text_content": "string"}
    schema = T.StructType([
        T.StructField("sample_id", T.StringType(), False),
        T.StructField("minhash_cluster", T.StringType(), False),
        T.StructField("minhash_cluster_size", T.LongType(), False),
        T.StructField("is_near_duplicate", T.BooleanType(), False),
    ])

    def __post_init__(self):
        super().__post_init__()
        if min(self.ngram, self.bands, self.rows) < 1:
            raise ValueError("ngram, bands and rows must be >= 1")
        if self.verify_threshold is not None and not 0 < self.verify_threshold <= 1:
            raise ValueError(f"verify_threshold must be in (0, 1], got {self.verify_threshold}")

    def sign(self, text) -> dict:
        """Band hashes and the signature of one text (nulls for a text without words)."""
        values = signature(text or "", self.ngram, self.bands * self.rows, self.seed)
        if values is None:
            return {"bands": None, "minhash": None}
        return {"bands": band_hashes(values, self.bands, self.rows), "minhash": values.astype(np.int64).tolist()}

    def compute(self, items: DataFrame) -> DataFrame:
        sign = row_udf(_SIGNED, self.sign)
        signed = document_texts(items).select("sample_id", sign("document").alias("_s")).select("sample_id", "_s.*").localCheckpoint()
        buckets = signed.where(F.col("bands").isNotNull()).select(
            "sample_id", F.posexplode("bands").alias("band", "band_hash"))
        roots = buckets.groupBy("band", "band_hash").agg(F.min("sample_id").alias("root"))
        edges = buckets.join(roots, ["band", "band_hash"]).where(F.col("sample_id") != F.col("root")).select(
            F.col("sample_id").alias("src"), F.col("root").alias("dst")).distinct()
        if self.verify_threshold is not None:
            a, b = signed.select("sample_id", "minhash"), signed.select("sample_id", "minhash")
            pairs = (edges.join(a.withColumnRenamed("sample_id", "src").withColumnRenamed("minhash", "_a"), "src")
                     .join(b.withColumnRenamed("sample_id", "dst").withColumnRenamed("minhash", "_b"), "dst"))
            same = F.size(F.filter(F.arrays_zip("_a", "_b"), lambda z: z["_a"] == z["_b"]))
            edges = pairs.where(same / F.size("_a") >= F.lit(self.verify_threshold)).select("src", "dst")
        clusters = connected_components(edges, max_rounds=self.max_rounds)
        sizes = clusters.groupBy("component").agg(F.count(F.lit(1)).alias("_size"))
        labelled = (signed.select("sample_id")
                    .join(clusters.withColumnRenamed("node", "sample_id"), "sample_id", "left")
                    .join(sizes, "component", "left"))
        cluster = F.coalesce("component", "sample_id")
        return labelled.select(
            "sample_id", cluster.alias("minhash_cluster"),
            F.coalesce("_size", F.lit(1)).cast("long").alias("minhash_cluster_size"),
            (cluster != F.col("sample_id")).alias("is_near_duplicate"))
