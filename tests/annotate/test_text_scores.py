"""SampleCounts, DocumentScores and ParagraphScores: NeMo's word and ratio counts, OBELICS document text, per-paragraph signals."""
import re
import sys

import pytest
from pyspark.sql import functions as F

from mmcurate.annotate import text_scores
from mmcurate.annotate.text_scores import TEXT_SIGNALS, DocumentScores, ParagraphScores, SampleCounts, whitespace_words
from mmcurate.annotate.text_signals import OBELICS_PUNCTUATION_MIN_WORDS, text_signals
from mmcurate.schema import SchemaError

ITEMS = "sample_id string, position int, modality string, text_content string"
INTRO = "The tutorial shows how to read an image from a file and display it in a window."
MIDDLE = "Then we blur the image with a Gaussian kernel, which removes most of the noise."
END = "That is all."


@pytest.fixture(scope="module")
def items(spark):
    rows = [
        ("doc", -1, "metadata", '{"url": "https://example.com"}'),
        ("doc", 4, "text", END),  # out of order on purpose: the document text follows position
        ("doc", 0, "text", INTRO),
        ("doc", 1, "image", None),
        ("doc", 2, "text", MIDDLE),
        ("doc", 3, "image", None),
        ("spaces", 0, "text", "  one   two three  "),
        ("images_only", 0, "image", None),
        ("images_only", 1, "image", None),
        ("null_text", 0, "text", None),
        ("null_text", 1, "image", None),
        ("meta_only", -1, "metadata", "{}"),
    ]
    return spark.createDataFrame(rows, ITEMS)


@pytest.fixture(scope="module")
def sample_counts(items):
    return {r.sample_id: r for r in items.transform(SampleCounts()).collect()}


def test_counts_follow_nemo_image_to_text_ratio(sample_counts):
    doc_words = len(INTRO.split()) + len(MIDDLE.split()) + len(END.split())
    expected = {  # (n_images, n_texts, n_words, image_text_ratio, text_only)
        "doc": (2, 3, doc_words, 2 / doc_words, False),
        "spaces": (0, 1, 3, 0.0, True),  # NeMo oracle: "  one   two three  " -> 3 words
        "images_only": (2, 0, 0, 2.0, False),  # NeMo oracle: no text -> denominator 1
        "null_text": (1, 1, 0, 1.0, False),  # NeMo oracle: None -> 0 words
        "meta_only": (0, 0, 0, 0.0, True),  # metadata rows count in neither
    }
    got = {sid: (r.n_images, r.n_texts, r.n_words, r.image_text_ratio, r.text_only) for sid, r in sample_counts.items()}
    assert got == expected


def test_document_signals_score_the_texts_in_position_order(items):
    sample_scores = {r.sample_id: r for r in items.transform(DocumentScores()).collect()}
    assert set(sample_scores) == {"doc", "spaces", "images_only", "null_text", "meta_only"}
    document = "\n\n".join([INTRO, MIDDLE, END])
    row = sample_scores["doc"].asDict()
    assert {name: row[name] for name in TEXT_SIGNALS.fieldNames()} == text_signals(document)
    assert row["lang"] == "en"
    empty = sample_scores["images_only"].asDict()
    assert {name: empty[name] for name in TEXT_SIGNALS.fieldNames()} == text_signals("")


def test_paragraph_scores_one_row_per_text_item(items):
    rows = items.transform(ParagraphScores()).collect()
    assert sorted((r.sample_id, r.position) for r in rows) == [
        ("doc", 0), ("doc", 2), ("doc", 4), ("null_text", 0), ("spaces", 0)
    ]
    texts = {("doc", 0): INTRO, ("doc", 2): MIDDLE, ("doc", 4): END, ("null_text", 0): "", ("spaces", 0): "  one   two three  "}
    for r in rows:
        expected = text_signals(texts[(r.sample_id, r.position)], punctuation_min_words=OBELICS_PUNCTUATION_MIN_WORDS)
        assert {name: r[name] for name in TEXT_SIGNALS.fieldNames()} == expected
    short = next(r for r in rows if (r.sample_id, r.position) == ("doc", 4))
    assert short.punctuation_ratio == 1.0  # under 12 tokens: OBELICS does not judge punctuation


def test_whitespace_words_is_python_split(spark):
    texts = ["", "  one   two three  ", "a\u00a0b\u2009c\u3000d", "x\x1cy\x1fz", "zero\u200bwidth", "tab\tnew\nline", None]
    df = spark.createDataFrame([(t,) for t in texts], "text string")
    got = [r.n for r in df.select(whitespace_words(F.col("text")).alias("n")).collect()]
    assert got == [len((t or "").split()) for t in texts]


def test_whitespace_class_is_exactly_str_isspace():
    ranges = re.findall(r"\\x\{([0-9a-f]+)\}(?:-\\x\{([0-9a-f]+)\})?", text_scores._PY_WHITESPACE)
    listed = {c for lo, hi in ranges for c in range(int(lo, 16), int(hi or lo, 16) + 1)}
    assert listed == {c for c in range(sys.maxunicode + 1) if chr(c).isspace()}


def test_stages_check_their_inputs(spark):
    no_text = spark.createDataFrame([("a", 0, "text")], "sample_id string, position int, modality string")
    for stage in (SampleCounts(), DocumentScores(), ParagraphScores()):
        with pytest.raises(SchemaError, match="text_content"):
            stage(no_text)
