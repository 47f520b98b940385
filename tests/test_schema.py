"""Schema checks and the position-repair helpers every item-level stage relies on."""
import pytest
from chispa import assert_df_equality

from mmcurate.schema import (
    SchemaError,
    drop_orphan_metadata,
    renumber_positions,
    require_columns,
    valid_item,
)

COLS = "sample_id string, position int, modality string, text_content string"


def test_require_columns_names_missing_mistyped_and_present(spark):
    df = spark.createDataFrame([("a", "1")], "sample_id string, position string")
    with pytest.raises(SchemaError) as err:
        require_columns(df, {"sample_id": "string", "position": "int", "modality": "string"}, where="stage x")
    message = str(err.value)
    assert "stage x" in message
    assert "missing columns: modality" in message
    assert "position (expected int, got string)" in message
    assert "Present columns: sample_id:string, position:string" in message


def test_require_columns_accepts_names_only_and_returns_the_frame(spark):
    df = spark.createDataFrame([("a", 1)], "sample_id string, position int")
    assert require_columns(df, ["sample_id"]) is df


def test_renumber_keeps_order_and_metadata_row(spark):
    # NeMo oracle: [meta, text@0, img@1, text@2, img@3, text@4], drop img@3 -> [-1,0,1,2,3]
    items = spark.createDataFrame(
        [("s", -1, "metadata", None), ("s", 0, "text", "intro"), ("s", 1, "image", None),
         ("s", 2, "text", "middle"), ("s", 4, "text", "end"), ("t", 7, "text", "only")],
        COLS,
    )
    expected = spark.createDataFrame(
        [("s", -1, "metadata", None), ("s", 0, "text", "intro"), ("s", 1, "image", None),
         ("s", 2, "text", "middle"), ("s", 3, "text", "end"), ("t", 0, "text", "only")],
        COLS,
    )
    assert_df_equality(renumber_positions(items), expected, ignore_row_order=True, ignore_nullable=True)


def test_orphan_metadata_rows_are_removed(spark):
    items = spark.createDataFrame(
        [("s1", -1, "metadata", None), ("s1", 0, "text", "x"), ("s2", -1, "metadata", None)], COLS
    )
    kept = sorted((r.sample_id, r.position) for r in drop_orphan_metadata(items).collect())
    assert kept == [("s1", -1), ("s1", 0)]


def test_valid_item_matches_nemo_basic_validity(spark):
    df = spark.createDataFrame(
        [("metadata", -1), ("metadata", 0), ("text", 0), ("text", -1), ("audio", 0), (None, 0)],
        "modality string, position int",
    )
    assert [r.ok for r in df.select(valid_item().alias("ok")).collect()] == [True, False, True, False, False, False]
