"""write_webdataset vs a bare webdataset.TarWriter loop writing the same shards, as a ratio in one run.

    python bench/export.py --samples 5000 --samples-per-shard 1000

The documents of tests/data/wds_mint are repeated under distinct sample ids into `items` and
`images` Parquet tables, which `write_webdataset` reads. The bare loop reads a local Parquet copy of
the same rows, already joined, assigned to the same shards and sorted (made before timing), and
writes the same members with `webdataset.TarWriter`. Both outputs are checked to be byte-identical.
"""
from __future__ import annotations

import argparse
import glob
import hashlib
import json
import math
import mimetypes
import os
import shutil
import sys
import tarfile
import tempfile
from itertools import count
from urllib.parse import quote

sys.path.insert(0, os.path.dirname(__file__))
from _common import median_times, report  # noqa: E402

import pyarrow.parquet as pq  # noqa: E402
from webdataset import TarWriter  # noqa: E402

from mmcurate.io.nemo import interleaved_rows  # noqa: E402
from mmcurate.io.webdataset_writer import shard_of, write_webdataset  # noqa: E402
from mmcurate.schema import IMAGES, ITEMS  # noqa: E402
from mmcurate.spark import get_spark  # noqa: E402

FIXTURE = os.path.join(os.path.dirname(__file__), "..", "tests", "data", "wds_mint")
PASSTHROUGH = ("url", "title", "source")
EXT = {"image/jpeg": "jpg", "image/png": "png", "image/gif": "gif"}


def fixture_docs() -> tuple[list[dict], dict[str, tuple[bytes, str]]]:
    """The fixture's documents (JSON + member bytes) and their images (bytes, MIME type) by sha256."""
    docs, images = [], {}
    for path in sorted(glob.glob(os.path.join(FIXTURE, "*.tar"))):
        with tarfile.open(path) as tar:
            members = {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}
        for name, data in members.items():
            if name.endswith(".json"):
                doc = json.loads(data)
                doc["blobs"] = {i: members[ref] for i, ref in enumerate(doc["images"]) if ref in members}
                images.update({hashlib.sha256(members[ref]).hexdigest(): (members[ref], mimetypes.guess_type(ref)[0])
                               for ref in doc["images"] if ref in members})
                docs.append(doc)
    return docs, images


def item_rows(docs: list[dict], n_samples: int) -> list[tuple]:
    """Items rows (ITEMS + passthrough) for n_samples copies of the documents, each with its own id."""
    rows = []
    for n in range(n_samples):
        doc = docs[n % len(docs)]
        sample_id = f"{doc['sample_id']}#{n:06d}"
        rows.append((sample_id, -1, "metadata", "application/json", None, None, None, None,
                     *(doc.get(k) for k in PASSTHROUGH)))
        for position, (text, image) in enumerate(zip(doc["texts"], doc["images"])):
            if text is not None:
                rows.append((sample_id, position, "text", "text/plain", text, None, None, None, None, None, None))
            elif position in doc["blobs"]:
                blob = doc["blobs"][position]
                rows.append((sample_id, position, "image", mimetypes.guess_type(image)[0], None,
                             hashlib.sha256(blob).hexdigest(), None, None, None, None, None))
            elif image is not None:
                rows.append((sample_id, position, "image", None, None, None, image, None, None, None, None))
    return rows


def bare_loop(source: str, out_dir: str) -> None:
    """Write the sorted, sharded rows of `source` with TarWriter: image members, then the JSON, per sample."""
    os.makedirs(out_dir)
    writer, shard, sample = None, None, []
    for path in sorted(glob.glob(os.path.join(source, "*.parquet"))):
        for batch in pq.ParquetFile(path).iter_batches(batch_size=2048):
            for row in batch.to_pylist():
                if sample and row["sample_id"] != sample[0]["sample_id"]:
                    write_sample(writer, sample)
                    sample = []
                if row["shard"] != shard:
                    if writer:
                        writer.close()
                    shard = row["shard"]
                    writer = TarWriter(f"{out_dir}/shard-{shard:06d}.tar", user="", group="", mode=0o644,
                                       mtime=0, encoder=False)
                sample.append(row)
    write_sample(writer, sample)
    writer.close()


def write_sample(writer: TarWriter, rows: list[dict]) -> None:
    """One MINT-1T sample: `{key}.{position}.{ext}` members, then `{key}.json`."""
    key = quote(rows[0]["sample_id"], safe="").replace(".", "%2E")
    size = rows[-1]["position"] + 1
    texts, images = [None] * size, [None] * size
    meta = {}
    for row in rows:
        position = row["position"]
        if row["modality"] == "metadata":
            meta = {k: row[k] for k in PASSTHROUGH if row[k] is not None}
        elif row["modality"] == "text":
            texts[position] = row["text_content"]
        elif row["binary_content"] is None:
            images[position] = row["image_url"]
        else:
            suffix = f"{position}.{EXT[row['content_type']]}"
            images[position] = f"{key}.{suffix}"
            writer.write({"__key__": key, suffix: row["binary_content"]})
    doc = {"sample_id": rows[0]["sample_id"], "texts": texts, "images": images, **meta}
    writer.write({"__key__": key, "json": json.dumps(doc, ensure_ascii=False).encode("utf-8")})


def digests(out_dir: str) -> dict[str, str]:
    """sha256 per tar file name."""
    return {os.path.basename(p): hashlib.sha256(open(p, "rb").read()).hexdigest()
            for p in sorted(glob.glob(os.path.join(out_dir, "*.tar")))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=5000)
    parser.add_argument("--samples-per-shard", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    spark = get_spark(master="local[2]")
    work = tempfile.mkdtemp(prefix="mmcurate-bench-export-")
    try:
        docs, blobs = fixture_docs()
        schema = ITEMS.add("url", "string").add("title", "string").add("source", "string")
        spark.createDataFrame(item_rows(docs, args.samples), schema).write.parquet(f"{work}/items")
        image_rows = [(i, data, mime, None, None, len(data)) for i, (data, mime) in blobs.items()]
        spark.createDataFrame(image_rows, IMAGES).write.parquet(f"{work}/images")
        items, images = spark.read.parquet(f"{work}/items"), spark.read.parquet(f"{work}/images")
        n_shards = math.ceil(args.samples / args.samples_per_shard)
        (
            interleaved_rows(items, images)
            .withColumn("shard", shard_of(n_shards))
            .orderBy("shard", "sample_id", "position")
            .write.parquet(f"{work}/copy")
        )
        our_runs, bare_runs = count(), count()

        def ours():
            out = f"{work}/ours-{next(our_runs)}"
            write_webdataset(items, images, out, samples_per_shard=args.samples_per_shard)

        def bare():
            bare_loop(f"{work}/copy", f"{work}/bare-{next(bare_runs)}")

        times = median_times({"bare TarWriter loop": bare, "write_webdataset": ours}, args.repeat)
        same = digests(f"{work}/bare-0") == digests(f"{work}/ours-0")
        size_mb = sum(os.path.getsize(p) for p in glob.glob(f"{work}/ours-0/*.tar")) / 2**20
        report(f"WebDataset export: {args.samples} samples, {n_shards} shards, {size_mb:.0f} MiB "
               f"(byte-identical: {same})", times, baseline="bare TarWriter loop", goal=1.3)
        if not same:
            raise SystemExit("outputs differ")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
