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
