"""Scores from model heads, a causal LM and a fastText classifier equal the direct computation on the same inputs."""
import math

import numpy as np
import pytest
import torch
from pyspark.sql import functions as F

from mmcurate.annotate.heads import AestheticScores, NsfwScores, load_head
from mmcurate.annotate.perplexity import DocumentPerplexity, TextPerplexity
from mmcurate.annotate.quality import QualityScores, fasttext_line, train_quality_classifier

ITEMS = "sample_id string, position int, modality string, text_content string, image_id string"


@pytest.mark.parametrize("stage, column", [(AestheticScores, "aesthetic_score"), (NsfwScores, "nsfw_score")])
def test_heads_score_stored_embeddings_as_the_published_head_does(spark, tiny_models, stage, column):
    rng = np.random.default_rng(0)
    vectors = [v / np.linalg.norm(v) for v in rng.normal(size=(5, 16))]
    rows = [(f"i{n}", "clip", [float(x) for x in v], None) for n, v in enumerate(vectors)] + [("bad", "clip", None, "truncated")]
    embeddings = spark.createDataFrame(rows, "image_id string, model string, embedding array<float>, error string")
    kind = "aesthetic" if stage is AestheticScores else "nsfw"
    out = {r.image_id: r[column] for r in embeddings.transform(stage(model_path=tiny_models[kind], device="cpu",
                                                                     batch_size=2)).collect()}
    head = load_head(kind, tiny_models[kind], "cpu")
    with torch.no_grad():
        expected = head(torch.tensor(np.stack(vectors), dtype=torch.float32)).squeeze(-1).numpy()
    assert [out[f"i{n}"] for n in range(5)] == pytest.approx(expected.tolist(), abs=1e-5)
    assert out["bad"] is None
    if kind == "nsfw":
        assert all(0 <= out[f"i{n}"] <= 1 for n in range(5))


def test_a_head_file_in_another_layout_is_refused(tiny_models):
    with pytest.raises(ValueError, match="not a nsfw head in the published layout"):
        load_head("nsfw", tiny_models["aesthetic"], "cpu")


def test_perplexity_per_text_and_token_weighted_per_document(spark, tiny_models):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    texts = ["the cat and the dog in the city", "a river", "history of science", "x"]
    items = spark.createDataFrame([("d1", 0, "text", texts[0], None), ("d1", 1, "text", texts[1], None),
                                   ("d1", 2, "image", None, "img"), ("d2", 0, "text", texts[2], None),
                                   ("d2", 1, "text", texts[3], None)], ITEMS)
    scored = items.transform(TextPerplexity(model_path=tiny_models["gpt2"], device="cpu", batch_size=2)).cache()
    rows = {(r.sample_id, r.position): r for r in scored.collect()}
    model = AutoModelForCausalLM.from_pretrained(tiny_models["gpt2"]).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_models["gpt2"])
    for key, text in ((("d1", 0), texts[0]), (("d1", 1), texts[1]), (("d2", 0), texts[2])):
        ids = tokenizer(text, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            loss = model(input_ids=ids, labels=ids).loss.item()  # mean NLL over the predicted tokens
        assert rows[key].perplexity == pytest.approx(math.exp(loss), rel=1e-5)
        assert rows[key].n_tokens == ids.shape[1] - 1
    assert (rows[("d2", 1)].perplexity, rows[("d2", 1)].error) == (None, "too_short")
    docs = {r.sample_id: r for r in scored.transform(DocumentPerplexity()).collect()}
    d1 = [rows[("d1", 0)], rows[("d1", 1)]]
    assert docs["d1"].document_tokens == sum(r.n_tokens for r in d1)
    assert docs["d1"].document_perplexity == pytest.approx(
        math.exp(sum(r.nll_sum for r in d1) / sum(r.n_tokens for r in d1)), rel=1e-9)


def test_perplexity_deciles_over_all_documents(spark):
    rows = [(f"d{i:03d}", 0, "m", 10, 10 * math.log(i), float(i), None) for i in range(1, 101)]
    scores = spark.createDataFrame(rows, "sample_id string, position int, model string, n_tokens int, nll_sum double, "
                                         "perplexity double, error string")
    out = {r.sample_id: r for r in scores.transform(DocumentPerplexity()).collect()}
    assert out["d005"].document_perplexity == pytest.approx(5.0)
    assert [out[f"d{i:03d}"].perplexity_decile for i in (1, 10, 11, 50, 51, 91, 100)] == [1, 1, 2, 5, 6, 10, 10]


def test_fasttext_quality_scores_equal_the_models_own_prediction(spark, tiny_models):
    import fasttext

    items = spark.createDataFrame([
        ("good", 0, "text", "the history of science", None), ("good", 1, "text", "and the river city", None),
        ("spam", 0, "text", "buy cheap now\nclick free casino", None), ("empty", 0, "image", None, "img"),
    ], ITEMS)
    out = {r.sample_id: r.quality_score for r in items.transform(QualityScores(model_path=tiny_models["fasttext"])).collect()}
    model = fasttext.load_model(tiny_models["fasttext"])
    for sample, text in (("good", "the history of science\n\nand the river city"), ("spam", "buy cheap now\nclick free casino")):
        labels, probabilities = model.predict(fasttext_line(text), k=-1)
        assert out[sample] == pytest.approx(float(dict(zip(labels, probabilities))["__label__hq"]), abs=1e-6)
    assert out["good"] > 0.5 > out["spam"] and set(out) == {"good", "spam", "empty"} and out["empty"] is None


def test_training_a_quality_classifier_needs_both_classes(spark, tmp_path):
    only_good = spark.createDataFrame([("a fine text", True)], "document string, label boolean")
    with pytest.raises(ValueError, match="positive and negative"):
        train_quality_classifier(only_good, str(tmp_path / "q.bin"))
    with pytest.raises(ValueError, match="columns"):
        train_quality_classifier(only_good.select(F.col("document").alias("text")), str(tmp_path / "q.bin"))
