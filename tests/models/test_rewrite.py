"""Rewriting: greedy generation equals the model's own generate, runs are deterministic, both versions stay."""
import pytest

from mmcurate.annotate.rewrite import Rewrites, with_rewrites

ITEMS = "sample_id string, position int, modality string, text_content string, image_id string"


def test_rewrites_are_deterministic_with_provenance_and_both_versions_queryable(spark, tiny_models):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    items = spark.createDataFrame([
        ("a", 0, "text", "the cat and the dog", None), ("a", 1, "image", None, "img"),
        ("b", 0, "text", "the cat and the dog", None), ("b", 1, "text", "  ", None),
    ], ITEMS)
    stage = Rewrites(model_path=tiny_models["gpt2"], device="cpu", prompt="Rewrite: {text} =>", max_new_tokens=5)
    first = {(r.sample_id, r.position): r for r in items.transform(stage).collect()}
    again = {(r.sample_id, r.position): r.rewritten_text for r in items.transform(stage).collect()}
    assert set(first) == {("a", 0), ("b", 0), ("b", 1)}
    assert again == {k: r.rewritten_text for k, r in first.items()}  # temperature 0: greedy, same every run

    model = AutoModelForCausalLM.from_pretrained(tiny_models["gpt2"]).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_models["gpt2"])
    ids = tokenizer("Rewrite: the cat and the dog =>", return_tensors="pt")
    out = model.generate(**ids, max_new_tokens=5, min_new_tokens=1, do_sample=False, pad_token_id=tokenizer.eos_token_id)
    expected = tokenizer.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True).strip()
    row = first[("a", 0)]
    assert row.rewritten_text == expected and row.new_tokens <= 5
    assert (row.model, row.prompt_hash) == ("gpt2", stage.prompt_hash) and row.original_hash == first[("b", 0)].original_hash
    assert (first[("b", 1)].rewritten_text, first[("b", 1)].error) == (None, "too_short")

    rewritten = {(r.sample_id, r.position): r for r in with_rewrites(items, items.transform(stage)).collect()}
    swapped = rewritten[("a", 0)]
    assert expected and (swapped.text_content, swapped.original_text, swapped.rewrite_model) == (
        expected, "the cat and the dog", "gpt2")
    assert rewritten[("b", 1)].text_content == "  " and rewritten[("b", 1)].original_text is None
    assert len(rewritten) == 4


def test_a_prompt_without_the_text_slot_is_refused(tiny_models):
    with pytest.raises(ValueError, match=r"\{text\}"):
        Rewrites(model_path=tiny_models["gpt2"], prompt="Summarise this.")
