"""Samples sharing their images merge into one: texts kept (repeats once), provenance kept, counts add up."""
from mmcurate import steps
from mmcurate.lakehouse import Lakehouse

ITEMS = "sample_id string, position int, modality string, text_content string, image_id string, source_ref string"


def test_samples_with_the_same_images_merge_and_keep_their_texts(spark, tmp_path):
    rows = [
        ("a", -1, "metadata", None, None, "a.json"), ("a", 0, "text", "Intro of a.", None, "a.json"),
        ("a", 1, "image", None, "x", "a.tiff"), ("a", 2, "image", None, "y", "a.tiff"),
        ("b", -1, "metadata", None, None, "b.json"), ("b", 0, "image", None, "y", "b.tiff"),
        ("b", 1, "text", "b says something else.", None, "b.json"), ("b", 2, "image", None, "x", "b.tiff"),
        ("b", 3, "text", "INTRO of  a.", None, "b.json"),  # the same text as a's once normalised
        ("c", 0, "text", "c has x only.", None, "c.json"), ("c", 1, "image", None, "x", "c.tiff"),
        ("t1", 0, "text", "text only", None, "t1.json"), ("t2", 0, "text", "text only", None, "t2.json"),
    ]
    lake = Lakehouse.open(spark, str(tmp_path / "lake"), backend="embedded")
    lake.write(spark.createDataFrame(rows, ITEMS), "items")
    counts = steps.merge_image_duplicates(lake)
    assert counts == {"items_in": 13, "items_out": 9, "folded": 4, "samples_receiving_texts": 1}
    merged = lake.read("merged_items")
    a = [(r.position, r.modality, r.text_content or r.image_id, r.merged_from, r.source_ref)
         for r in merged.where("sample_id = 'a'").orderBy("position").collect()]
    assert a == [(-1, "metadata", None, "a", "a.json"), (0, "text", "Intro of a.", "a", "a.json"),
                 (1, "image", "x", "a", "a.tiff"), (2, "image", "y", "a", "a.tiff"),
                 (3, "text", "b says something else.", "b", "b.json")]
    assert {r.sample_id for r in merged.select("sample_id").distinct().collect()} == {"a", "c", "t1", "t2"}
    folded = {(r.sample_id, r.position): (r.rule, r.detail) for r in lake.read("drops").collect()}
    assert folded == {("b", -1): ("merged_into", "a"), ("b", 0): ("merged_into", "a"), ("b", 2): ("merged_into", "a"),
                      ("b", 3): ("repeated_text", "a")}
