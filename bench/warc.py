"""WARC -> items: `steps.ingest --format warc` (Spark, into a lakehouse) vs a bare loop of fastwarc and the
reader's own extraction (`decode_body`, `html_document`), pages per second as a ratio in one run.

    python bench/warc.py --files 8 --copies 50 --repeat 3

Input: the real WARC files of ../shared/data/warc/warcio that read cleanly (example.com and iana.org
captures from wget and warcio, gzipped or not, with their request, warcinfo and metadata records),
decompressed and concatenated `--copies` times into each of `--files` WARC files, every copy's
WARC-Target-URI given a `?copy=...` suffix so each page is its own sample. The bare loop runs in 2
processes (Spark's local[2] cores) and writes the same items (text blocks and URL-only images in DOM
order) as Parquet with pyarrow. After one small warm-up run, the two run interleaved `--repeat` times (medians,
every run printed too), so a shared machine's load hits both alike. Prints seconds, pages/s, the load average
and the ratio (goal <= 1.3x).
"""
from __future__ import annotations

import argparse
import gzip
import io
import os
import re
import sys
from multiprocessing import Pool
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))
from _common import load_average, median_times, report, run, work_dir  # noqa: E402

import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
from fastwarc.warc import ArchiveIterator, WarcRecordType  # noqa: E402

from mmcurate import steps  # noqa: E402
from mmcurate.io.documents import Bad, ReaderOptions  # noqa: E402
from mmcurate.io.readers.html import html_document, page_id  # noqa: E402
from mmcurate.io.readers.warc import warc_page  # noqa: E402
from mmcurate.lakehouse import Lakehouse  # noqa: E402
from mmcurate.spark import get_spark  # noqa: E402

WARCIO = Path(__file__).resolve().parents[2] / "shared" / "data" / "warc" / "warcio"
CLEAN = ("example.warc", "example.warc.gz", "example-iana.org-chunked.warc", "example-wget-bad-target-uri.warc.gz",
         "example-wrong-chunks.warc.gz", "example-bad-non-chunked.warc.gz", "example-digest.warc",
         "example-resource.warc.gz", "post-test.warc.gz")
_TARGET = re.compile(rb"(WARC-Target-URI: *<?)([^\r\n>]+)")


def write_warcs(out: Path, files: int, copies: int) -> int:
    """`files` WARC files of `copies` copies of the clean real files each; returns the HTML 200 pages written."""
    originals = [gzip.decompress(data) if name.endswith(".gz") else data
                 for name, data in ((n, (WARCIO / n).read_bytes()) for n in CLEAN)]
    pages_per_copy = sum(1 for data in originals for _ in _pages(data))
    for f in range(files):
        with open(out / f"crawl-{f:03d}.warc", "wb") as warc:
            for c in range(copies):
                for i, data in enumerate(originals):
                    suffix = f"?copy={f}-{c}-{i}".encode()
                    warc.write(_TARGET.sub(lambda m: m.group(1) + m.group(2) + suffix, data))
    return files * copies * pages_per_copy


def _pages(data: bytes):
    for record in ArchiveIterator(io.BytesIO(data), record_types=WarcRecordType.response, parse_http=True):
        page = warc_page(record)
        if page is not None:
            yield page


def bare_file(args: tuple[str, str]) -> int:
    """fastwarc over one file, each HTML 200 response through the reader's record decoding (`warc_page`) and
    extraction (`html_document`), the items written as Parquet with pyarrow."""
    path, out = args
    options, rows, pages = ReaderOptions(), [], 0
    with open(path, "rb") as stream:
        for record in ArchiveIterator(stream, record_types=WarcRecordType.response, parse_http=True):
            page = warc_page(record)
            if page is None:
                continue
            pages += 1
            doc = html_document(page.body, page.url, path, f"offset:{page.offset}", options,
                                {"crawl_date": page.crawl_date, "payload_digest": page.payload_digest},
                                sample_id=page_id(page.url, page.payload_digest))
            if isinstance(doc, Bad):
                continue
            rows.append({"sample_id": doc.sample_id, "position": -1, "modality": "metadata", "text_content": None,
                         "image_url": None, "url": page.url})
            rows += [{"sample_id": doc.sample_id, "position": i, "modality": item.modality, "text_content": item.text,
                      "image_url": item.url, "url": None} for i, item in enumerate(doc.items)]
    pq.write_table(pa.Table.from_pylist(rows), os.path.join(out, Path(path).stem + ".parquet"))
    return pages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--copies", type=int, default=50, help="copies of the real files in each WARC file")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    with work_dir("mmcurate-bench-warc-") as work:
        crawl, warm, bare_out = work / "crawl", work / "warm", work / "bare"
        for folder in (crawl, warm, bare_out):
            folder.mkdir()
        pages = write_warcs(crawl, args.files, args.copies)
        write_warcs(warm, 2, 1)
        size_mb = sum(p.stat().st_size for p in crawl.iterdir()) / 2**20
        spark = get_spark(master="local[2]")
        # the JVM, the Python workers (trafilatura imported) and the lakehouse's first commits outside the timings
        steps.ingest(Lakehouse.open(spark, str(work / "warm-lake"), backend="embedded"), str(warm), "warc")
        warcs = sorted(str(p) for p in crawl.iterdir())
        lakes = iter(range(args.repeat))

        def bare():
            with Pool(2) as pool:
                assert sum(pool.map(bare_file, [(w, str(bare_out)) for w in warcs])) == pages

        def ours():
            lake = Lakehouse.open(spark, str(work / f"lake{next(lakes)}"), backend="embedded")
            summary = steps.ingest(lake, str(crawl), "warc")
            assert summary["documents"] == pages, summary

        runs: dict[str, list[float]] = {}
        times = median_times({"bare fastwarc+html_document, 2 procs": bare, "mmcurate steps.ingest warc": ours},
                             args.repeat, runs)
        print(f"{pages} pages in {args.files} WARC files ({size_mb:.0f} MiB), local[2], load {load_average()}")
        print("  every run: " + "; ".join(f"{name} {', '.join(f'{t:.2f}' for t in ts)} s" for name, ts in runs.items()))
        ratio = report("WARC -> items (text blocks, URL-only images)", times, "bare fastwarc+html_document, 2 procs",
                       goal=1.3)
        for name, seconds in times.items():
            print(f"  {name:<34} {pages / seconds:8.0f} pages/s")
        print(f"\nRESULT warc_ratio={ratio:.2f}")


if __name__ == "__main__":
    run(main)
