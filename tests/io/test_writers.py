"""WebDataset and Parquet export: NeMo Curator's layout, exact bytes, determinism, sharding and safety."""
import datetime
import hashlib
import json
import math
import os
import signal
import subprocess
import sys
import tarfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import webdataset as wds
from pyspark.sql import functions as F
from pyspark.sql import types as T

from mmcurate.io.parquet_writer import write_parquet
from mmcurate.io.webdataset_writer import (
    _copies,
    _placed,
    _Target,
    _writer_input,
    _write_shards,
    member_key,
    shard_of,
    write_webdataset,
)
from mmcurate.schema import IMAGES, ITEMS

PASSTHROUGH = [
    T.StructField("url", T.StringType()),  # sample level (metadata row)
    T.StructField("title", T.StringType()),
    T.StructField("fetched", T.DateType()),
    T.StructField("alt", T.StringType()),  # image rows only
    T.StructField("lang", T.StringType()),  # text rows only
    T.StructField("score", T.DoubleType()),  # text and image rows
]
SCHEMA = T.StructType(ITEMS.fields + PASSTHROUGH)
TRICKY = "a/b:c/../d"
REMOTE = "https://example.org/remote.jpg"


def fixture_images(test_data):
    """One real PNG, JPEG and GIF from the MINT-1T fixture shard: {ext: (image_id, bytes)}."""
    found = {}
    with tarfile.open(test_data / "wds_mint" / "shard-000000.tar") as tar:
        for member in tar:
            ext = member.name.rsplit(".", 1)[-1]
            if ext in ("png", "jpg", "gif") and ext not in found:
                data = tar.extractfile(member).read()
                found[ext] = (hashlib.sha256(data).hexdigest(), data)
    return found


def item(sample_id, position, modality, *, text=None, image=None, image_url=None, content_type=None, **extra):
    """A row of SCHEMA; `image` is an (image_id, bytes) pair."""
    core = [sample_id, position, modality, content_type, text, image[0] if image else None, image_url, None, None]
    return tuple(core + [extra.get(f.name) for f in PASSTHROUGH])


@pytest.fixture(scope="module")
def pics(test_data):
    return fixture_images(test_data)


@pytest.fixture(scope="module")
def rows(pics):
    png, jpg, gif = pics["png"], pics["jpg"], pics["gif"]
    meta = dict(url="https://example.org/a", title="A title", fetched=datetime.date(2024, 5, 1))
    return [
        item(TRICKY, -1, "metadata", content_type="application/json", **meta),
        item(TRICKY, 0, "text", text="Intro", lang="en", score=0.5),
        item(TRICKY, 1, "image", image=png, content_type="image/png", alt="logo", score=0.9),
        item(TRICKY, 2, "text", text="Ünïcödé ✓ 文字", lang="de"),
        item(TRICKY, 3, "image", image=jpg, alt="chart"),  # content_type comes from the images table
        item("text-only", -1, "metadata", url="https://example.org/t", title="Only text"),
        item("text-only", 0, "text", text="one"),
        item("text-only", 1, "text", text="two"),
        item("url-only", 0, "text", text="see"),
        item("url-only", 1, "image", image_url=REMOTE, content_type="image/jpeg"),
        item("url-only", 2, "image", image=gif, content_type="image/gif"),
        item("../../etc/passwd", 0, "image", image=png, content_type="image/png"),
        item("../../etc/passwd", 1, "text", text="nothing to see"),
        item("/abs/x", -1, "metadata", url="https://example.org/x"),
        item("/abs/x", 0, "text", text="abs"),
        item("doc.v1.pdf", 0, "text", text="v1"),
        item("doc.v1.pdf", 1, "image", image=jpg, content_type="image/jpeg", alt="cover"),
        item("doc.v2.pdf", 0, "text", text="v2"),
        item("doc.v2.pdf", 1, "image", image=png, content_type="image/png"),
    ]


@pytest.fixture(scope="module")
def items(spark, rows):
    return spark.createDataFrame(rows, SCHEMA)


@pytest.fixture(scope="module")
def images(spark, pics):
    mime = {"png": "image/png", "jpg": "image/jpeg", "gif": "image/gif"}
    return spark.createDataFrame(
        [(image_id, data, mime[ext], None, None, len(data)) for ext, (image_id, data) in pics.items()], IMAGES
    )


@pytest.fixture(scope="module")
def expected(pics):
    """The JSON each sample must carry (NeMo's layout), by sample id."""
    k = member_key
    return {
        TRICKY: {
            "sample_id": TRICKY, "texts": ["Intro", None, "Ünïcödé ✓ 文字", None],
            "images": [None, f"{k(TRICKY)}.1.png", None, f"{k(TRICKY)}.3.jpg"],
            "url": "https://example.org/a", "title": "A title", "fetched": "2024-05-01",
            "alt": ["logo", "chart"], "lang": ["en", "de"], "score": [0.5, 0.9, None, None],
        },
        "text-only": {"sample_id": "text-only", "texts": ["one", "two"], "images": [None, None],
                      "url": "https://example.org/t", "title": "Only text"},
        "url-only": {"sample_id": "url-only", "texts": ["see", None, None],
                     "images": [None, REMOTE, "url-only.2.gif"]},
        "../../etc/passwd": {"sample_id": "../../etc/passwd", "texts": [None, "nothing to see"],
                             "images": [f"{k('../../etc/passwd')}.0.png", None]},
        "/abs/x": {"sample_id": "/abs/x", "texts": ["abs"], "images": [None], "url": "https://example.org/x"},
        "doc.v1.pdf": {"sample_id": "doc.v1.pdf", "texts": ["v1", None], "images": [None, "doc%2Ev1%2Epdf.1.jpg"],
                       "alt": ["cover"]},
        "doc.v2.pdf": {"sample_id": "doc.v2.pdf", "texts": ["v2", None], "images": [None, "doc%2Ev2%2Epdf.1.png"]},
    }


@pytest.fixture(scope="module")
def written(items, images, tmp_path_factory):
    out = tmp_path_factory.mktemp("wds") / "out"
    manifest = write_webdataset(items, images, str(out), samples_per_shard=2)
    return out, manifest.collect()


def tar_members(path):
    """[(TarInfo, bytes)] of a tar in archive order."""
    with tarfile.open(path) as tar:
        return [(m, tar.extractfile(m).read()) for m in tar.getmembers()]


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def test_member_key_escapes_separators_and_dots():
    assert member_key("a/b:c") == "a%2Fb%3Ac"  # NeMo Curator's _escape_key oracle
    assert member_key(TRICKY) == "a%2Fb%3Ac%2F%2E%2E%2Fd"
    assert member_key("../../etc/passwd") == "%2E%2E%2F%2E%2E%2Fetc%2Fpasswd"


def test_tars_hold_nemo_layout_exact_texts_bytes_and_passthrough(written, expected, pics):
    _, manifest = written
    seen = {}
    for record in manifest:
        members = tar_members(record["path"])
        pending = []  # image members of the sample being read: they come before its JSON
        for info, data in members:
            assert (info.mtime, info.uid, info.gid, info.uname, info.gname, info.mode) == (0, 0, 0, "", "", 0o644)
            if not info.name.endswith(".json"):
                pending.append((info.name, data))
                continue
            doc = json.loads(data.decode("utf-8"))
            assert info.name == f"{member_key(doc['sample_id'])}.json"
            assert doc == expected[doc["sample_id"]]
            assert [name for name, _ in pending] == [m for m in doc["images"] if m and "://" not in m]
            seen[doc["sample_id"]] = {name: sha256(blob) for name, blob in pending}
            pending = []
        assert pending == []
        data = Path(record["path"]).read_bytes()
        assert (record["n_bytes"], record["sha256"]) == (len(data), sha256(data))
        assert record["n_samples"] == sum(info.name.endswith(".json") for info, _ in members)
        assert record["n_images"] == len(members) - record["n_samples"]
    assert set(seen) == set(expected)
    key = member_key(TRICKY)
    assert seen[TRICKY] == {f"{key}.1.png": pics["png"][0], f"{key}.3.jpg": pics["jpg"][0]}  # sha256 == image_id
    assert seen["url-only"] == {"url-only.2.gif": pics["gif"][0]}
    assert seen["../../etc/passwd"] == {f"{member_key('../../etc/passwd')}.0.png": pics["png"][0]}
    assert seen["doc.v1.pdf"] == {"doc%2Ev1%2Epdf.1.jpg": pics["jpg"][0]}
    assert seen["text-only"] == seen["/abs/x"] == {}
    assert sum(r["n_items"] for r in manifest) == 16 and sum(r["n_images"] for r in manifest) == 6


def test_webdataset_library_reads_every_sample(written, expected, pics):
    _, manifest = written
    digests = {ext: image_id for ext, (image_id, _) in pics.items()}
    samples = list(wds.WebDataset([r["path"] for r in manifest], shardshuffle=False))
    assert sorted(s["__key__"] for s in samples) == sorted(member_key(sid) for sid in expected)
    for sample in samples:
        doc = json.loads(sample["json"])
        assert doc == expected[doc["sample_id"]]
        for position, image in enumerate(doc["images"]):
            if image and "://" not in image:
                ext = image.rsplit(".", 1)[-1]
                assert sha256(sample[f"{position}.{ext}"]) == digests[ext]


def test_rerun_writes_byte_identical_tars(items, images, written, tmp_path):
    _, manifest = written
    again = write_webdataset(items, images, str(tmp_path / "again"), samples_per_shard=2).collect()
    assert [(r.shard, r.sha256, r.n_bytes) for r in again] == [(r.shard, r.sha256, r.n_bytes) for r in manifest]
    for first, second in zip(manifest, again):
        assert Path(first.path).read_bytes() == Path(second.path).read_bytes()


def placement(manifest):
    """{sample_id: shard} as found in the written tars."""
    return {json.loads(data)["sample_id"]: r.shard
            for r in manifest for info, data in tar_members(r.path) if info.name.endswith(".json")}


def test_shard_count_and_assignment(items, images, written, tmp_path):
    out, manifest = written
    assert [r.shard for r in manifest] == [0, 1, 2, 3]  # ceil(7 samples / 2)
    tars = [f"shard-{n:06d}.tar" for n in range(4)]  # empty shards too
    assert sorted(os.listdir(out)) == ["lineage", "manifest.json", *tars]
    assert sum(r.n_samples for r in manifest) == 7
    wanted = items.select("sample_id", shard_of(4).alias("shard")).distinct().collect()
    assert placement(manifest) == {row.sample_id: row.shard for row in wanted}
    seeded = write_webdataset(items, images, str(tmp_path / "seeded"), samples_per_shard=2, seed=11, prefix="mix")
    seeded = seeded.collect()
    assert [Path(r.path).name for r in seeded] == [f"mix-{n:06d}.tar" for n in range(4)]
    wanted = items.select("sample_id", shard_of(4, seed=11).alias("shard")).distinct().collect()
    assert placement(seeded) == {row.sample_id: row.shard for row in wanted}


def test_shard_bytes_sizes_by_payload(items, images, tmp_path):
    text_bytes = items.agg(F.sum(F.octet_length("text_content"))).first()[0]
    image_bytes = items.join(images, "image_id").agg(F.sum("n_bytes")).first()[0]
    payload = text_bytes + image_bytes
    manifest = write_webdataset(items, images, str(tmp_path / "b"), shard_bytes=payload // 3)
    assert manifest.count() == math.ceil(payload / (payload // 3))
    assert write_webdataset(items, images, str(tmp_path / "one"), shard_bytes=1).count() == 7  # capped at samples
    with pytest.raises(ValueError, match="not both"):
        write_webdataset(items, images, str(tmp_path / "c"), samples_per_shard=2, shard_bytes=10)
    with pytest.raises(ValueError, match="prefix"):
        write_webdataset(items, images, str(tmp_path / "d"), prefix="../up")


def test_nothing_is_written_outside_out_dir(items, images, tmp_path):
    before = set(tmp_path.rglob("*"))
    out = tmp_path / "nested" / "out"
    manifest = write_webdataset(items, images, str(out), samples_per_shard=3).collect()
    created = [p for p in set(tmp_path.rglob("*")) - before if p.is_file()]
    assert created and all(p.parent in (out, out / "lineage") for p in created)
    for record in manifest:
        for info, _ in tar_members(record.path):
            assert "/" not in info.name and not info.name.startswith(".")
            assert os.path.dirname(os.path.normpath(os.path.join(out, info.name))) == str(out)


def test_refuses_a_non_empty_out_dir_unless_overwrite(items, images, tmp_path):
    out = tmp_path / "busy"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        write_webdataset(items, images, str(out))
    assert (out / "keep.txt").exists()
    write_webdataset(items, images, str(out), overwrite=True)
    assert sorted(os.listdir(out)) == ["lineage", "manifest.json", "shard-000000.tar"]


def test_empty_items_write_no_shard(spark, images, tmp_path):
    manifest = write_webdataset(spark.createDataFrame([], SCHEMA), images, str(tmp_path / "e"))
    assert manifest.count() == 0 and sorted(os.listdir(tmp_path / "e")) == ["lineage", "manifest.json"]
    assert json.loads((tmp_path / "e" / "manifest.json").read_text())["shards"] == []


def test_unsupported_modality_fails_with_a_value_error(spark, rows, images, tmp_path):
    bad = spark.createDataFrame(rows + [item("text-only", 2, "audio")], SCHEMA)
    with pytest.raises(ValueError, match="sample 'text-only': unsupported modality 'audio' at position 2"):
        write_webdataset(bad, images, str(tmp_path / "bad"), samples_per_shard=100)
    assert not any(name.endswith(".tmp") for name in os.listdir(tmp_path / "bad"))
    assert not (tmp_path / "bad" / "manifest.json").exists()


KILLED_TASK = """
import json, os, signal, sys
import pyarrow as pa
from mmcurate.io.webdataset_writer import _Target, _write_partition
batches = pa.ipc.open_file(sys.argv[1]).read_all().to_batches(max_chunksize=3)
def killed_midway():
    yield from batches[:3]
    os.kill(os.getpid(), signal.SIGKILL)
for _ in _write_partition(killed_midway(), _Target(sys.argv[2], "shard"), json.loads(sys.argv[3])):
    pass
"""


@pytest.mark.reliability
def test_a_killed_task_leaves_no_partial_tar_and_is_not_in_the_manifest(spark, items, images, tmp_path):
    out = tmp_path / "killed"
    out.mkdir()
    plan = _writer_input(_placed(_copies(items, None), 1, None, False), images, 1, False, "images")
    table = plan.toArrow()
    with pa.OSFile(str(tmp_path / "input.arrow"), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    passthrough = json.dumps([f.name for f in PASSTHROUGH])
    killed = subprocess.run([sys.executable, "-c", KILLED_TASK, str(tmp_path / "input.arrow"), str(out), passthrough])
    assert killed.returncode == -signal.SIGKILL
    leftovers = [name for name in os.listdir(out) if name != ".progress"]
    assert len(leftovers) == 1 and leftovers[0].startswith(".shard-000000.tar.") and leftovers[0].endswith(".tmp")

    manifest = _write_shards(plan, _Target(str(out), "shard"), [f.name for f in PASSTHROUGH])  # the retry
    assert [Path(r["path"]).name for r in manifest] == ["shard-000000.tar"]
    assert sorted(os.listdir(out)) == [".progress", "shard-000000.tar"]  # the killed attempt's file is swept
    whole = write_webdataset(items, images, str(tmp_path / "whole"), samples_per_shard=100).first()
    assert manifest[0]["sha256"] == whole.sha256 == sha256((out / "shard-000000.tar").read_bytes())


NEMO_PARQUET = pa.schema([
    pa.field("sample_id", pa.string(), nullable=False),
    pa.field("position", pa.int32(), nullable=False),
    pa.field("modality", pa.string(), nullable=False),
    pa.field("content_type", pa.string()),
    pa.field("text_content", pa.string()),
    pa.field("binary_content", pa.binary()),
    pa.field("source_ref", pa.string()),
    pa.field("materialize_error", pa.string()),
])


def test_parquet_has_nemo_columns_in_order_and_exact_bytes(items, images, pics, rows, tmp_path):
    write_parquet(items, images, str(tmp_path / "pq"))
    table = pq.read_table(tmp_path / "pq")
    nemo = len(NEMO_PARQUET)
    assert pa.schema(list(table.schema)[:nemo]) == NEMO_PARQUET
    assert table.schema.names[nemo:] == ["image_id", "image_url"] + [f.name for f in PASSTHROUGH]
    got = {(r["sample_id"], r["position"]): r for r in table.to_pylist()}
    assert len(got) == len(rows)
    by_id = {image_id: data for image_id, data in pics.values()}
    for row in items.collect():
        out = got[(row.sample_id, row.position)]
        assert out["binary_content"] == by_id.get(row.image_id)
        assert (out["modality"], out["text_content"], out["image_url"], out["alt"]) == (
            row.modality, row.text_content, row.image_url, row.alt)
        assert out["materialize_error"] is None
    assert got[(TRICKY, 3)]["content_type"] == "image/jpeg"  # from the images table


def test_parquet_files_never_split_a_sample_and_are_sorted(items, images, tmp_path):
    out = tmp_path / "pq"
    write_parquet(items, images, str(out), rows_per_file=6)
    files = sorted(out.glob("*.parquet"))
    assert len(files) > 1
    owners = {}
    for path in files:
        keys = [(r["sample_id"], r["position"]) for r in pq.read_table(path).to_pylist()]
        assert keys == sorted(keys)
        for sample_id in {k[0] for k in keys}:
            assert owners.setdefault(sample_id, path) == path
    with pytest.raises(Exception, match="already exists"):
        write_parquet(items, images, str(out))
    write_parquet(items, images, str(out), overwrite=True)


def test_tar_headers_are_tarfiles_own():
    """The template header (plain ASCII names) and the PAX fallback (long or non-ASCII names) match tarfile."""
    from mmcurate.io.webdataset_writer import _header, _tar_info

    names = ["a.json", "x" * 100, "x" * 101, member_key("über ✓") + ".0.png", "ü.json",
             member_key(TRICKY) + "+3.json"]
    for name in names:
        for size in (0, 1, 511, 512, 513, 2**33 - 1, 8**11 - 1, 8**11):
            assert _header(name, size) == _tar_info(name, size).tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
