"""Round trips: NeMo WebDataset -> Delta -> NeMo WebDataset and NeMo Parquet -> Delta -> Parquet
keep sample ids, order, texts, image bytes (by hash) and passthrough fields exactly."""
import hashlib
import json
import tarfile

import pyarrow.parquet as pq
import pytest

from mmcurate import steps
from mmcurate.io.ingest import ingest
from mmcurate.io.parquet_writer import write_parquet
from mmcurate.io.webdataset_writer import write_webdataset
from mmcurate.lakehouse import Lakehouse


def signature(items, images):
    """sample_id -> ordered content [(modality, text, sha256 of bytes or URL)], from DataFrames (image items whose
    bytes could not be had left out)."""
    rows = (
        items.where("position >= 0")
        .join(images.select("image_id", "binary_content"), "image_id", "left")
        .select("sample_id", "position", "modality", "text_content", "binary_content", "image_url", "materialize_error")
        .orderBy("sample_id", "position")
        .collect()
    )
    out = {}
    for r in rows:
        if r.materialize_error is not None:  # an image kept without bytes (an absent member), as in the source
            continue
        payload = hashlib.sha256(r.binary_content).hexdigest() if r.binary_content is not None else r.image_url
        out.setdefault(r.sample_id, []).append((r.modality, r.text_content, payload))
    return out


def source_signature(tar_paths):
    """The same signature read straight from MINT/NeMo tars with tarfile (missing members skipped)."""
    out = {}
    for path in tar_paths:
        with tarfile.open(path) as tar:
            members = {m.name: m for m in tar if m.isfile()}
            for name in (n for n in members if n.endswith(".json")):
                doc = json.loads(tar.extractfile(members[name]).read())
                content = []
                for text, image in zip(doc["texts"], doc["images"]):
                    if text is not None:
                        content.append(("text", text, None))
                    elif image in members:
                        content.append(("image", None, hashlib.sha256(tar.extractfile(members[image]).read()).hexdigest()))
                out[doc["sample_id"]] = content
    return out


def test_nemo_webdataset_round_trip(spark, tmp_path, test_data):
    shards = sorted(str(p) for p in (test_data / "wds_mint").glob("*.tar"))
    lake = Lakehouse.open(spark, str(tmp_path / "lake"), backend="embedded")
    steps.ingest(lake, shards, "webdataset")
    items, images = lake.read("items"), lake.read("images")
    manifest = write_webdataset(items, images, str(tmp_path / "out"), samples_per_shard=7)
    assert manifest.count() == 3

    back = ingest(spark, str(tmp_path / "out"), "webdataset")
    assert back.summary()["quarantined"] == 0
    original = source_signature(shards)
    assert signature(items, images) == original
    assert signature(back.items, back.images) == original
    meta = lambda df: {r.sample_id: (r.url, r.title, r.source) for r in df.where("position = -1").collect()}
    assert meta(back.items) == meta(items)
    back.unpersist()


def test_nemo_parquet_round_trip(spark, tmp_path, test_data):
    source = test_data / "nemo_parquet" / "items.parquet"
    lake = Lakehouse.open(spark, str(tmp_path / "lake"), backend="embedded")
    steps.ingest(lake, str(source), "nemo_parquet")
    write_parquet(lake.read("items"), lake.read("images"), str(tmp_path / "out"))

    def rows(table):
        columns = ["sample_id", "position", "modality", "text_content", "binary_content", "url"]
        out = {}
        for r in table.select(columns).to_pylist():
            blob = r["binary_content"]
            out[(r["sample_id"], r["position"])] = (r["modality"], r["text_content"],
                                                   hashlib.sha256(blob).hexdigest() if blob else None, r["url"])
        return out

    original = pq.read_table(source)
    written = pq.read_table(str(tmp_path / "out"))
    assert written.schema.names[:8] == original.schema.names[:8]
    assert rows(written) == rows(original)


@pytest.mark.parametrize("sample_id", ["a/b:c.d", "../../etc/passwd", "/abs/x", "über nice ✓"])
def test_awkward_sample_ids_survive_export_and_stay_inside_the_output(spark, tmp_path, sample_id):
    items = spark.createDataFrame(
        [(sample_id, -1, "metadata", None), (sample_id, 0, "text", "hello")],
        "sample_id string, position int, modality string, text_content string",
    ).selectExpr("*", "CAST(NULL AS string) AS content_type", "CAST(NULL AS string) AS image_id",
                 "CAST(NULL AS string) AS image_url", "CAST(NULL AS string) AS source_ref")
    images = spark.createDataFrame([], "image_id string, binary_content binary, content_type string, "
                                       "width int, height int, n_bytes bigint")
    out = tmp_path / "out"
    write_webdataset(items, images, str(out), samples_per_shard=10)
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert written and all(out in p.parents for p in written)
    back = ingest(spark, str(out), "webdataset")
    assert [r.sample_id for r in back.items.where("position = 0").collect()] == [sample_id]
    back.unpersist()
