"""WebDataset shards -> Delta through `steps.ingest` vs a bare tarfile + pyarrow loop, one run.

    python bench/ingest.py --samples 5000 --shards 8 --repeat 3

Input: the packaged demo documents (real OpenCV tutorial pages and images) copied under fresh
sample ids until `--samples` documents, in `--shards` MINT-1T/NeMo layout tars. The bare loop runs
in 2 processes (as many as Spark's local[2] cores) and does the same work per shard: read the tar,
parse each JSON, sha256 and probe each image (same `probe` call, same pixel limit), and write items
and unique images as Parquet with pyarrow. Both are warmed by one small run (the JVM, the Python workers,
the lakehouse's first write), then run interleaved `--repeat` times, each into a new lakehouse (medians,
as bench/warc.py; the first timed run of each is printed too). Prints seconds and the ratio (goal <= 1.5x).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tarfile
import tempfile
from multiprocessing import Pool
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))
from _common import load_average, median_times, report, run  # noqa: E402
from _data import add_member  # noqa: E402

import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from mmcurate.images import probe, sha256_hex  # noqa: E402

DEMO = Path(__file__).resolve().parents[1] / "src" / "mmcurate" / "demo_data" / "wds"


def load_demo_documents() -> list[tuple[dict, dict[str, bytes]]]:
    """(json record, {member name: bytes}) of every well-formed demo document."""
    docs = []
    for shard in sorted(DEMO.glob("*.tar")):
        with tarfile.open(shard) as tar:
            members = {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}
        for name, data in members.items():
            if name.endswith(".json"):
                try:
                    record = json.loads(data)
                except json.JSONDecodeError:
                    continue
                images = {m: members[m] for m in record["images"] if m and m in members}
                docs.append((record, images))
    return docs


def write_shards(out: Path, samples: int, shards: int) -> None:
    docs = load_demo_documents()
    tars = [tarfile.open(out / f"shard-{i:06d}.tar", "w") for i in range(shards)]
    for n in range(samples):
        record, images = docs[n % len(docs)]
        key = f"doc{n:07d}"
        renamed = {old: f"{key}.{i}.{old.rsplit('.', 1)[-1]}" for i, old in enumerate(record["images"]) if old in images}
        new = {**record, "sample_id": key, "images": [renamed.get(m) if m else None for m in record["images"]]}
        tar = tars[n % shards]
        for old, member in renamed.items():
            add_member(tar, member, images[old])
        add_member(tar, f"{key}.json", json.dumps(new).encode())
    for tar in tars:
        tar.close()


def bare_shard(args: tuple[str, str]) -> int:
    """The same parsing, hashing, probing and Parquet writing for one shard, without Spark."""
    path, out = args
    items, images = [], {}
    with tarfile.open(path) as tar:
        members = {m.name: m for m in tar if m.isfile()}
        for name in (n for n in members if n.endswith(".json")):
            record = json.loads(tar.extractfile(members[name]).read())
            sid = record.get("sample_id") or name[:-5]
            items.append({"sample_id": sid, "position": -1, "modality": "metadata", "text_content": None,
                          "image_id": None, "url": record.get("url")})
            position = 0
            for text, image in zip(record["texts"], record["images"]):
                if text is not None:
                    items.append({"sample_id": sid, "position": position, "modality": "text",
                                  "text_content": text, "image_id": None, "url": None})
                elif image in members:
                    data = tar.extractfile(members[image]).read()
                    info = probe(data)
                    if info.error:
                        continue
                    image_id = sha256_hex(data)
                    images[image_id] = {"image_id": image_id, "binary_content": data, "content_type": info.content_type,
                                        "width": info.width, "height": info.height, "n_bytes": len(data)}
                    items.append({"sample_id": sid, "position": position, "modality": "image",
                                  "text_content": None, "image_id": image_id, "url": None})
                else:
                    continue
                position += 1
    stem = Path(path).stem
    pq.write_table(pa.Table.from_pylist(items), os.path.join(out, f"items-{stem}.parquet"))
    pq.write_table(pa.Table.from_pylist(list(images.values())), os.path.join(out, f"images-{stem}.parquet"))
    return len(items)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=5000)
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    from mmcurate import steps
    from mmcurate.lakehouse import Lakehouse
    from mmcurate.spark import get_spark

    work = Path(tempfile.mkdtemp(prefix="mmcurate-bench-ingest-"))
    try:
        shards_dir = work / "shards"
        shards_dir.mkdir()
        write_shards(shards_dir, args.samples, args.shards)
        size_mb = sum(p.stat().st_size for p in shards_dir.glob("*.tar")) / 2**20
        spark = get_spark(master="local[2]")
        warm = work / "warm"
        warm.mkdir()
        write_shards(warm, 4, 2)
        bare_out = work / "bare"
        bare_out.mkdir()
        counter = iter(range(100))

        def bare(shards: Path = shards_dir):
            with Pool(2) as pool:
                pool.map(bare_shard, [(str(t), str(bare_out)) for t in sorted(shards.glob("*.tar"))])

        def ours(shards: Path = shards_dir, documents: int = args.samples):
            lake = Lakehouse.open(spark, str(work / f"lake{next(counter)}"), backend="embedded")
            summary = steps.ingest(lake, str(shards), "webdataset")
            assert summary["documents"] == documents, summary

        bare(warm)  # the JVM, the Python workers (readers imported) and the first commit outside the timings
        ours(warm, 4)
        runs: dict[str, list[float]] = {}
        times = median_times({"bare tarfile+pyarrow, 2 procs": bare, "mmcurate steps.ingest": ours}, args.repeat, runs)
        print(f"{args.samples} samples in {args.shards} shards ({size_mb:.0f} MiB), local[2], load {load_average()}")
        print("  every run: " + "; ".join(f"{name} {', '.join(f'{t:.2f}' for t in ts)} s" for name, ts in runs.items()))
        ratio = report("WebDataset -> Delta (items + images + quarantine), medians", times,
                       "bare tarfile+pyarrow, 2 procs", goal=1.5)
        print(f"\nRESULT ingest_ratio={ratio:.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    run(main)
