"""MinHash near-duplicate documents at 10k, 30k and 100k documents, with the scaling exponent, and against
a `datasketch` MinHashLSH single-process loop on the same 10k documents, in one run.

    python bench/minhash_scaling.py                     # --sizes 10000 30000 100000

Documents: words drawn Zipf-like from a 20,000-word vocabulary, lengths log-normal around 300
words (capped at 3,000), in paragraphs of up to 120 words; 10% are near copies of another document
(1% of words replaced). Ours: `NearDuplicateDocuments()` (5-grams, 25 bands x 10 rows) over items
read from Parquet, the whole table computed into the `noop` sink (signatures, LSH buckets,
connected components). datasketch: `MinHash(250, seed=42, scheme="legacy")` (the same signature)
+ `MinHashLSH(params=(25, 10))`, insert then query every document, one process. The exponent is
the least-squares slope of log(time) on log(documents) (goal <= 1.15).
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from _common import run  # noqa: E402

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402


def documents(n: int, seed: int = 0) -> pa.Table:
    """Items (metadata row + paragraphs) of n documents, 10% near copies."""
    rng = np.random.default_rng(seed)
    vocab = np.array([f"w{i}" for i in range(20_000)])
    lengths = np.minimum(np.maximum(rng.lognormal(math.log(300), 0.6, size=n).astype(int), 20), 3000)
    texts = []
    for i in range(n):
        if i and rng.random() < 0.1:
            words = list(texts[int(rng.integers(0, i))])
            for j in rng.choice(len(words), size=max(1, len(words) // 100), replace=False):
                words[j] = vocab[rng.integers(0, len(vocab))]
        else:
            words = list(vocab[(rng.zipf(1.3, size=lengths[i]) - 1) % len(vocab)])
        texts.append(words)
    sample, position, modality, text = [], [], [], []
    for i, words in enumerate(texts):
        sid = f"doc{i:07d}"
        sample.append(sid), position.append(-1), modality.append("metadata"), text.append(None)
        for p, start in enumerate(range(0, len(words), 120)):
            sample.append(sid), position.append(p), modality.append("text"), text.append(" ".join(words[start:start + 120]))
    return pa.table({"sample_id": sample, "position": pa.array(position, pa.int32()), "modality": modality,
                     "text_content": text})


def datasketch_loop(table: pa.Table) -> float:
    from datasketch import MinHash, MinHashLSH

    from mmcurate.dedup.minhash import shingles

    docs: dict[str, list[str]] = {}
    for sid, modality, text in zip(*(table.column(c).to_pylist() for c in ("sample_id", "modality", "text_content"))):
        if modality == "text":
            docs.setdefault(sid, []).append(text)
    started = time.perf_counter()
    lsh, signatures = MinHashLSH(num_perm=250, params=(25, 10)), {}
    for sid, parts in docs.items():
        m = MinHash(num_perm=250, seed=42, scheme="legacy")
        m.update_batch(list(shingles("\n".join(parts), 5)))
        signatures[sid] = m
        lsh.insert(sid, m)
    duplicates = sum(1 for sid, m in signatures.items() if min(lsh.query(m)) != sid)
    elapsed = time.perf_counter() - started
    print(f"  datasketch: {len(docs):,} documents, {duplicates:,} with an earlier candidate, {elapsed:.1f} s")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 30_000, 100_000])
    args = parser.parse_args()

    from mmcurate.dedup.minhash import NearDuplicateDocuments
    from mmcurate.spark import get_spark

    spark = get_spark(master="local[2]")
    work = tempfile.mkdtemp(prefix="mmcurate-minhash-")
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    warm = spark.createDataFrame(documents(300, seed=1).to_pandas())  # start the Python workers, untimed
    warm.transform(NearDuplicateDocuments()).count()
    times, first_table = {}, None
    for n in args.sizes:
        table = documents(n)
        first_table = first_table or table
        path = os.path.join(work, f"items-{n}.parquet")
        pq.write_table(table, path)
        items = spark.read.parquet(path).repartition(8)
        started = time.perf_counter()
        out = items.transform(NearDuplicateDocuments()).cache()
        duplicates = out.where("is_near_duplicate").count()
        times[n] = time.perf_counter() - started
        out.unpersist()
        print(f"  ours: {n:,} documents -> {duplicates:,} near duplicates in {times[n]:.1f} s ({n / times[n]:.0f} docs/s)")
    if len(times) > 1:
        xs, ys = np.log(list(times)), np.log(list(times.values()))
        slope = float(np.polyfit(xs, ys, 1)[0])
        print(f"scaling exponent (log time on log documents): {slope:.2f} (goal <= 1.15: {'met' if slope <= 1.15 else 'NOT met'})")
    baseline = datasketch_loop(first_table)
    n0 = args.sizes[0]
    print(f"docs/s at {n0:,}: ours {n0 / times[n0]:.0f}, datasketch {n0 / baseline:.0f} "
          f"-> ours/datasketch speed {baseline / times[n0]:.2f}x")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    run(main)
