"""Lakehouse-level steps that compose stages with table I/O, called by jobs/ and by tests alike."""
from __future__ import annotations

from dataclasses import replace
from typing import Union

from pyspark.sql import DataFrame

from mmcurate.annotate.image_scores import ImageScores
from mmcurate.annotate.text_scores import ParagraphScores, SampleScores
from mmcurate.lakehouse import Lakehouse
from mmcurate.select import Recipe, Selection


def score_tables(items: DataFrame, images: DataFrame, image_stage: ImageScores = ImageScores()) -> dict[str, DataFrame]:
    """The three score tables a recipe selects on, as lazy DataFrames keyed by table name."""
    return {
        "image_scores": images.transform(image_stage),
        "sample_scores": items.transform(SampleScores()),
        "paragraph_scores": items.transform(ParagraphScores()),
    }


def run_select(
    lake: Lakehouse,
    recipe: Union[Recipe, str],
    image_stage: ImageScores = ImageScores(),
    rescore: bool = True,
) -> Selection:
    """Score `items`/`images`, apply `recipe`, and overwrite the score tables, `curated_items` and `drops`.

    recipe: a Recipe, a packaged recipe name or a YAML path. rescore=False reuses score tables
    already in the lakehouse (tune thresholds without decoding an image again). Returns the
    Selection with `curated` and `drops` read back from the lakehouse and `summary` in memory.
    """
    recipe = recipe if isinstance(recipe, Recipe) else Recipe.from_yaml(recipe)
    items = lake.read("items")
    computed = score_tables(items, lake.read("images"), image_stage)
    reused = {name for name in computed if not rescore and lake.exists(name)}
    scores = {name: lake.read(name) if name in reused else table for name, table in computed.items()}
    recipe.validate(items, scores["image_scores"], scores["sample_scores"], scores["paragraph_scores"])
    for name in (n for n in computed if n not in reused):
        lake.write(scores[name], name, mode="overwrite")
    selection = recipe.apply(
        items,
        image_scores=lake.read("image_scores"),
        sample_scores=lake.read("sample_scores"),
        paragraph_scores=lake.read("paragraph_scores"),
    ).persist()
    try:
        lake.write(selection.curated, "curated_items", mode="overwrite")
        lake.write(selection.drops, "drops", mode="overwrite")
        summary = lake.spark.createDataFrame(selection.summary.collect(), selection.summary.schema)
    finally:
        selection.unpersist()
    return replace(selection, curated=lake.read("curated_items"), drops=lake.read("drops"), summary=summary)
