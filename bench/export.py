"""write_webdataset vs a bare webdataset.TarWriter loop writing the same shards, as a ratio in one run.

    python bench/export.py --samples 5000 --samples-per-shard 1000

The documents of tests/data/wds_mint are repeated under distinct sample ids into `items` and
`images` Parquet tables, which `write_webdataset` reads. The bare loop reads a local Parquet copy of
the same rows, already joined, assigned to the same shards and sorted (made before timing), and
writes the same members with `webdataset.TarWriter`. Both outputs are checked to be byte-identical.
The mixed case writes 1 to 3 copies of each sample (`repeats`) shuffled within shards (`shuffle`,
`seed`); its bare copy is placed and ordered by the documented rules, so the byte check also checks
those rules. write_webdataset's time includes everything it does: the sizing aggregation, the
tars, `lineage/` and `manifest.json`.
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

from pyspark.sql import functions as F  # noqa: E402

from mmcurate.io.nemo import interleaved_rows  # noqa: E402
from mmcurate.io.webdataset_writer import shard_of, write_webdataset  # noqa: E402
from mmcurate.schema import IMAGES, ITEMS  # noqa: E402
from mmcurate.spark import get_spark  # noqa: E402

FIXTURE = os.path.join(os.path.dirname(__file__), "..", "tests", "data", "wds_mint")
PASSTHROUGH = ("url", "title", "source")
EXT = {"image/jpeg": "jpg", "image/png": "png", "image/gif": "gif"}
SEED = 7


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
                if sample and (row["sample_id"], row["copy"]) != (sample[0]["sample_id"], sample[0]["copy"]):
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
    """One MINT-1T sample copy: `{key}.{position}.{ext}` members, then `{key}.json` (`"copy": j` after the first)."""
    copy = rows[0]["copy"]
    key = quote(rows[0]["sample_id"], safe="").replace(".", "%2E") + (f"+{copy}" if copy else "")
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
    doc = {"sample_id": rows[0]["sample_id"], "texts": texts, "images": images, **({"copy": copy} if copy else {}),
           **meta}
    writer.write({"__key__": key, "json": json.dumps(doc, ensure_ascii=False).encode("utf-8")})


def digests(out_dir: str) -> dict[str, str]:
    """sha256 per tar file name."""
    return {os.path.basename(p): hashlib.sha256(open(p, "rb").read()).hexdigest()
            for p in sorted(glob.glob(os.path.join(out_dir, "*.tar")))}


def sorted_copy(items, images, repeats, n_shards: int, path: str) -> None:
    """The rows the bare loop writes, joined, placed and sorted as documented: shard = shard_of(...) (copy
    j >= 1: pmod(xxhash64(sample_id, j, seed))), in-shard order by sample_id or, with repeats (and shuffle),
    xxhash64(sample_id, copy, seed)."""
    rows = interleaved_rows(items, images)
    if repeats is None:
        rows = rows.withColumn("copy", F.lit(0)).withColumn("shard", shard_of(n_shards)).withColumn("order", F.lit(0))
    else:
        rows = (
            rows.join(repeats, "sample_id")
            .withColumn("copy", F.explode(F.sequence(F.lit(0), F.col("repeats") - 1)))
            .withColumn("shard", shard_of(n_shards, SEED, copy="copy"))
            .withColumn("order", F.xxhash64("sample_id", "copy", F.lit(SEED)))
        )
    rows.orderBy("shard", "order", "sample_id", "copy", "position").write.parquet(path)


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
        repeats = items.select("sample_id").distinct().withColumn(
            "repeats", (F.pmod(F.xxhash64("sample_id"), F.lit(3)) + 1).cast("int"))
        repeats.write.parquet(f"{work}/repeats")
        repeats = spark.read.parquet(f"{work}/repeats")
        n_copies = repeats.agg(F.sum("repeats")).first()[0]
        cases = {"plain": (None, {}, args.samples), "mixed": (repeats, {"shuffle": True, "seed": SEED}, n_copies)}
        runs = count()
        timed = {}
        for case, (table, options, n) in cases.items():
            n_shards = math.ceil(n / args.samples_per_shard)
            sorted_copy(items, images, table, n_shards, f"{work}/copy-{case}")

            def ours(case=case, table=table, options=options):
                out = f"{work}/ours-{case}-{next(runs)}"
                write_webdataset(items, images, out, samples_per_shard=args.samples_per_shard, repeats=table, **options)

            def bare(case=case):
                bare_loop(f"{work}/copy-{case}", f"{work}/bare-{case}-{next(runs)}")

            timed[f"bare TarWriter loop ({case})"], timed[f"write_webdataset ({case})"] = bare, ours
        times = median_times(timed, args.repeat)
        failed = []
        for case, (_, _, n) in cases.items():
            ours_dir, bare_dir = (glob.glob(f"{work}/{who}-{case}-*")[0] for who in ("ours", "bare"))
            same = digests(bare_dir) == digests(ours_dir) != {}
            size_mb = sum(os.path.getsize(p) for p in glob.glob(f"{ours_dir}/*.tar")) / 2**20
            report(f"WebDataset export ({case}): {n} sample copies, {math.ceil(n / args.samples_per_shard)} shards, "
                   f"{size_mb:.0f} MiB (byte-identical: {same})",
                   {k: v for k, v in times.items() if k.endswith(f"({case})")},
                   baseline=f"bare TarWriter loop ({case})", goal=1.3)
            failed += [] if same else [case]
        if failed:
            raise SystemExit(f"outputs differ: {failed}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
