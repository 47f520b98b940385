"""Merge samples that share their images: one sample keeps the images, the texts of all of them stay.

Samples whose sets of image ids are equal (and not empty) form a group; the first by sample_id
keeps its id, metadata row, images and texts in its own order, and the other samples' text items
follow, by (sample_id, position), except texts already in the merged sample (normalised text). Each
item keeps its `source_ref` and gains `merged_from`, the sample it came from. What does not carry
over (the other samples' metadata rows and images, repeated texts) is returned as ledger rows, so
items in = items out + folded. Text-only samples are never merged.

>>> merged, folded = merge_samples_sharing_images(items)
"""
from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from mmcurate.dedup.exact import text_hash
from mmcurate.schema import is_modality, require_columns
from mmcurate.select import DROPS

MERGE_RECIPE, MERGE_VERSION, MERGE_STAGE = "merge_image_duplicates", "1", "merge"


def merge_samples_sharing_images(items: DataFrame) -> tuple[DataFrame, DataFrame]:
    """(merged items with `merged_from`, folded items as `drops` rows with rule `merged_into` or `repeated_text`)."""
    require_columns(items, {"sample_id": "string", "position": "int", "modality": "string",
                            "text_content": "string", "image_id": "string"}, where="merge_samples_sharing_images")
    images = items.where(is_modality("image") & F.col("image_id").isNotNull())
    sets = images.groupBy("sample_id").agg(
        F.sha2(F.array_join(F.array_sort(F.collect_set("image_id")), ","), 256).alias("_set"))
    groups = sets.groupBy("_set").agg(F.min("sample_id").alias("_keeper"), F.count(F.lit(1)).alias("_n")).where("_n > 1")
    target = sets.join(groups, "_set").select("sample_id", "_keeper")
    rows = items.join(target, "sample_id", "left").withColumn("_target", F.coalesce("_keeper", "sample_id"))
    keeper = F.col("sample_id") == F.col("_target")
    is_text = is_modality("text")
    carried = keeper | is_text
    order = F.struct(F.when(keeper, 0).otherwise(1).alias("k"), F.col("sample_id"), F.col("position"))
    rows = rows.withColumn("_order", order).withColumn("_hash", F.when(is_text, text_hash(F.col("text_content"))))
    first_of_text = F.row_number().over(Window.partitionBy("_target", "_hash").orderBy("_order"))
    rows = rows.withColumn("_repeat", carried & is_text & F.col("_hash").isNotNull()
                           & F.col("_keeper").isNotNull() & (first_of_text > 1))
    kept = rows.where(carried & ~F.col("_repeat"))
    content = F.col("position") >= 0
    renumbered = F.when(content, F.row_number().over(
        Window.partitionBy("_target", content.alias("_c")).orderBy("_order")) - 1).otherwise(F.col("position"))
    others = [c for c in items.columns if c not in ("sample_id", "position")]
    merged = kept.select(F.col("_target").alias("sample_id"), renumbered.cast("int").alias("position"),
                         *[F.col(f"`{c}`") for c in others], F.col("sample_id").alias("merged_from"))
    folded = rows.where(~carried | F.col("_repeat")).select(
        "sample_id", "position", "modality", F.lit(MERGE_STAGE).alias("stage"),
        F.when(F.col("_repeat"), F.lit("repeated_text")).otherwise(F.lit("merged_into")).alias("rule"),
        F.lit("merged").alias("reason"), F.col("_target").alias("detail"),
        F.lit(MERGE_RECIPE).alias("recipe"), F.lit(MERGE_VERSION).alias("recipe_version"))
    return merged.select(*items.columns, "merged_from"), folded.select(*DROPS.fieldNames())
