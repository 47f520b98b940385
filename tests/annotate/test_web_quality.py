"""Gopher, C4 and FineWeb through our stage and packaged recipes give datatrove's keep/drop and reason, document for
document, on real text: MMC4 documents, NLTK inaugural addresses, State of the Union speeches and web text."""
import json
import zipfile

import pytest

from mmcurate.annotate.text_scores import WebQualityScores
from mmcurate.select import Recipe, SignalTable

ITEMS = "sample_id string, position int, modality string, text_content string, image_id string"


def real_documents(shared_data) -> list[tuple[str, str]]:
    docs = []
    for line in (shared_data / "mmc4" / "mmc4_core_ff_shard151_sample.jsonl").read_text().splitlines():
        try:
            record = json.loads(line)
        except ValueError:  # the sample file's few damaged lines
            continue
        docs.append((f"mmc4-{len(docs)}", "\n\n".join(record["text_list"])))
    for corpus in ("inaugural", "state_union", "webtext"):
        with zipfile.ZipFile(shared_data / "text" / "nltk_data" / f"{corpus}.zip") as z:
            for member in sorted(m for m in z.namelist() if m.endswith(".txt") and "README" not in m):
                text = z.read(member).decode("utf-8", "replace")
                if corpus == "webtext":  # chat logs, forum posts, reviews: 400-line pieces as documents
                    lines = text.splitlines()
                    docs += [(f"{member}:{i}", "\n".join(lines[i:i + 400])) for i in range(0, len(lines), 400)]
                else:
                    docs.append((member, text))
    return docs


@pytest.fixture(scope="module")
def documents(spark, shared_data):
    docs = real_documents(shared_data)
    items = spark.createDataFrame([(sid, 0, "text", text, None) for sid, text in docs], ITEMS)
    scores = items.transform(WebQualityScores()).cache()
    return {"texts": dict(docs), "items": items, "scores": scores}


def datatrove_reasons(make_filter, texts: dict) -> dict:
    from datatrove.data import Document

    f = make_filter()
    out = {}
    for sid, text in texts.items():
        result = f.filter(Document(text=text, id=sid))
        out[sid] = None if result is True else result[1]
    return out


@pytest.mark.slow
@pytest.mark.parametrize("recipe, datatrove_filter", [
    ("gopher", "GopherRepetitionFilter+GopherQualityFilter"), ("c4", "C4QualityFilter"), ("fineweb", "FineWebQualityFilter"),
])
def test_each_document_is_kept_or_dropped_for_the_reason_datatrove_gives(documents, recipe, datatrove_filter):
    from datatrove.pipeline import filters

    texts = documents["texts"]
    expected = {sid: None for sid in texts}
    for name in datatrove_filter.split("+"):  # a pipeline: the first filter that drops gives the reason
        reasons = datatrove_reasons(getattr(filters, name), texts)
        expected = {sid: expected[sid] or reasons[sid] for sid in texts}
    selection = Recipe.from_yaml(recipe).apply(
        documents["items"], [SignalTable("web_quality_scores", ("sample_id",), documents["scores"])])
    ours = {sid: None for sid in texts} | {r.sample_id: r.rule for r in selection.drops.collect()}
    differ = {sid: (expected[sid], ours[sid]) for sid in texts if expected[sid] != ours[sid]}
    assert not differ, f"{len(differ)} of {len(texts)} documents differ from datatrove: {differ}"
    dropped = sum(1 for reason in expected.values() if reason)
    assert 0 < dropped < len(texts)  # the corpus exercises both outcomes


def test_paragraph_signals_are_the_document_signals_of_each_text_item(spark):
    from mmcurate.annotate.text_scores import ParagraphWebQualityScores
    from mmcurate.annotate.web_quality import web_quality_signals

    texts = ["Lorem ipsum dolor sit amet, it is. Another one here now.", "Buy now!!!\nBuy now!!!\nBuy now!!!", ""]
    items = spark.createDataFrame([("s", i, "text", t, None) for i, t in enumerate(texts)]
                                  + [("s", 3, "image", None, "img")], ITEMS)
    rows = {r.position: r.asDict() for r in items.transform(ParagraphWebQualityScores()).collect()}
    assert set(rows) == {0, 1, 2}  # text items only
    for position, text in enumerate(texts):
        expected = web_quality_signals(text)
        assert {k: rows[position][k] for k in expected} == pytest.approx(expected)
    assert rows[0]["c4_lorem_ipsum"] and rows[1]["dup_line_frac"] == pytest.approx(2 / 3)


def test_words_are_datatrove_words_on_tricky_text():
    from datatrove.utils.text import split_into_words

    from mmcurate.annotate.web_quality import words

    for text in ("the IS_ALPHA flag is set", "Hello,   world... it's 3.5x (really)!\n\n- a bullet\t#tag …", ""):
        assert words(text) == split_into_words(text)
