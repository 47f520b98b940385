"""Ingest of every source format from the shipped fixtures, with the counts the fixtures promise."""
import hashlib
import io
import json
import tarfile

import pytest
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from mmcurate.io.documents import ReaderOptions
from mmcurate import steps
from mmcurate.io.ingest import ingest
from mmcurate.lakehouse import Lakehouse


@pytest.fixture(scope="module")
def fixtures(test_data):
    return json.loads((test_data / "fixtures.json").read_text())


def content_positions_are_gap_free(items):
    per_sample = (
        items.where("position >= 0")
        .groupBy("sample_id")
        .agg(F.count("*").alias("n"), F.max("position").alias("top"), F.countDistinct("position").alias("d"))
    )
    return per_sample.where("top + 1 != n OR d != n").count() == 0


def test_mint_webdataset(spark, test_data, fixtures):
    expected = fixtures["wds_mint"]
    result = ingest(spark, str(test_data / "wds_mint"), "webdataset")
    summary = result.summary()
    # the three doxygen images are referenced but not in the tar: kept without bytes (as NeMo), with the reason
    assert summary["documents"] == expected["documents"]
    assert summary["text_items"] == expected["text_items"]
    assert summary["image_items"] == expected["image_items"]
    assert summary["quarantine_reasons"] == {}
    assert summary["unique_images"] == expected["unique_images"] - expected["url_only_images"]
    lacking = result.items.where("modality = 'image' AND image_id IS NULL").collect()
    assert len(lacking) == expected["url_only_images"]
    assert all(r.materialize_error.startswith("missing_image_member: ") and r.image_url.endswith(".png")
               for r in lacking)
    ids = [r.sample_id for r in result.items.where("position = -1").orderBy("sample_id").collect()]
    assert ids == sorted(expected["sample_ids"])
    assert content_positions_are_gap_free(result.items)
    # content addressed: the id is the sha256 of the stored bytes, every image item has its image
    images = result.images
    assert images.where(F.sha2("binary_content", 256) != F.col("image_id")).count() == 0
    assert result.items.where("modality = 'image' AND image_id IS NOT NULL").join(
        images, "image_id", "left_anti").count() == 0
    assert images.where("width > 0 AND height > 0 AND n_bytes = length(binary_content)").count() == images.count()
    # sample-level passthrough sits on the metadata row, NeMo style
    meta = result.items.where("position = -1").select("url", "title", "source").first()
    assert meta.source == "opencv_tutorials" and meta.url.endswith(".html")
    ref = json.loads(result.items.where("modality = 'image'").first().source_ref)
    assert set(ref) == {"path", "member", "byte_offset", "byte_size"} and ref["member"].endswith((".png", ".jpg", ".gif"))
    result.unpersist()


def test_text_order_matches_the_source_lists(spark, test_data):
    with tarfile.open(test_data / "wds_mint" / "shard-000000.tar") as tar:
        name = next(m.name for m in tar if m.name.endswith(".json"))
        doc = json.loads(tar.extractfile(name).read())
    result = ingest(spark, str(test_data / "wds_mint" / "shard-000000.tar"), "webdataset")
    texts = [r.text_content for r in result.items.where(F.col("sample_id") == doc["sample_id"])
             .where("modality = 'text'").orderBy("position").collect()]
    assert texts == [t for t in doc["texts"] if t is not None]
    result.unpersist()


def test_mint_pdf_multiframe_tiff(spark, test_data, fixtures):
    from PIL import Image

    result = ingest(spark, str(test_data / "mint_pdf"), "webdataset")
    summary = result.summary()
    assert (summary["documents"], summary["image_items"], summary["quarantined"]) == (5, 16, 0)
    refs = [json.loads(r.source_ref) for r in result.items.where("modality = 'image'").orderBy("sample_id", "position").collect()]
    by_member = {}
    for ref in refs:
        by_member.setdefault(ref["member"], []).append(ref["frame_index"])
    assert all(frames == list(range(len(frames))) for frames in by_member.values())
    image = result.images.first()
    with Image.open(io.BytesIO(image.binary_content)) as frame:
        assert frame.format == "TIFF" and getattr(frame, "n_frames", 1) == 1
        assert (frame.width, frame.height) == (image.width, image.height)
    result.unpersist()


def test_obelics_documents_with_ids_and_duplicates_across_files(spark, test_data, fixtures):
    options = ReaderOptions(sample_id_field="document_id")
    files = [str(test_data / "obelics" / n) for n in ("docs.jsonl", "docs.parquet")]
    result = ingest(spark, files, "documents", options)
    summary = result.summary()
    # docs.parquet holds the same 10 documents as docs.jsonl: the later file's copies are quarantined
    assert summary["documents"] == 10
    assert summary["quarantine_reasons"] == {"duplicate_sample_id": 10}
    assert result.quarantine.where("source LIKE '%docs.parquet'").count() == 10
    urls = result.items.where("modality = 'image'")
    assert urls.where("image_url IS NULL OR image_id IS NOT NULL").count() == 0
    assert summary["image_items"] == fixtures["obelics"]["image_items"]
    assert "general_metadata" in result.items.columns
    result.unpersist()


def test_obelics_with_image_bytes(spark, test_data, fixtures):
    result = ingest(spark, str(test_data / "obelics" / "with_bytes.parquet"), "documents")
    summary = result.summary()
    expected = fixtures["obelics_with_bytes"]
    assert (summary["documents"], summary["image_items"], summary["unique_images"]) == (
        expected["documents"], expected["image_items"], expected["unique_images"])
    result.unpersist()


def test_mmc4_images_go_before_their_matched_sentence(spark, test_data, fixtures):
    result = ingest(spark, str(test_data / "mmc4" / "docs.jsonl"), "mmc4")
    summary = result.summary()
    assert summary["documents"] == fixtures["mmc4"]["documents"]
    assert summary["text_items"] == fixtures["mmc4"]["text_items"]
    assert summary["image_items"] == fixtures["mmc4"]["image_items"]
    first = json.loads((test_data / "mmc4" / "docs.jsonl").read_text().splitlines()[0])
    items = result.items.where("sample_id = 'docs/line:1'").orderBy("position").collect()
    info = sorted(first["image_info"], key=lambda i: i["matched_text_index"])[0]
    image_row = next(r for r in items if r.image_url == info["raw_url"])
    after = items[image_row.position + 1 + 1]  # +1: metadata row is first in the list
    assert after.modality == "text" and after.text_content == first["text_list"][info["matched_text_index"]]
    assert image_row.matched_sim == pytest.approx(info["matched_sim"])
    result.unpersist()


def test_nemo_parquet(spark, test_data, fixtures):
    result = ingest(spark, str(test_data / "nemo_parquet"), "nemo_parquet")
    summary = result.summary()
    expected = fixtures["nemo_parquet"]
    assert (summary["documents"], summary["text_items"], summary["image_items"]) == (
        expected["documents"], expected["text_items"], expected["image_items"])
    assert summary["quarantined"] == 0
    assert result.items.where("modality = 'image' AND image_id IS NULL AND image_url LIKE 'https://%'").count() == 3
    result.unpersist()


def test_ingest_step_appends_once_and_dedups_images(spark, tmp_path, test_data, fixtures):
    lake = Lakehouse.open(spark, str(tmp_path), backend="embedded")
    shards = sorted(str(p) for p in (test_data / "wds_mint").glob("*.tar"))
    first = steps.ingest(lake, shards[0], "webdataset", app_id="ingest", app_version=1)
    second = steps.ingest(lake, shards, "webdataset", app_id="ingest", app_version=2)
    # shard 0's documents come again in run 2: quarantined as duplicates, not appended twice
    assert second["quarantine_reasons"]["duplicate_sample_id"] == first["documents"]
    items = lake.read("items")
    assert items.where("position = -1").count() == fixtures["wds_mint"]["documents"]
    assert lake.read("images").count() == lake.read("images").select("image_id").distinct().count()
    assert lake.read("images").count() == fixtures["wds_mint"]["unique_images"] - 3
    rerun = steps.ingest(lake, shards, "webdataset", app_id="ingest", app_version=2)
    assert lake.version("items") == 1 and rerun["documents"] == 0
    assert list((tmp_path / "_scratch" / "ingest").iterdir()) == []  # each run's staged parse removed
    assert lake.tables() == ["images", "items", "quarantine"]


def test_items_staged_as_table_rows_are_committed_as_they_are(spark, tmp_path, test_data, item_files):
    """Where the passthrough columns are known before the parse (`fields`; a crawl's own), the items the tasks
    staged are the table's files when nothing is left out, equal to what Spark types and writes; a sample id
    repeated or already in the lakehouse, or a field of another kind than expected, goes through Spark."""
    options = ReaderOptions(sample_id_field="document_id", fields=["general_metadata", "url"])
    jsonl, parquet = (str(test_data / "obelics" / n) for n in ("docs.jsonl", "docs.parquet"))
    lake = Lakehouse.open(spark, str(tmp_path / "lake"), backend="embedded")
    first = steps.ingest(lake, jsonl, "documents", options)
    assert item_files(lake) == {"items"} and first["absent_fields"] == []
    with ingest(spark, jsonl, "documents", options) as cached:  # the passthrough typed by Spark
        assert lake.read("items").schema == cached.items.schema
        assertDataFrameEqual(lake.read("items"), cached.items)
    again = steps.ingest(lake, [jsonl, parquet], "documents", options)  # in the lakehouse, and repeated
    assert again["documents"] == 0 and again["quarantine_reasons"] == {"duplicate_sample_id": 20}
    assert lake.read("items").where("position = -1").count() == first["documents"] == 10
    assert list((tmp_path / "lake" / "_scratch" / "ingest").iterdir()) == []

    numbers = tmp_path / "numbers.jsonl"
    numbers.write_text("".join(json.dumps({"texts": [f"text {n}"], "images": [None], "n": n}) + "\n" for n in (1, 2)))
    other = Lakehouse.open(spark, str(tmp_path / "other"), backend="embedded")
    steps.ingest(other, str(numbers), "documents", ReaderOptions(fields=["n"]))  # typed as text before the parse
    assert item_files(other) == {"part"} and dict(other.read("items").dtypes)["n"] == "bigint"
    assert sorted(r.n for r in other.read("items").where("position = -1").collect()) == [1, 2]


def make_tar(path, members):
    with tarfile.open(path, "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_bad_webdataset_input_is_quarantined_and_counts_add_up(spark, tmp_path, shared_data):
    photo = (shared_data / "images" / "opencv_debian" / "fruits.jpg").read_bytes()
    good = lambda key, texts, images: (f"{key}.json", json.dumps({"texts": texts, "images": images}).encode())
    members = [
        ("ok.0.jpg", photo),
        good("ok", [None, "a caption"], ["ok.0.jpg", None]),
        ("{bad json", b"x"),
        ("broken.json", b'{"texts": ["x", '),
        good("unequal", ["a", "b"], [None]),
        good("both", ["a"], ["ok.0.jpg"]),
        good("missing", ["text", None], [None, "missing.1.jpg"]),
        ("zero.1.jpg", b""),
        good("zero", ["t", None], [None, "zero.1.jpg"]),
        ("text.1.jpg", b"this is not an image"),
        good("text", ["t", None], [None, "text.1.jpg"]),
        ("trunc.1.jpg", photo[: len(photo) // 3]),
        good("trunc", ["t", None], [None, "trunc.1.jpg"]),
        ("../escape.json", json.dumps({"texts": ["x"]}).encode()),
        ("/abs.json", json.dumps({"texts": ["x"]}).encode()),
        good("empty", [], []),
        ("latin1.json", '{"texts": ["caf\xe9"]}'.encode("latin-1")),
    ]
    make_tar(tmp_path / "a.tar", members)
    make_tar(tmp_path / "b.tar", [good("ok", ["again"], [None])])  # duplicate sample id in another shard
    full = (tmp_path / "a.tar").read_bytes()
    (tmp_path / "c.tar").write_bytes(full[: len(full) // 2])  # truncated tar
    make_tar(tmp_path / "d.tar", [])  # empty tar
    (tmp_path / "e.tar").write_bytes(b"not a tar at all" * 10)

    result = ingest(spark, str(tmp_path), "webdataset")
    reasons = {(r.source.rsplit("/", 1)[1], r.locator.split("#")[0], r.reason)
               for r in result.quarantine.collect()}
    from_a = {(loc, reason) for src, loc, reason in reasons if src == "a.tar"}
    assert {
        ("broken.json", "malformed_json"),
        ("../escape.json", "unsafe_member_name"),
        ("/abs.json", "unsafe_member_name"),
        ("empty.json", "empty_document"),
        ("latin1.json", "invalid_utf8"),
    } == {(loc, reason) for loc, reason in from_a if loc != "{bad json"}
    assert ("b.tar", "ok.json", "duplicate_sample_id") in reasons
    assert any(src == "c.tar" and reason == "truncated_tar" for src, _, reason in reasons)
    assert ("d.tar", "", "no_documents") in reasons
    assert ("e.tar", "", "unreadable_tar") in reasons
    # counts add up for a.tar: every .json member is either a document or a document-level quarantine row
    json_members = [n for n, _ in members if n.endswith(".json") and not n.startswith(("/", ".."))]
    docs_a = result.items.where("position = -1 AND source_ref LIKE '%a.tar%'").count()
    doc_level = {loc for loc, reason in from_a if loc.endswith(".json") and not loc.startswith(("/", ".."))}
    assert docs_a + len(doc_level) == len(json_members)
    # NeMo's reading: unequal lists padded, a shared index gives the text then the image
    layout = lambda sid: [r.modality for r in result.items.where(f"sample_id = '{sid}' AND position >= 0")
                          .orderBy("position").collect()]
    assert layout("unequal") == ["text", "text"] and layout("both") == ["text", "image"]
    # an absent member stays an image item without bytes; undecodable bytes stay images for the decodable rule
    kept = {r.sample_id: r for r in result.items.where(
        "sample_id IN ('missing', 'zero', 'text', 'trunc') AND modality = 'image'").collect()}
    assert kept["missing"].image_id is None and kept["missing"].materialize_error.startswith("missing_image_member")
    assert all(kept[s].image_id is not None for s in ("zero", "text", "trunc"))
    result.unpersist()


@pytest.mark.parametrize("staged", [False, True], ids=["cached", "staged"])
def test_images_are_stored_once_and_only_when_a_kept_item_uses_them(spark, tmp_path, shared_data, staged):
    """Both ways of keeping the parse: cached by Spark, or staged as Parquet parts (as steps.ingest does)."""
    scratch = tmp_path / "scratch"
    staging = str(scratch) if staged else None
    folder = shared_data / "images" / "opencv_debian"
    fruits, baboon, lena = ((folder / n).read_bytes() for n in ("fruits.jpg", "baboon.jpg", "apple.jpg"))
    doc = lambda key, image: (f"{key}.json", json.dumps({"texts": ["t", None], "images": [None, image]}).encode())
    sha = lambda data: hashlib.sha256(data).hexdigest()

    shards = tmp_path / "shards"
    shards.mkdir()
    make_tar(shards / "a.tar", [("s1.1.jpg", fruits), doc("s1", "s1.1.jpg")])
    make_tar(shards / "b.tar", [("s2.1.jpg", baboon), doc("s2", "s2.1.jpg")])
    with ingest(spark, str(shards), "webdataset", staging=staging) as plain:  # every image row is wanted: no join
        assert sorted(r.image_id for r in plain.images.collect()) == sorted([sha(fruits), sha(baboon)])
        assert plain.summary()["documents"] == 2

    # the same bytes in two files (stored once), and an image only a duplicate uses (not stored)
    make_tar(shards / "c.tar", [("s3.1.jpg", fruits), doc("s3", "s3.1.jpg"), ("s1.1.jpg", lena), doc("s1", "s1.1.jpg")])
    with ingest(spark, str(shards), "webdataset", staging=staging) as result:
        assert sorted(r.image_id for r in result.images.collect()) == sorted([sha(fruits), sha(baboon)])
        summary = result.summary()
        assert (summary["documents"], summary["image_items"], summary["unique_images"]) == (3, 3, 2)
        assert summary["quarantine_reasons"] == {"duplicate_sample_id": 1}
        assert result.quarantine.first().detail == f"sample id also in {shards / 'a.tar'}::s1.json"
        if staged:
            assert len(list(scratch.glob("*/part-*.parquet"))) == 3  # a part per file
    assert not staged or list(scratch.iterdir()) == []  # the parts go with the result


def test_a_staged_parse_is_removed_when_the_ingest_fails_half_way(spark, tmp_path, test_data, monkeypatch):
    import mmcurate.io.ingest as ingest_module

    def fail(*args):
        raise RuntimeError("half-way")

    monkeypatch.setattr(ingest_module, "_tables", fail)  # after the parsing job wrote its parts
    with pytest.raises(RuntimeError, match="half-way"):
        ingest(spark, str(test_data / "wds_mint"), "webdataset", staging=str(tmp_path))
    assert list(tmp_path.iterdir()) == []


def test_decompression_bomb_is_refused_without_decoding(spark, tmp_path):
    import struct
    import zlib

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(buffer, "PNG")
    png = bytearray(buffer.getvalue())
    png[16:24] = struct.pack(">II", 50_000, 50_000)
    png[29:33] = struct.pack(">I", zlib.crc32(bytes(png[12:29])) & 0xFFFFFFFF)
    make_tar(tmp_path / "bomb.tar", [("b.0.png", bytes(png)),
                                     ("b.json", json.dumps({"texts": [None, "t"], "images": ["b.0.png", None]}).encode())])
    result = ingest(spark, str(tmp_path), "webdataset")
    assert [r.reason for r in result.quarantine.collect()] == ["image_decompression_bomb"]
    assert result.images.count() == 0
    result.unpersist()


def test_unknown_format_and_missing_input_fail_clearly(spark, tmp_path):
    with pytest.raises(ValueError, match="format must be one of"):
        ingest(spark, str(tmp_path), "warcx")
    with pytest.raises(FileNotFoundError, match="no webdataset input files"):
        ingest(spark, str(tmp_path), "webdataset")
    with pytest.raises(ValueError, match="reserved keys"):
        ReaderOptions(fields=("url", "sample_id"))


def test_sha256_is_computed_on_the_exact_bytes(spark, test_data):
    result = ingest(spark, str(test_data / "wds_mint" / "shard-000001.tar"), "webdataset")
    row = result.images.first()
    assert hashlib.sha256(row.binary_content).hexdigest() == row.image_id
    result.unpersist()
