"""Embedding stages on tiny real architectures: equal to a direct torch computation, null + error on bad input."""
import io

import numpy as np
import pytest
import torch
from PIL import Image

from mmcurate.annotate.embeddings import ImageEmbeddings, TextEmbeddings
from mmcurate.images import sha256_hex

ITEMS = "sample_id string, position int, modality string, text_content string, image_id string"


def unit(t):
    return torch.nn.functional.normalize(t.float(), dim=-1).numpy()


@pytest.fixture(scope="module")
def images(spark, photo_jpg, truncated_jpg, solid_png):
    rows = [("photo", photo_jpg), ("photo_again", photo_jpg), ("png", solid_png(40, 24)),
            ("truncated", truncated_jpg), ("empty", b""), ("missing", None), ("noise", b"not an image at all")]
    return spark.createDataFrame(rows, "image_id string, binary_content binary")


def test_open_clip_image_embeddings_equal_a_direct_forward_pass(images, tiny_models, photo_jpg, solid_png):
    import open_clip

    out = {r.image_id: r for r in images.transform(ImageEmbeddings(model_path=tiny_models["clip"], device="cpu",
                                                                   batch_size=2, decode_threads=2)).collect()}
    model, _, preprocess = open_clip.create_model_and_transforms("local-dir:" + tiny_models["clip"])
    model.eval()
    with torch.no_grad():
        for image_id, data in (("photo", photo_jpg), ("png", solid_png(40, 24))):
            pixels = preprocess(Image.open(io.BytesIO(data)).convert("RGB")).unsqueeze(0)
            expected = unit(model.encode_image(pixels))[0]
            np.testing.assert_allclose(out[image_id].embedding, expected, atol=1e-5)
            assert out[image_id].model == "clip" and out[image_id].error is None
    # identical images, the same vector (to float rounding: the two may share a batch or not, and CPU kernels
    # sum in a different order for another batch shape)
    np.testing.assert_allclose(out["photo"].embedding, out["photo_again"].embedding, atol=1e-6)
    assert {k: (r.embedding, r.error) for k, r in out.items() if r.error} == {
        "truncated": (None, "truncated"), "empty": (None, "empty"), "missing": (None, "empty"),
        "noise": (None, "not_an_image")}


def test_text_embeddings_embed_each_distinct_stripped_text_once(spark, tiny_models):
    import open_clip

    items = spark.createDataFrame([
        ("a", 0, "text", "  A river city at night ", None), ("a", 1, "image", None, "x"),
        ("b", 0, "text", "  A river city at night ", None), ("b", 1, "text", "   ", None),
        ("c", 0, "text", "Another paragraph.", None), ("c", -1, "metadata", None, None),
    ], ITEMS)
    out = {(r.sample_id, r.position): r for r in items.transform(
        TextEmbeddings(model_path=tiny_models["clip"], device="cpu")).collect()}
    assert set(out) == {("a", 0), ("b", 0), ("b", 1), ("c", 0)}  # text items only
    model = open_clip.create_model("local-dir:" + tiny_models["clip"]).eval()
    tokenizer = open_clip.get_tokenizer("local-dir:" + tiny_models["clip"])
    with torch.no_grad():
        expected = unit(model.encode_text(tokenizer(["A river city at night", "Another paragraph."])))
    np.testing.assert_allclose(out[("a", 0)].embedding, expected[0], atol=1e-5)
    np.testing.assert_allclose(out[("c", 0)].embedding, expected[1], atol=1e-5)
    assert out[("a", 0)].text_hash == out[("b", 0)].text_hash and out[("a", 0)].embedding == out[("b", 0)].embedding
    assert (out[("b", 1)].embedding, out[("b", 1)].error) == (None, "empty")


def test_transformers_backends_dinov2_images_and_sentence_transformers_texts(spark, tiny_models, photo_jpg):
    from transformers import AutoImageProcessor, AutoModel, AutoTokenizer

    images = spark.createDataFrame([(sha256_hex(photo_jpg), photo_jpg)], "image_id string, binary_content binary")
    [row] = images.transform(ImageEmbeddings(model_path=tiny_models["dinov2"], backend="transformers",
                                             device="cpu")).collect()
    dino = AutoModel.from_pretrained(tiny_models["dinov2"]).eval()
    pixels = AutoImageProcessor.from_pretrained(tiny_models["dinov2"])(
        images=Image.open(io.BytesIO(photo_jpg)).convert("RGB"), return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        np.testing.assert_allclose(row.embedding, unit(dino(pixel_values=pixels).pooler_output)[0], atol=1e-5)

    texts = spark.createDataFrame([("a", 0, "text", "the cat and the dog", None),
                                   ("a", 1, "text", "a short one", None)], ITEMS)
    rows = texts.transform(TextEmbeddings(model_path=tiny_models["sentence_bert"], backend="transformers",
                                          device="cpu")).orderBy("position").collect()
    bert = AutoModel.from_pretrained(tiny_models["sentence_bert"]).eval()
    tokens = AutoTokenizer.from_pretrained(tiny_models["sentence_bert"])(
        ["the cat and the dog", "a short one"], padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = bert(**tokens).last_hidden_state
    mask = tokens["attention_mask"].unsqueeze(-1).float()
    expected = unit((hidden * mask).sum(1) / mask.sum(1))  # sentence-transformers mean pooling
    for row, vector in zip(rows, expected):
        np.testing.assert_allclose(row.embedding, vector, atol=1e-5)


def test_a_missing_model_is_a_clear_error_naming_the_path(spark, tmp_path):
    images = spark.createDataFrame([("x", b"123")], "image_id string, binary_content binary")
    missing = str(tmp_path / "no-such-model")
    with pytest.raises(Exception, match="model not found at .*no-such-model"):
        images.transform(ImageEmbeddings(model_path=missing, device="cpu")).collect()
    with pytest.raises(ValueError, match="backend"):
        ImageEmbeddings(model_path=missing, backend="onnx")


def test_transformers_clip_gives_image_and_text_embeddings_as_get_features_does(spark, tmp_path, photo_jpg):
    """The CLIPModel family NeMo Curator's CLIP filter loads, from a save_pretrained directory."""
    from transformers import AutoModel, AutoProcessor, AutoTokenizer

    from mmcurate.models.tiny import save_hf_clip

    path = save_hf_clip(str(tmp_path / "hf_clip"))
    images = spark.createDataFrame([("p", photo_jpg)], "image_id string, binary_content binary")
    [image] = images.transform(ImageEmbeddings(model_path=path, backend="transformers", device="cpu")).collect()
    texts = spark.createDataFrame([("a", 0, "text", " the river city ", None)], ITEMS)
    [text] = texts.transform(TextEmbeddings(model_path=path, backend="transformers", device="cpu")).collect()
    model = AutoModel.from_pretrained(path).eval()
    processor = AutoProcessor.from_pretrained(path)
    pixels = processor.image_processor(images=Image.open(io.BytesIO(photo_jpg)).convert("RGB"),
                                       return_tensors="pt")["pixel_values"]
    tokens = AutoTokenizer.from_pretrained(path)(["the river city"], padding=True, return_tensors="pt")

    def features(out):
        return out if isinstance(out, torch.Tensor) else out.pooler_output

    with torch.no_grad():
        np.testing.assert_allclose(image.embedding, unit(features(model.get_image_features(pixel_values=pixels)))[0],
                                   atol=1e-5)
        np.testing.assert_allclose(text.embedding, unit(features(model.get_text_features(**tokens)))[0], atol=1e-5)
