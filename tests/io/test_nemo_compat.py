"""Scenarios where NeMo Curator and mmcurate must agree: reading our own exports back, the image member
fallback under `sample_id_field`, image slots without bytes, an empty file list."""
import hashlib
import io
import json
import tarfile

import pytest
from PIL import Image

from mmcurate.io.documents import ReaderOptions
from mmcurate.io.ingest import ingest
from mmcurate.io.parquet_writer import write_parquet
from mmcurate.io.webdataset_writer import write_webdataset


def content(items, images):
    """(sample_id, position, modality, text, sha256 of the bytes, url) of every item, plus passthrough values."""
    rows = items.join(images.select("image_id", "binary_content"), "image_id", "left").collect()
    return sorted((r.sample_id, r.position, r.modality, r.text_content,
                   hashlib.sha256(r.binary_content).hexdigest() if r.binary_content else None, r.image_url,
                   r.url, r.title) for r in rows)


def test_exports_read_back_exactly_through_ingest(spark, tmp_path, test_data):
    """WebDataset -> Parquet -> WebDataset and Parquet -> WebDataset -> Parquet, each step through ingest."""
    with ingest(spark, str(test_data / "wds_mint"), "webdataset") as source:
        expected = content(source.items, source.images)
        write_parquet(source.items, source.images, str(tmp_path / "pq"))
    with ingest(spark, str(tmp_path / "pq"), "nemo_parquet") as parquet:
        assert parquet.quarantine.count() == 0
        assert content(parquet.items, parquet.images) == expected
        assert set(parquet.items.columns) == set(source.items.columns)  # no second image_id / image_url
        write_webdataset(parquet.items, parquet.images, str(tmp_path / "wds"), samples_per_shard=5)
    with ingest(spark, str(tmp_path / "wds"), "webdataset") as again:
        assert content(again.items, again.images) == expected
        write_parquet(again.items, again.images, str(tmp_path / "pq2"))
    with ingest(spark, str(tmp_path / "pq2"), "nemo_parquet") as last:
        assert content(last.items, last.images) == expected


def tiff(*colours) -> bytes:
    frames = [Image.new("RGB", (8, 8), c) for c in colours]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="TIFF", save_all=True, append_images=frames[1:])
    return buffer.getvalue()


def write_tar(path, members: dict) -> str:
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return str(path)


def test_image_tokens_fall_back_to_the_sample_id_member_as_nemo(spark, tmp_path):
    """NeMo's MINT-style case: images are page tokens, the pages are frames of `{pdf_name}.tiff`."""
    record = {"pdf_name": "doc.pdf", "texts": ["text1", None, None, "text2"],
              "images": [None, "page_0_image_15", "page_1_image_22", None]}
    shard = write_tar(tmp_path / "mint.tar", {"sample.json": json.dumps(record).encode(),
                                              "doc.pdf.tiff": tiff((255, 0, 0), (0, 0, 255))})
    with ingest(spark, shard, "webdataset", ReaderOptions(sample_id_field="pdf_name")) as result:
        assert result.quarantine.count() == 0
        rows = sorted(result.items.where("position >= 0").collect(), key=lambda r: r.position)
        assert [(r.sample_id, r.position, r.modality) for r in rows] == [
            ("doc.pdf", 0, "text"), ("doc.pdf", 1, "image"), ("doc.pdf", 2, "image"), ("doc.pdf", 3, "text")]
        refs = [json.loads(r.source_ref) for r in rows if r.modality == "image"]
        assert [(ref["member"], ref["frame_index"]) for ref in refs] == [("doc.pdf.tiff", 0), ("doc.pdf.tiff", 1)]


def test_an_image_without_bytes_keeps_its_slot_as_nemo(spark, tmp_path):
    items = spark.createDataFrame(
        [("s", -1, "metadata", None, None, None), ("s", 0, "text", "hello", None, None),
         ("s", 1, "image", None, "f" * 64, None), ("s", 2, "image", None, None, "https://x/y.png")],
        "sample_id string, position int, modality string, text_content string, image_id string, image_url string",
    ).selectExpr("*", "'image/png' AS content_type", "CAST(NULL AS string) AS source_ref")
    images = spark.createDataFrame([], "image_id string, binary_content binary, content_type string, width int, "
                                       "height int, n_bytes bigint")
    write_webdataset(items, images, str(tmp_path / "out"), samples_per_shard=10)
    with tarfile.open(next((tmp_path / "out").glob("*.tar"))) as tar:
        names = tar.getnames()
        doc = json.loads(tar.extractfile("s.json").read())
    assert names == ["s.json"]  # no member for an image without bytes
    assert doc["images"] == [None, "s.1.png", "https://x/y.png"] and doc["texts"] == ["hello", None, None]


def test_an_empty_file_list_is_an_empty_result_and_a_folder_or_glob_without_files_an_error(spark, tmp_path):
    for format in ("webdataset", "nemo_parquet", "documents"):
        with ingest(spark, [], format) as result:
            assert result.items.count() == result.images.count() == result.quarantine.count() == 0
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no webdataset input files"):
        ingest(spark, str(tmp_path / "empty"), "webdataset")
    with pytest.raises(FileNotFoundError, match="no webdataset input files"):
        ingest(spark, str(tmp_path / "nothing-*.tar"), "webdataset")


def test_custom_json_and_image_extensions_as_nemo(spark, tmp_path, photo_jpg):
    """NeMo's custom mapping: samples in `.meta.json` members, the image fallback tries only the given extensions."""
    record = {"doc_id": "d1", "texts": ["a", None], "images": [None, "primary"]}
    shard = write_tar(tmp_path / "custom.tar", {"x.meta.json": json.dumps(record).encode(), "d1.jpeg": photo_jpg,
                                                "other.json": b"{not a sample"})
    options = ReaderOptions(sample_id_field="doc_id", json_extensions=(".meta.json",), image_extensions=(".jpeg",))
    with ingest(spark, shard, "webdataset", options) as result:
        assert result.quarantine.count() == 0  # other.json is not a sample member here
        rows = {r.position: r for r in result.items.collect()}
        assert rows[0].text_content == "a" and json.loads(rows[1].source_ref)["member"] == "d1.jpeg"
        assert result.images.first().binary_content == photo_jpg
    with pytest.raises(ValueError, match="json_extensions"):
        ReaderOptions(json_extensions=".json")


def test_parquet_compression_is_an_option_of_the_write(spark, tmp_path, test_data):
    import pyarrow.parquet as pq

    with ingest(spark, str(test_data / "wds_mint"), "webdataset") as source:
        write_parquet(source.items, source.images, str(tmp_path / "zstd"), compression="zstd")
    codecs = {pq.ParquetFile(p).metadata.row_group(0).column(0).compression for p in (tmp_path / "zstd").glob("*.parquet")}
    assert codecs == {"ZSTD"}
    assert spark.conf.get("spark.sql.parquet.compression.codec") == "snappy"  # the session's setting is untouched


def test_requested_fields_that_no_document_has_are_named_and_warned(spark, test_data):
    with ingest(spark, str(test_data / "wds_mint"), "webdataset", ReaderOptions(fields=("url", "titel"))) as result:
        with pytest.warns(UserWarning, match="titel"):
            summary = result.summary()
        assert summary["absent_fields"] == ["titel"]
        assert result.items.where("url IS NOT NULL").count() > 0


# --- positions: NeMo's position-aligned lists, read without refusing what NeMo accepts ----------------------

def test_text_and_image_at_one_index_and_unequal_lists_as_nemo(spark, tmp_path, photo_jpg):
    """NeMo's MINT-like fixture shares indices between texts and images; its other fixture interleaves properly.
    Both read whole; positions are renumbered so they never overlap (NeMo leaves shared positions)."""
    shared = {"texts": ["hello", None, "world"], "images": ["a.0.jpg", None, "a.2.jpg"]}
    interleaved = {"texts": ["intro text", None, "middle text", None, "conclusion"],
                   "images": [None, "b.1.jpg", None, "b.3.jpg"]}  # one shorter: padded with nulls
    shard = write_tar(tmp_path / "pos.tar", {"a.0.jpg": photo_jpg, "a.2.jpg": photo_jpg, "a.json": json.dumps(shared).encode(),
                                             "b.1.jpg": photo_jpg, "b.3.jpg": photo_jpg,
                                             "b.json": json.dumps(interleaved).encode()})
    with ingest(spark, shard, "webdataset") as result:
        assert result.quarantine.count() == 0
        layout = {}
        for r in result.items.where("position >= 0").orderBy("position").collect():
            layout.setdefault(r.sample_id, []).append((r.position, r.modality, r.text_content))
    assert layout["a"] == [(0, "text", "hello"), (1, "image", None), (2, "text", "world"), (3, "image", None)]
    assert [m for _, m, _ in layout["b"]] == ["text", "image", "text", "image", "text"]
    assert [p for p, m, _ in layout["b"] if m == "text"] == [0, 2, 4]


# --- lazy images and materialization ------------------------------------------------------------------------

@pytest.fixture
def mint_shard(tmp_path, photo_jpg, solid_png):
    """A JPEG and a PNG member and an image entry whose member is absent; a PDF sample whose page tokens are the
    frames of `{pdf_name}.tiff` (NeMo's fallback member)."""
    doc = {"sample_id": "doc", "texts": ["intro", None, None, "middle", None],
           "images": [None, "doc.1.jpg", "doc.2.png", None, "gone.4.jpg"]}
    pdf = {"pdf_name": "pdf", "texts": ["page one", None, None], "images": [None, "page_0_image_1", "page_1_image_2"]}
    return write_tar(tmp_path / "mint.tar", {"doc.1.jpg": photo_jpg, "doc.2.png": solid_png(40, 30),
                                             "doc.json": json.dumps(doc).encode(),
                                             "pdf.tiff": tiff((255, 0, 0), (0, 0, 255)),
                                             "pdf.json": json.dumps(pdf).encode()})


def image_rows(items):
    return [(r.sample_id, r.position, r.image_id, r.materialize_error) for r in
            items.where("modality = 'image'").orderBy("sample_id", "position").collect()]


def test_lazy_ingest_then_materialize_gives_the_eager_images(spark, tmp_path, mint_shard):
    from mmcurate import steps
    from mmcurate.lakehouse import Lakehouse

    with ingest(spark, mint_shard, "webdataset") as eager:
        expected = image_rows(eager.items)
        eager_images = {r.image_id: r.binary_content for r in eager.images.collect()}
    assert [e is None for *_, e in expected] == [True, True, False, True, True]  # the absent member: kept, no bytes
    assert expected[2][3].startswith("missing_image_member: ") and len(eager_images) == 4

    lake = Lakehouse.open(spark, str(tmp_path / "lake"), backend="embedded")
    summary = steps.ingest(lake, mint_shard, "webdataset", ReaderOptions(materialize_on_read=False))
    assert summary["unique_images"] == 0 and summary["image_items"] == 5 and summary["quarantined"] == 0
    lazy = image_rows(lake.read("items"))
    assert all(image_id is None for _, _, image_id, _ in lazy) and lazy[2][3].startswith("missing_image_member")

    counts = steps.materialize(lake)
    assert (counts["tried"], counts["materialized"], counts["failed"], counts["new_images"]) == (4, 4, {}, 4)
    assert image_rows(lake.read("items")) == expected
    stored = {r.image_id: r.binary_content for r in lake.read("images").collect()}
    assert stored == eager_images
    assert steps.materialize(lake)["tried"] == 0  # resumable: nothing left, no commit
    assert list((tmp_path / "lake" / "_scratch" / "materialize").iterdir()) == []
    assert lake.version("items") == 1


@pytest.mark.parametrize("staged", [False, True], ids=["cached", "staged"])
def test_materialize_reads_ranges_members_and_whole_files_with_nemo_errors(spark, tmp_path, photo_jpg, staged):
    """NeMo's materialization cases: a byte range ("HDR" + payload + "TRL" at offset 3), the same range three times,
    a whole file, a missing path, a missing member, a frame past the end; the bytes cached by Spark or staged."""
    from mmcurate.io.materialize import materialize_images

    blob = tmp_path / "blob.bin"
    blob.write_bytes(b"HDR" + photo_jpg + b"TRL")
    (tmp_path / "whole.jpg").write_bytes(photo_jpg)
    shard = write_tar(tmp_path / "pages.tar", {"p.tiff": tiff((1, 2, 3))})
    refs = {
        1: {"path": str(blob), "member": "x.jpg", "byte_offset": 3, "byte_size": len(photo_jpg)},
        2: {"path": str(blob), "member": "x.jpg", "byte_offset": 3, "byte_size": len(photo_jpg)},
        3: {"path": str(blob), "member": "x.jpg", "byte_offset": 3, "byte_size": len(photo_jpg)},
        4: {"path": str(tmp_path / "whole.jpg"), "member": None, "byte_offset": None, "byte_size": None},
        5: {"path": None, "member": None, "byte_offset": None, "byte_size": None},
        6: {"path": shard, "member": "absent.jpg", "byte_offset": None, "byte_size": None},
        7: {"path": shard, "member": "p.tiff", "byte_offset": None, "byte_size": None, "frame_index": 4},
        8: {"path": str(tmp_path / "nowhere.jpg"), "member": None, "byte_offset": None, "byte_size": None},
    }
    rows = [("s", p, "image", None, None, None, None, json.dumps(ref), None) for p, ref in refs.items()]
    items = spark.createDataFrame(rows, "sample_id string, position int, modality string, content_type string, "
                                        "text_content string, image_id string, image_url string, source_ref string, "
                                        "materialize_error string")
    scratch = tmp_path / "scratch"
    with materialize_images(items, staging=str(scratch) if staged else None) as done:
        got = {r.position: (r.image_id, r.materialize_error) for r in done.items.collect()}
        assert [r.binary_content for r in done.images.collect()] == [photo_jpg]  # four reads, one image
        assert done.counts()["failed"] == {"missing path": 1, "missing member": 1, "failed to extract frame": 1,
                                           "failed to read path": 1}
    digest = hashlib.sha256(photo_jpg).hexdigest()
    assert [got[p][0] for p in (1, 2, 3, 4)] == [digest] * 4
    assert got[5] == (None, "missing path: source_ref has no path")
    assert got[6] == (None, "missing member: 'absent.jpg'")
    assert got[7][1].startswith("failed to extract frame: 4")
    assert got[8][1].startswith("failed to read path: FileNotFoundError")
    assert not staged or list(scratch.iterdir()) == []


@pytest.fixture
def lazy_items(spark, mint_shard):
    with ingest(spark, mint_shard, "webdataset", ReaderOptions(materialize_on_read=False)) as result:
        yield result.items.where("sample_id = 'doc'").cache(), result.images.cache()


@pytest.mark.parametrize("mode, kept_images, samples", [("warn", 3, 1), ("drop_row", 2, 1), ("drop_sample", 0, 0)])
def test_export_materializes_lazy_images_and_handles_the_rest_as_nemo(spark, tmp_path, lazy_items, mode, kept_images,
                                                                      samples):
    import pyarrow.parquet as pq

    items, images = lazy_items
    out = tmp_path / mode
    if mode == "warn":
        with pytest.warns(UserWarning, match="1 image items have no bytes"):
            write_parquet(items, images, str(out), on_materialize_error=mode)
    else:
        write_parquet(items, images, str(out), on_materialize_error=mode)
    rows = pq.read_table(out).to_pylist()
    image_rows = [r for r in rows if r["modality"] == "image"]
    assert len({r["sample_id"] for r in rows}) == samples and len(image_rows) == kept_images
    assert sum(r["binary_content"] is not None for r in image_rows) == min(kept_images, 2)


def test_export_refuses_missing_bytes_on_error_and_keeps_them_lazy_without_materialize(spark, tmp_path, lazy_items):
    from mmcurate.io.materialize import MaterializeError

    items, images = lazy_items
    with pytest.raises(MaterializeError, match=r"Materialization failed \(1 image items have no bytes.*missing_image_member"):
        write_webdataset(items, images, str(tmp_path / "err"), on_materialize_error="error")
    assert not (tmp_path / "err").exists()  # refused before anything is written
    with pytest.warns(UserWarning, match="3 image items have no bytes"):
        write_webdataset(items, images, str(tmp_path / "lazy"), materialize_on_write=False)
    with tarfile.open(next((tmp_path / "lazy").glob("*.tar"))) as tar:
        assert tar.getnames() == ["doc.json"]  # slots only, as NeMo writes null binary_content
        assert json.loads(tar.extractfile("doc.json").read())["images"][1] == "doc.1.jpg"


def test_missing_images_can_still_be_quarantined(spark, mint_shard):
    with ingest(spark, mint_shard, "webdataset", ReaderOptions(on_missing_image="quarantine")) as result:
        assert [r.reason for r in result.quarantine.collect()] == ["missing_image_member"]
        assert result.items.where("modality = 'image'").count() == 4  # 2 + the 2 PDF pages
    with pytest.raises(ValueError, match="on_missing_image"):
        ReaderOptions(on_missing_image="drop")
