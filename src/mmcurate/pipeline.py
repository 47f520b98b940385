"""Lakehouse-level steps that compose stages with table I/O, called by jobs/ and by tests alike."""
from __future__ import annotations

from dataclasses import replace
from typing import Union

from pyspark.sql import DataFrame

from mmcurate.annotate.image_scores import ImageScores
from mmcurate.annotate.text_scores import ParagraphScores, SampleScores
from mmcurate.lakehouse import Lakehouse
from mmcurate.select import Recipe, RecipeError, Selection


def score_tables(
    items: DataFrame, images: DataFrame, image_stage: ImageScores = ImageScores(), text: bool = True
) -> dict[str, DataFrame]:
    """The score tables a recipe selects on, as lazy DataFrames keyed by table name.

    text=False leaves out the text signals (document-level ones in sample_scores, and
    paragraph_scores entirely): the Python-heavy part, which image/count recipes do not read.
    """
    tables = {
        "image_scores": images.transform(image_stage),
        "sample_scores": items.transform(SampleScores(text_signals=text)),
    }
    if text:
        tables["paragraph_scores"] = items.transform(ParagraphScores())
    return tables


def _validates(recipe: Recipe, items: DataFrame, tables: dict[str, DataFrame]) -> bool:
    try:
        recipe.validate(items, tables.get("image_scores"), tables.get("sample_scores"), tables.get("paragraph_scores"))
        return True
    except RecipeError:
        return False


def run_select(
    lake: Lakehouse,
    recipe: Union[Recipe, str],
    image_stage: ImageScores = ImageScores(),
    rescore: bool = True,
    all_scores: bool = False,
) -> Selection:
    """Score `items`/`images`, apply `recipe`, and overwrite the score tables, `curated_items` and `drops`.

    recipe: a Recipe, a packaged recipe name or a YAML path. Only the scores the recipe reads are
    computed: a recipe whose predicates resolve without the text signals (NeMo's blur/QR/ratio)
    skips them; all_scores=True computes every table anyway (for exploration in SQL).
    rescore=False reuses the score tables already in the lakehouse when the recipe validates
    against them (tune thresholds without decoding an image again). Returns the Selection with
    `curated` and `drops` read back from the lakehouse and `summary` in memory.
    """
    recipe = recipe if isinstance(recipe, Recipe) else Recipe.from_yaml(recipe)
    items, images = lake.read("items"), lake.read("images")
    stored = {name: lake.read(name) for name in _SCORE_TABLES if lake.exists(name)}
    cheap = score_tables(items, images, image_stage, text=False)
    if not rescore and _validates(recipe, items, stored):
        scores, computed = stored, {}
    else:
        computed = cheap if not all_scores and _validates(recipe, items, cheap) else score_tables(items, images, image_stage)
        scores = computed
    recipe.validate(items, scores["image_scores"], scores["sample_scores"], scores.get("paragraph_scores"))
    for name, table in computed.items():
        lake.write(table, name, mode="overwrite")
    selection = recipe.apply(
        items,
        image_scores=lake.read("image_scores"),
        sample_scores=lake.read("sample_scores"),
        paragraph_scores=lake.read("paragraph_scores") if "paragraph_scores" in scores else None,
    ).persist()
    try:
        lake.write(selection.curated, "curated_items", mode="overwrite")
        lake.write(selection.drops, "drops", mode="overwrite")
        summary = lake.spark.createDataFrame(selection.summary.collect(), selection.summary.schema)
    finally:
        selection.unpersist()
    return replace(selection, curated=lake.read("curated_items"), drops=lake.read("drops"), summary=summary)


_SCORE_TABLES = ("image_scores", "sample_scores", "paragraph_scores")
