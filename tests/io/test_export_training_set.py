"""Training-set export: repeats, seeded shuffle, resume after a kill, manifest.json and per-sample lineage,
on the real MINT-1T fixture shards."""
import hashlib
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import webdataset as wds
from pyspark.sql import functions as F

import mmcurate
import mmcurate.io.webdataset_writer as writer
from mmcurate.io.ingest import ingest
from mmcurate.io.webdataset_writer import copy_key, member_key, write_webdataset


@pytest.fixture(scope="module")
def source(spark, test_data):
    """The wds_mint fixture ingested: (items, images, source tar paths)."""
    result = ingest(spark, str(test_data / "wds_mint"), "webdataset")
    yield result.items, result.images, result.files
    result.unpersist()


@pytest.fixture(scope="module")
def wanted(source):
    """{sample_id: copies}: 0 to 3 copies, some samples left out of the repeats table."""
    items, _, _ = source
    ids = sorted(r.sample_id for r in items.select("sample_id").distinct().collect())
    return {sample_id: n % 4 for n, sample_id in enumerate(ids) if n % 5 != 4}


@pytest.fixture(scope="module")
def repeats(spark, wanted):
    return spark.createDataFrame(sorted(wanted.items()), "sample_id string, repeats int")


@pytest.fixture(scope="module")
def mixed(source, repeats, tmp_path_factory):
    """A repeats + shuffle export: (out_dir, manifest rows)."""
    items, images, _ = source
    out = tmp_path_factory.mktemp("mixed") / "out"
    manifest = write_webdataset(items, images, str(out), samples_per_shard=4, repeats=repeats, shuffle=True, seed=3,
                                lineage={"recipe": "mix-a", "version": 2, "tables": {"items": 7}})
    return out, manifest.collect()


def read_tar(path):
    """[(member name, bytes)] in archive order."""
    with tarfile.open(path) as tar:
        return [(m.name, tar.extractfile(m).read()) for m in tar]


def documents(paths):
    """[(key, doc, {member: bytes of its images})] of every sample in tar order (members precede their JSON)."""
    out = []
    for path in paths:
        pending = {}
        for name, data in read_tar(path):
            if name.endswith(".json"):
                out.append((name[: -len(".json")], json.loads(data), pending))
                pending = {}
            else:
                pending[name] = data
    return out


def source_docs(paths):
    """{sample_id: content} read straight from the input tars (see `content`)."""
    out = {}
    for path in paths:
        members = dict(read_tar(path))
        for name, data in members.items():
            if name.endswith(".json"):
                doc = json.loads(data)
                out[doc["sample_id"]] = content(doc["texts"], [sha(members[i]) if i in members else None
                                                              for i in doc["images"]])
    return out


def content(texts, shas):
    """A document's items in order, as (text, sha256 of the image bytes), positions with neither left out."""
    return [(text, digest) for text, digest in zip(texts, shas) if text is not None or digest is not None]


def sha(data):
    return hashlib.sha256(data).hexdigest()


def exported(doc, images):
    """`content` of an exported document, `images` holding its image members."""
    return content(doc["texts"], [sha(images[i]) if i in images else None for i in doc["images"]])


def tar_digests(out):
    return {p.name: sha(p.read_bytes()) for p in sorted(Path(out).glob("*.tar"))}


def test_repeats_write_r_copies_with_their_keys_and_copy_field(mixed, wanted, source):
    out, manifest = mixed
    docs = documents(r.path for r in manifest)
    copies = Counter(doc["sample_id"] for _, doc, _ in docs)
    assert copies == Counter({sample_id: r for sample_id, r in wanted.items() if r > 0})  # absent, 0: not written
    assert len(manifest) == -(-sum(wanted.values()) // 4) and sum(r.n_samples for r in manifest) == len(docs)
    originals = source_docs(source[2])
    for key, doc, images in docs:
        copy = doc.get("copy", 0)
        assert key == copy_key(doc["sample_id"], copy)
        assert key == (member_key(doc["sample_id"]) if copy == 0 else f"{member_key(doc['sample_id'])}+{copy}")
        assert ("copy" in doc) == (copy > 0)
        assert all(name.startswith(f"{key}.") for name in images)
        assert exported(doc, images) == originals[doc["sample_id"]]
    assert {(doc["sample_id"], doc.get("copy", 0)) for _, doc, _ in docs} == {
        (sample_id, j) for sample_id, r in wanted.items() for j in range(r)}


def test_repeats_of_one_give_the_bytes_of_no_repeats(spark, source, tmp_path):
    items, images, _ = source
    ones = items.select("sample_id").distinct().withColumn("repeats", F.lit(1))
    write_webdataset(items, images, str(tmp_path / "plain"), samples_per_shard=3, seed=9)
    write_webdataset(items, images, str(tmp_path / "ones"), samples_per_shard=3, seed=9, repeats=ones)
    assert tar_digests(tmp_path / "plain") == tar_digests(tmp_path / "ones") != {}


def test_every_join_strategy_writes_the_same_bytes(spark, source, wanted, repeats, tmp_path, monkeypatch):
    items, images, _ = source
    sample_id = max(wanted, key=wanted.get)
    stray = items.where((F.col("sample_id") == sample_id) & (F.col("position") == -1)).select(
        "sample_id", F.lit(999).alias("position"), F.lit("image").alias("modality"),
        F.lit("image/png").alias("content_type"),
        F.lit(None).cast("string").alias("text_content"), F.lit("0" * 64).alias("image_id"),
        F.lit("https://example.org/gone.png").alias("image_url"), *items.columns[7:])
    items = items.unionByName(stray)  # an image the images table lacks: written as its URL
    found = {}
    for strategy in ("images", "occurrences", "shuffle"):
        monkeypatch.setattr(writer, "_join_strategy", lambda totals, strategy=strategy: strategy)
        out = tmp_path / strategy
        write_webdataset(items, images, str(out), samples_per_shard=5, repeats=repeats, shuffle=True)
        found[strategy] = tar_digests(out)
    assert found["images"] == found["occurrences"] == found["shuffle"]
    urls = [doc["images"][999] for _, doc, _ in documents(sorted(out.glob("*.tar"))) if doc["sample_id"] == sample_id]
    assert urls == ["https://example.org/gone.png"] * wanted[sample_id]


def test_shuffle_is_deterministic_per_seed_and_changes_with_it(source, repeats, tmp_path):
    items, images, _ = source

    def order(name, **options):
        write_webdataset(items, images, str(tmp_path / name), samples_per_shard=100, repeats=repeats, **options)
        return [key for key, _, _ in documents([tmp_path / name / "shard-000000.tar"])]

    plain, first, again, other = order("p"), order("a", shuffle=True, seed=1), order("b", shuffle=True, seed=1), \
        order("c", shuffle=True, seed=2)
    assert first == again and tar_digests(tmp_path / "a") == tar_digests(tmp_path / "b")
    assert sorted(first) == sorted(other) == sorted(plain) and first != other and first != plain
    adjacent = lambda keys: sum(a.split("+")[0] == b.split("+")[0] for a, b in zip(keys, keys[1:]))
    assert adjacent(plain) > adjacent(first)  # copies of one sample no longer follow each other


def test_webdataset_and_mmcurate_ingest_read_back_exactly_the_export(spark, mixed, wanted, source):
    out, manifest = mixed
    originals = source_docs(source[2])
    pattern = f"{out}/shard-{{000000..{len(manifest) - 1:06d}}}.tar"  # manifest.json and lineage/ are not matched
    seen = Counter()
    for sample in wds.WebDataset(pattern, shardshuffle=False):
        doc = json.loads(sample["json"])
        images = {f"{sample['__key__']}.{k}": v for k, v in sample.items() if not k.startswith("__") and k != "json"}
        assert sample["__key__"] == copy_key(doc["sample_id"], doc.get("copy", 0))
        assert exported(doc, images) == originals[doc["sample_id"]]
        seen[doc["sample_id"]] += 1
    assert seen == Counter({sample_id: r for sample_id, r in wanted.items() if r > 0})

    with ingest(spark, str(out), "webdataset") as back:  # NeMo's rules: one document per sample id
        duplicates = Counter(r.sample_id for r in back.quarantine.where("reason = 'duplicate_sample_id'").collect())
        assert duplicates == Counter({sample_id: n - 1 for sample_id, n in seen.items() if n > 1})
        blobs = back.images.select("image_id", "binary_content")
        rows = back.items.where("position >= 0").join(blobs, "image_id", "left").orderBy("sample_id", "position")
        rows = rows.collect()
        docs = {}
        for r in rows:  # image items without bytes (the source's missing members) are left out, as `content` does
            if r.text_content is not None or r.binary_content is not None:
                docs.setdefault(r.sample_id, []).append(
                    (r.text_content, sha(r.binary_content) if r.binary_content is not None else None))
        assert docs == {sample_id: originals[sample_id] for sample_id in seen}


def test_manifest_json_holds_shards_totals_options_and_lineage(mixed):
    out, manifest = mixed
    document = json.loads((out / "manifest.json").read_text())
    assert (document["format"], document["layout"]) == ("webdataset", "nemo-interleaved")
    assert document["shards"] == [r.asDict() for r in manifest]
    for record in document["shards"]:
        data = Path(record["path"]).read_bytes()
        assert (record["n_bytes"], record["sha256"]) == (len(data), sha(data))
    sums = {name: sum(r[f"n_{name}"] for r in document["shards"]) for name in ("samples", "items", "images", "bytes")}
    assert document["totals"] == sums
    options = document["options"]
    assert {k: options[k] for k in ("samples_per_shard", "shard_bytes", "seed", "shuffle", "prefix", "n_shards")} == {
        "samples_per_shard": 4, "shard_bytes": None, "seed": 3, "shuffle": True, "prefix": "shard",
        "n_shards": len(manifest)}
    assert document["lineage"] == {"recipe": "mix-a", "version": 2, "tables": {"items": 7}}
    assert not (out / ".progress").exists()
    tars = [Path(r.path).name for r in manifest]
    assert sorted(p.name for p in out.iterdir()) == sorted(["lineage", "manifest.json", *tars])


def test_lineage_traces_an_exported_sample_to_its_input_member(mixed):
    out, manifest = mixed
    lineage = pq.read_table(out / "lineage").to_pylist()
    assert len(lineage) == sum(r.n_samples for r in manifest)
    record = manifest[-1]
    key, doc, _ = documents([record.path])[-1]
    (row,) = [r for r in lineage if r["member"] == f"{key}.json"]
    assert (row["shard"], row["key"], row["sample_id"], row["copy"]) == (record.shard, key, doc["sample_id"],
                                                                          doc.get("copy", 0))
    ref = json.loads(row["source_ref"])
    with tarfile.open(ref["path"]) as tar:
        original = json.loads(tar.extractfile(ref["member"]).read())
    with open(ref["path"], "rb") as raw:
        raw.seek(ref["byte_offset"])
        assert json.loads(raw.read(ref["byte_size"])) == original
    assert original["sample_id"] == doc["sample_id"] and original["texts"] == doc["texts"]


def interrupt(out, keep):
    """Turn a finished export into the state a kill leaves: `.progress/` with the plan and the records of the shards
    in `keep`, the other tars gone or half-written."""
    document = json.loads((out / "manifest.json").read_text())
    progress = out / ".progress"
    progress.mkdir()
    (progress / "plan.json").write_text(json.dumps(document["options"]))
    for record in document["shards"]:
        name = Path(record["path"]).name
        if record["shard"] in keep:
            (progress / f"{name}.json").write_text(json.dumps(record))
        elif record["shard"] % 2:
            (out / name).unlink()
        else:
            (out / name).write_bytes(b"cut short")  # in place but without its record: rewritten
    (out / "manifest.json").unlink()
    (out / f".shard-000001.tar.{'0' * 32}.tmp").write_bytes(b"left by a killed task")


def test_resume_keeps_finished_shards_and_refuses_another_plan(source, repeats, tmp_path):
    items, images, _ = source
    options = dict(samples_per_shard=3, repeats=repeats, shuffle=True, seed=4)
    write_webdataset(items, images, str(tmp_path / "whole"), **options)
    whole = tar_digests(tmp_path / "whole")
    out = tmp_path / "out"
    write_webdataset(items, images, str(out), **options)
    interrupt(out, keep={0, 2, 3})
    kept = {n: (out / f"shard-{n:06d}.tar").stat().st_mtime_ns for n in (0, 2, 3)}
    with pytest.raises(ValueError, match="seed: 4 then, 5 now"):
        write_webdataset(items, images, str(out), **{**options, "seed": 5}, resume=True)
    with pytest.raises(ValueError, match="n_shards"):
        write_webdataset(items, images, str(out), **{**options, "samples_per_shard": 2}, resume=True)
    with pytest.raises(ValueError, match="give one"):
        write_webdataset(items, images, str(out), **options, resume=True, overwrite=True)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        write_webdataset(items, images, str(out), **options)

    manifest = write_webdataset(items, images, str(out), **options, resume=True).collect()
    assert tar_digests(out) == whole
    assert {n: (out / f"shard-{n:06d}.tar").stat().st_mtime_ns for n in kept} == kept  # not rewritten
    assert json.loads((out / "manifest.json").read_text())["shards"] == [r.asDict() for r in manifest]
    assert not (out / ".progress").exists() and not list(out.glob(".*.tmp"))
    again = write_webdataset(items, images, str(out), **options, resume=True).collect()  # finished: nothing to do
    assert again == manifest
    with pytest.raises(ValueError, match="shuffle"):
        write_webdataset(items, images, str(out), **{**options, "shuffle": False}, resume=True)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="no export to resume"):
        write_webdataset(items, images, str(tmp_path / "other"), **options, resume=True)


KILLED_EXPORT = """
import sys
from mmcurate.io.webdataset_writer import write_webdataset
from mmcurate.spark import get_spark

spark = get_spark(master="local[1]")
data, out = sys.argv[1], sys.argv[2]
items, images, repeats = (spark.read.parquet(f"{data}/{name}") for name in ("items", "images", "repeats"))
write_webdataset(items, images, out, samples_per_shard=1, repeats=repeats, shuffle=True, seed=8)
"""


@pytest.mark.slow
@pytest.mark.reliability
def test_resume_after_a_killed_export_gives_the_uninterrupted_bytes(spark, source, repeats, tmp_path):
    items, images, _ = source
    data = tmp_path / "data"
    for name, frame in (("items", items), ("images", images), ("repeats", repeats)):
        frame.write.parquet(str(data / name))
    items, images, repeats = (spark.read.parquet(str(data / name)) for name in ("items", "images", "repeats"))
    options = dict(samples_per_shard=1, repeats=repeats, shuffle=True, seed=8)
    whole = write_webdataset(items, images, str(tmp_path / "whole"), **options).collect()

    out = tmp_path / "out"
    script = tmp_path / "export.py"
    script.write_text(KILLED_EXPORT)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(mmcurate.__file__).parents[1]),
                                                        os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, str(script), str(data), str(out)], env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 180
    while len(list((out / ".progress").glob("*.tar.json"))) < 3:
        if proc.poll() is not None or time.time() > deadline:
            pytest.fail("the export finished (or never wrote a shard) before it could be killed")
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and its JVM, mid-job
    proc.wait()
    finished = sorted(p.name for p in out.glob("*.tar"))
    assert 3 <= len(finished) < len(whole) and not (out / "manifest.json").exists()

    manifest = write_webdataset(items, images, str(out), **options, resume=True).collect()
    assert [r.asDict() for r in manifest] == [{**r.asDict(), "path": f"{out}/{Path(r.path).name}"} for r in whole]
    assert tar_digests(out) == tar_digests(tmp_path / "whole")
    document = json.loads((out / "manifest.json").read_text())
    assert document["shards"] == [r.asDict() for r in manifest]
    assert document["totals"]["samples"] == sum(r.n_samples for r in whole) == sum(r.repeats for r in repeats.collect())
    assert not (out / ".progress").exists() and not list(out.glob(".*.tmp"))
    assert pq.read_table(out / "lineage").num_rows == document["totals"]["samples"]


def test_lineage_of_a_sample_without_metadata_row_is_its_first_item(source, tmp_path):
    items, images, _ = source
    sample_id = sorted(r.sample_id for r in items.where("position = -1").limit(5).collect())[0]
    items = items.where((F.col("sample_id") != sample_id) | (F.col("position") >= 0))
    write_webdataset(items, images, str(tmp_path / "out"), samples_per_shard=50)
    lineage = {r["sample_id"]: r for r in pq.read_table(tmp_path / "out" / "lineage").to_pylist()}
    first = items.where((F.col("sample_id") == sample_id) & (F.col("position") == 0)).first().source_ref
    assert len(lineage) == 20 and lineage[sample_id]["source_ref"] == first


def test_shard_bytes_count_payload_times_repeats(source, repeats, wanted, tmp_path):
    items, images, _ = source
    sized = items.join(images.select("image_id", "n_bytes"), "image_id", "left").join(repeats, "sample_id")
    payload = (F.coalesce(F.octet_length("text_content"), F.lit(0)) + F.coalesce("n_bytes", F.lit(0))) * F.col("repeats")
    total = sized.agg(F.sum(payload)).first()[0]
    manifest = write_webdataset(items, images, str(tmp_path / "b"), shard_bytes=total // 5, repeats=repeats)
    assert manifest.count() == -(-total // (total // 5)) and manifest.agg(F.sum("n_samples")).first()[0] == sum(
        wanted.values())
