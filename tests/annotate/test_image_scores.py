"""ImageScores and ImageQR on real photos, a solid colour, a QR code and bad bytes: the Spark tables equal
image_signals and qr_signals per image."""

import pytest
from chispa import assert_df_equality

from mmcurate.annotate.image_scores import IMAGE_QR, IMAGE_SCORES, ImageQR, ImageScores
from mmcurate.annotate.image_signals import image_signals, qr_signals
from mmcurate.images import sha256_hex
from mmcurate.schema import SchemaError


@pytest.fixture(scope="module")
def blobs(shared_data, solid_png, qr_png) -> dict[str, bytes]:
    images = shared_data / "images"
    return {
        "photo": (images / "opencv_debian/baboon.jpg").read_bytes(),
        "cat": (images / "skimage/chelsea.png").read_bytes(),
        "solid": solid_png(64, 48),
        "qr": qr_png,
        "truncated": (images / "pillow_tests/truncated_jpeg.jpg").read_bytes(),
        "garbage": b"<html>not an image</html>",
    }


@pytest.fixture(scope="module")
def images(spark, blobs):
    rows = [(sha256_hex(data), data) for data in blobs.values()] + [("0" * 64, None)]
    return spark.createDataFrame(rows, "image_id string, binary_content binary")


def expected_row(image_id: str, data: bytes, signals=image_signals, schema=IMAGE_SCORES) -> tuple:
    values = signals(data)
    return (image_id, *(values[f.name] for f in schema.fields[1:]))


@pytest.mark.parametrize("stage, signals, schema", [(ImageScores(), image_signals, IMAGE_SCORES),
                                                    (ImageQR(), qr_signals, IMAGE_QR)])
def test_scores_equal_the_signal_functions_for_every_image(spark, images, blobs, stage, signals, schema):
    scores = images.transform(stage)
    expected = spark.createDataFrame(
        [expected_row(sha256_hex(data), data, signals, schema) for data in blobs.values()]
        + [expected_row("0" * 64, b"", signals, schema)], schema)
    assert_df_equality(scores, expected, ignore_row_order=True, ignore_nullable=True)
    plan = scores._jdf.queryExecution().executedPlan().toString()
    assert plan.count("ArrowEvalPython") == 1  # one UDF pass per image, however many signals


def test_signals_separate_the_images_the_recipes_care_about(images, blobs):
    by_id = {r.image_id: r for r in images.transform(ImageScores()).collect()}
    qr_by_id = {r.image_id: r.qr_area_ratio for r in images.transform(ImageQR()).collect()}
    photo, solid, qr = (by_id[sha256_hex(blobs[k])] for k in ("photo", "solid", "qr"))
    assert photo.decode_ok and photo.sharpness > 100 and qr_by_id[photo.image_id] == 0.0
    assert (photo.format, photo.width, photo.height, photo.aspect_ratio) == ("JPEG", 512, 512, 1.0)
    assert solid.sharpness == 0.0 and solid.aspect_ratio == 64 / 48
    assert qr_by_id[qr.image_id] > 0.05
    for bad, error in (("truncated", "decode_error"), ("garbage", "not_an_image")):  # OpenCV refuses the cut JPEG
        row = by_id[sha256_hex(blobs[bad])]
        assert (row.decode_ok, row.error, row.sharpness, row.phash, qr_by_id[row.image_id]) == (False, error, None, None,
                                                                                                None)
    missing = by_id["0" * 64]
    assert (missing.decode_ok, missing.error, missing.n_bytes) == (False, "empty", 0)


def test_small_arrow_batches_give_the_same_scores(spark, images):
    stage = ImageScores(batch_size=2)
    assert stage.spark_conf == {"spark.sql.execution.arrow.maxRecordsPerBatch": "2"}
    key = "spark.sql.execution.arrow.maxRecordsPerBatch"
    before = spark.conf.get(key)
    default = sorted(images.transform(ImageScores()).collect())
    spark.conf.set(key, stage.spark_conf[key])
    try:
        assert sorted(images.repartition(1).transform(stage).collect()) == default
    finally:
        spark.conf.set(key, before)


def test_declares_what_it_reads_and_fails_fast(spark):
    assert ImageScores.reads == {"image_id": "string", "binary_content": "binary"}
    assert ImageScores.schema == IMAGE_SCORES and ImageScores.key == ImageQR.key == ("image_id",)
    assert ImageQR.on_demand and not ImageScores.on_demand
    with pytest.raises(SchemaError, match="missing columns: binary_content"):
        ImageScores()(spark.createDataFrame([("x",)], "image_id string"))
