"""The text_tokens stage counts what the tokenizer makes of each text; a mix sizes documents with it."""
from pyspark.sql import functions as F

from mmcurate import steps
from mmcurate.annotate.text_tokens import TextTokenCounts
from mmcurate.lakehouse import Lakehouse
from mmcurate.mixing import Mix
from mmcurate.schema import ITEMS


def test_counts_equal_the_tokenizer_and_feed_the_mix(spark, tmp_path, tiny_models):
    from transformers import AutoTokenizer

    texts = ["hello world", "a longer text about curating interleaved documents", "hello world", "x"]
    rows = [(f"s{i}", 0, "text", "text/plain", t, None, None, None, None) for i, t in enumerate(texts)]
    rows.append(("s0", 1, "image", "image/png", None, "nope", None, None, None))
    items = spark.createDataFrame(rows, ITEMS)
    lake = Lakehouse.open(spark, str(tmp_path), backend="embedded")
    lake.write(items, "curated_items")
    lake.write(items, "items")
    lake.write(spark.createDataFrame([], "image_id string, binary_content binary, content_type string, "
                                         "width int, height int, n_bytes bigint"), "images")
    steps.annotate(lake, [TextTokenCounts(model_path=tiny_models["gpt2"])])
    counted = {r.sample_id: r for r in lake.read("text_tokens").collect()}
    reference = AutoTokenizer.from_pretrained(tiny_models["gpt2"])
    assert set(counted) == {"s0", "s1", "s2", "s3"}  # text items only
    for i, text in enumerate(texts):
        assert counted[f"s{i}"].n_tokens == len(reference(text, add_special_tokens=False)["input_ids"])
        assert counted[f"s{i}"].tokenizer == "gpt2"
    mixed = steps.mix(lake, Mix.from_dict({"name": "t", "version": "1", "tokens": {"text": {"table": "text_tokens"}}}))
    sized = {r.sample_id: r.text_tokens for r in mixed.samples.collect()}
    assert sized == {f"s{i}": counted[f"s{i}"].n_tokens for i in range(4)}
    assert mixed.samples.where(F.col("sample_id") == "s0").first().n_images == 1
