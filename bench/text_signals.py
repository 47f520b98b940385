"""Gopher, C4 and FineWeb signals: the `web_quality_scores` stage on Spark vs datatrove's filters in a bare
2-process loop, on the same real documents, in one run.

    python bench/text_signals.py --copies 3

The documents are the real texts the oracle test uses (MMC4 documents, NLTK inaugural addresses, State
of the Union speeches, web text in 400-line pieces), repeated --copies times with a distinct suffix so
no cache helps. Spark runs `WebQualityScores` (one pandas UDF, one spaCy tokenization per document for
all four rule families) on local[2] into the noop sink; the bare loop runs datatrove's
GopherRepetitionFilter, GopherQualityFilter, C4QualityFilter and FineWebQualityFilter on each document in
2 processes (as many as Spark's cores). Prints seconds, documents/s and the ratio (goal <= 1.0x).
"""
from __future__ import annotations

import argparse
import os
import sys
from multiprocessing import Pool
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "annotate"))
from _common import report, run, timed  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def datatrove_chunk(texts: list[str]) -> int:
    from datatrove.data import Document
    from datatrove.pipeline.filters import (C4QualityFilter, FineWebQualityFilter, GopherQualityFilter,
                                            GopherRepetitionFilter)

    filters = [GopherRepetitionFilter(), GopherQualityFilter(), C4QualityFilter(), FineWebQualityFilter()]
    kept = 0
    for i, text in enumerate(texts):
        results = [f.filter(Document(text=text, id=str(i))) for f in filters]  # every family, as our stage does
        kept += all(r is True for r in results)
    return kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--copies", type=int, default=3)
    args = parser.parse_args()

    from test_web_quality import ITEMS, real_documents

    from mmcurate.annotate.text_scores import WebQualityScores
    from mmcurate.spark import get_spark

    base = real_documents(SHARED)
    docs = [(f"{sid}#{c}", f"{text}\n\nCopy {c}.") for c in range(args.copies) for sid, text in base]
    texts = [text for _, text in docs]
    spark = get_spark(master="local[2]")
    items = spark.createDataFrame([(sid, 0, "text", text, None) for sid, text in docs], ITEMS).repartition(8).cache()
    items.count()
    stage = WebQualityScores()
    spark.range(2).count()

    def ours():  # the noop sink evaluates every column (a count alone would let Spark skip the UDF)
        items.transform(stage).write.format("noop").mode("overwrite").save()

    def bare():
        half = len(texts) // 2
        with Pool(2) as pool:
            pool.map(datatrove_chunk, [texts[:half], texts[half:]])

    ours()  # warm the Python workers (spaCy loaded), as any job past its first stage has them
    times = {"datatrove filters, 2 processes": timed(bare), "web_quality_scores on Spark": timed(ours)}
    words = sum(len(t.split()) for t in texts)
    print(f"{len(docs)} real documents ({words / 1e6:.1f} M whitespace words), local[2]")
    ratio = report("Gopher repetition + quality, C4, FineWeb signals", times, "datatrove filters, 2 processes", goal=1.0)
    for name, seconds in times.items():
        print(f"  {name:<34} {len(docs) / seconds:8.1f} documents/s")
    print(f"\nRESULT text_signals_ratio={ratio:.2f}")


if __name__ == "__main__":
    run(main)
