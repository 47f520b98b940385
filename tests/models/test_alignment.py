"""CLIP alignment end to end through the lakehouse (incremental), and the NeMo / MMC4 policies on planted matrices."""
import numpy as np
import pandas as pd
import pytest
from pyspark.sql import functions as F

from mmcurate import steps
from mmcurate.annotate.alignment import ImageAlignment, mmc4_assignment
from mmcurate.lakehouse import Lakehouse
from mmcurate.select import Recipe, Rule

DEMO = __import__("mmcurate").__path__[0] + "/demo_data/wds"
MODEL_STAGES = ("image_embeddings", "text_embeddings", "pair_scores", "image_alignment", "sample_embeddings")


@pytest.fixture(scope="module")
def lake(spark, tmp_path_factory, model_stage_params):
    """The demo shard 0 ingested and annotated, then shard 1 ingested and annotated again, then a rerun."""
    lake = Lakehouse.open(spark, str(tmp_path_factory.mktemp("model_lake")))
    stages = [{"stage": name, **model_stage_params.get(name, {})} for name in MODEL_STAGES]
    first_ingest = steps.ingest(lake, f"{DEMO}/shard-000000.tar", "webdataset")
    first = steps.annotate(lake, stages)
    second_ingest = steps.ingest(lake, f"{DEMO}/shard-000001.tar", "webdataset")
    second = steps.annotate(lake, stages)
    rerun = steps.annotate(lake, stages)
    return {"lake": lake, "first": first, "second": second, "rerun": rerun,
            "ingested": (first_ingest, second_ingest)}


def test_scoring_is_incremental_new_images_texts_and_documents_only(lake):
    first, second, rerun = ({a.stage: a for a in lake[k]} for k in ("first", "second", "rerun"))
    images_before, images_added = (s["unique_images"] for s in lake["ingested"])
    texts_added = lake["ingested"][1]["text_items"]
    assert {a.action for a in first.values()} == {"overwrite"}
    assert first["image_embeddings"].rows_added == images_before
    assert (second["image_embeddings"].action, second["image_embeddings"].rows_added) == ("append", images_added)
    assert (second["text_embeddings"].action, second["text_embeddings"].rows_added) == ("append", texts_added)
    assert {a.action for a in second.values()} == {"append"}
    assert {a.action for a in rerun.values()} == {"up_to_date"} and sum(a.rows_added for a in rerun.values()) == 0
    images = lake["lake"].read("image_embeddings")
    assert images.count() == images.select("image_id").distinct().count() == lake["lake"].read("images").count()


def test_pair_scores_are_the_cosines_of_every_image_with_every_text_of_its_document(lake):
    lakehouse = lake["lake"]
    items = lakehouse.read("items")
    images = items.where("modality = 'image'").join(
        lakehouse.read("image_embeddings").where("embedding IS NOT NULL").select("image_id", "embedding"), "image_id")
    texts = lakehouse.read("text_embeddings").where("embedding IS NOT NULL")
    per_sample = (images.groupBy("sample_id").agg(F.count("*").alias("i"))
                  .join(texts.groupBy("sample_id").agg(F.count("*").alias("t")), "sample_id"))
    pairs = lakehouse.read("pair_scores")
    assert pairs.count() == per_sample.select(F.sum(F.col("i") * F.col("t"))).first()[0] > 0
    sample = pairs.first().sample_id
    vectors = {("image", r.position): np.array(r.embedding) for r in images.where(F.col("sample_id") == sample).collect()}
    vectors |= {("text", r.position): np.array(r.embedding) for r in texts.where(F.col("sample_id") == sample).collect()}
    for r in pairs.where(F.col("sample_id") == sample).collect():
        expected = float(vectors[("image", r.image_position)] @ vectors[("text", r.text_position)])
        assert r.score == pytest.approx(expected, abs=1e-6) and r.model == "clip"


def test_the_nemo_clip_rule_keeps_exactly_the_images_whose_best_text_scores_enough(lake):
    lakehouse = lake["lake"]
    alignment = lakehouse.read("image_alignment")
    threshold = alignment.select(F.percentile("clip_max_similarity", F.lit(0.5))).first()[0]
    recipe = Recipe("clip_test", "1", (Rule("clip", "image", f"clip_max_similarity >= {threshold}"),))
    selection = steps.select(lakehouse, recipe, curated_table="clip_curated")
    kept = selection.curated.where("modality = 'image'").count()
    expected = alignment.where(F.col("clip_max_similarity") >= threshold).count()
    assert 0 < kept == expected < lakehouse.read("items").where("modality = 'image'").count()
    # images of documents without text have no alignment row: the rule reads NULL and drops them, as NeMo does
    drops = selection.drops.where("rule = 'clip'").count()
    assert kept + drops == lakehouse.read("items").where("modality = 'image'").count()


def test_sample_embeddings_feed_semantic_dedup(lake):
    lakehouse = lake["lake"]
    steps.annotate(lakehouse, [{"stage": "semantic_duplicates", "n_clusters": 3}])
    semantic = lakehouse.read("semantic_duplicates")
    assert semantic.count() == lakehouse.read("sample_embeddings").count() > 0
    norms = [float(np.linalg.norm(r.embedding)) for r in lakehouse.read("sample_embeddings").collect()]
    assert norms == pytest.approx([1.0] * len(norms))


def test_mmc4_assignment_maximises_total_similarity_one_image_per_text():
    scores = np.array([[0.90, 0.80], [0.85, 0.10]])
    assert mmc4_assignment(scores, 0.15) == [1, 0]  # 0.8 + 0.85 beats 0.9 + 0.1
    below = np.array([[0.10, 0.12], [0.50, 0.20]])
    assert mmc4_assignment(below, 0.15) == [None, 0]  # an image whose best text is under 0.15 stays unassigned
    more_images = np.array([[0.9, 0.2], [0.8, 0.3], [0.7, 0.6]])
    assert mmc4_assignment(more_images, 0.15) == [0, 0, 1]  # the left-out image goes to its best text
    assert mmc4_assignment(np.zeros((2, 0)), 0.15) == [None, None]


def test_alignment_rows_per_image_with_nemo_max_and_mmc4_assignment():
    pairs = pd.DataFrame({"sample_id": "s", "image_position": [1, 1, 3, 3], "text_position": [0, 2, 0, 2],
                          "score": [0.90, 0.80, 0.85, 0.10]})
    out = ImageAlignment().align_document(pairs).set_index("position")
    assert out["clip_max_similarity"].to_dict() == {1: 0.90, 3: 0.85}
    assert out["clip_best_text_position"].to_dict() == {1: 0, 3: 0}
    assert out["mmc4_text_position"].tolist() == [2, 0] and out["mmc4_similarity"].tolist() == [0.80, 0.85]


def test_the_mmc4_recipe_names_its_model_stages_and_runs_once_they_are_configured(lake, model_stage_params):
    from mmcurate.annotate import build_stage
    from mmcurate.select import RecipeError

    with pytest.raises(RecipeError, match=r"image_embeddings \(model_path\).*nsfw_scores \(model_path\)"):
        steps.stages_for("mmc4")
    configured = [build_stage({"stage": n, **model_stage_params[n]})
                  for n in ("image_embeddings", "text_embeddings", "nsfw_scores")]
    stages = steps.stages_for("mmc4", configured=configured)
    assert [s.name for s in stages] == ["image_scores", "image_embeddings", "text_embeddings", "pair_scores",
                                        "image_alignment", "nsfw_scores"]
    assert stages[1] is configured[0]
    lakehouse = lake["lake"]
    done = {a.stage: a.action for a in steps.annotate(lakehouse, stages)}
    assert done["image_embeddings"] == "up_to_date" and done["nsfw_scores"] == "overwrite"
    selection = steps.select(lakehouse, "mmc4", curated_table="mmc4_items")
    assert selection.curated.count() + selection.drops.count() == lakehouse.read("items").count()
    reasons = {r.rule for r in selection.drops.select("rule").distinct().collect()}
    assert "clip_assignment" in reasons or "nsfw" in reasons


def test_tables_read_from_a_rebuilt_table_are_rebuilt_too(lake, model_stage_params):
    """Another model for the image embeddings: the heads and pairs that read them must not keep the old scores."""
    lakehouse = lake["lake"]
    other = {**model_stage_params["image_embeddings"], "model_id": "clip-other"}
    done = {a.stage: a for a in steps.annotate(lakehouse, [
        {"stage": "image_embeddings", **other}, "pair_scores", "image_alignment",
        {"stage": "nsfw_scores", **model_stage_params["nsfw_scores"]}])}
    assert done["image_embeddings"].action == "overwrite"
    for name in ("pair_scores", "nsfw_scores"):
        assert (done[name].action, done[name].reason) == ("overwrite", "a table it reads was rebuilt")
    assert done["image_alignment"].action == "overwrite"
    # the texts are still embedded by "clip": embeddings of different models never pair
    assert lakehouse.read("pair_scores").count() == 0 and lakehouse.read("image_alignment").count() == 0


def test_a_document_is_paired_only_once_all_its_items_are_embedded(spark):
    from mmcurate.annotate.alignment import PairScores

    items = spark.createDataFrame([
        ("a", 0, "text", "hello", None), ("a", 1, "image", None, "x"), ("a", 2, "image", None, "y"),
        ("b", 0, "text", "world", None), ("b", 1, "image", None, "x"),
    ], "sample_id string, position int, modality string, text_content string, image_id string")
    vector = [1.0, 0.0]
    texts = spark.createDataFrame([("a", 0, "h", "m", vector, None), ("b", 0, "h", "m", vector, None)],
                                  "sample_id string, position int, text_hash string, model string, "
                                  "embedding array<float>, error string")
    only_x = spark.createDataFrame([("x", "m", vector, None)], "image_id string, model string, embedding array<float>, error string")
    both = only_x.unionByName(spark.createDataFrame([("y", "m", None, "truncated")], only_x.schema))
    stage = PairScores()
    assert {r.sample_id for r in stage(items, image_embeddings=only_x, text_embeddings=texts).collect()} == {"b"}
    pairs = {(r.sample_id, r.image_position): r.score for r in stage(items, image_embeddings=both, text_embeddings=texts).collect()}
    assert pairs == {("a", 1): 1.0, ("b", 1): 1.0}  # y has its row (an error): a is done, y has no pair
