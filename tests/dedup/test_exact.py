"""Exact dedup through annotate and select: planted copies are found, text-only samples always survive image dedup."""
import pytest

from mmcurate import steps
from mmcurate.annotate import build_stage
from mmcurate.dedup.exact import DocumentDuplicates, DocumentParagraphDuplicates, ImageCopies, ParagraphDuplicates
from mmcurate.lakehouse import Lakehouse
from mmcurate.select import Recipe, Rule

ITEMS = "sample_id string, position int, modality string, text_content string, image_id string, url string"
BOILERPLATE = "Subscribe to our newsletter   for more tutorials!"
HOT = 300  # documents sharing one image and one boilerplate paragraph: a hot key


def planted(spark):
    """Images x (5 documents), y (2), z (1), hot (HOT); text-only samples, some with identical text; copied documents."""
    rows = []

    def doc(sid, url, *content):
        rows.append((sid, -1, "metadata", None, None, url))
        for i, (kind, value) in enumerate(content):
            rows.append((sid, i, kind, value if kind == "text" else None, value if kind == "image" else None, None))

    for i in range(5):
        doc(f"img{i}", f"https://a.example/{i}", ("text", f"unique intro {i}"), ("image", "x"),
            *([("image", "y")] if i in (1, 3) else []), *([("image", "z")] if i == 0 else []))
    for i in range(HOT):
        doc(f"hot{i:04d}", f"https://b.example/{i}", ("text", f"page {i} about topic {i}"), ("image", "hot"),
            ("text", BOILERPLATE))
    for i in range(40):  # text-only, many identical: never image duplicates
        doc(f"text{i:02d}", f"https://c.example/{i}", ("text", "the same text in every text-only sample"))
    seen = [("text", BOILERPLATE)] + [("text", f"page {i} about topic {i}") for i in range(4)]
    doc("mostly", "https://b.example/m", *seen)  # 5 of 5 paragraphs seen before: share 1.0
    doc("mostly_not", "https://b.example/n", *seen[1:], ("text", "something new"))  # 4 of 5: share 0.8, kept
    doc("copy_a", "https://d.example/a", ("text", "A Whole   Document."), ("text", "Second part."))
    doc("copy_b", "https://d.example/b", ("text", "a whole document."), ("text", "second   PART."))
    doc("copy_c", "https://e.example/c", ("text", "A whole document."), ("text", "Second part."))
    return spark.createDataFrame(rows, ITEMS)


@pytest.fixture(scope="module")
def lake(spark, tmp_path_factory):
    lake = Lakehouse.open(spark, str(tmp_path_factory.mktemp("dedup")), backend="embedded")
    lake.write(planted(spark), "items")
    lake.write(spark.createDataFrame([], "image_id string, binary_content binary"), "images")
    steps.annotate(lake, steps.stages_for("dedup_exact") + [build_stage("sample_image_duplicates")])
    return lake


def test_image_copies_count_documents_and_occurrences(lake):
    copies = {r.image_id: (r.image_documents, r.image_occurrences, r.image_first_sample)
              for r in lake.read("image_copies").collect()}
    assert copies == {"x": (5, 5, "img0"), "y": (2, 2, "img1"), "z": (1, 1, "img0"), "hot": (HOT, HOT, "hot0000")}
    distribution = lake.sql("SELECT image_documents AS k, count(*) AS images FROM image_copies GROUP BY 1 ORDER BY 1")
    assert [tuple(r) for r in distribution.collect()] == [(1, 1), (2, 1), (5, 1), (HOT, 1)]


@pytest.mark.parametrize("level, predicate", [
    ("image", "image_documents <= 1"),
    ("image", "image_first_sample = sample_id"),
    ("sample", "NOT has_duplicate_image"),
])
def test_text_only_samples_survive_every_image_dedup_policy(lake, level, predicate):
    recipe = Recipe("policy", "1", (Rule("policy", level, predicate),))
    selection = steps.select(lake, recipe, curated_table="policy_kept")
    kept = {r.sample_id for r in selection.curated.where("sample_id LIKE 'text%'").select("sample_id").distinct().collect()}
    assert len(kept) == 40
    drops = selection.drops.groupBy("sample_id").count().collect()
    assert not [r for r in drops if r.sample_id.startswith("text")]


def test_keep_one_document_per_duplicate_image(lake):
    recipe = Recipe("one_per_image", "1", (Rule("dup", "sample", "NOT has_duplicate_image", detail="image_duplicate_of"),))
    selection = steps.select(lake, recipe, curated_table="one_per_image")
    dropped = {(r.sample_id, r.detail) for r in selection.drops.where("position = -1").collect()}
    expected = {(f"img{i}", "img0") for i in range(1, 5)} | {(f"hot{i:04d}", "hot0000") for i in range(1, HOT)}
    assert dropped == expected
    assert selection.curated.count() + selection.drops.count() == lake.read("items").count()


def test_exact_recipe_drops_exactly_the_planted_copies_and_retunes_without_recomputing(lake):
    versions = {t: lake.version(t) for t in ("image_copies", "paragraph_duplicates", "document_duplicates")}
    selection = steps.select(lake, "dedup_exact")
    by_rule = {r.rule: r["count"] for r in selection.drops.groupBy("rule").count().collect()}
    # the hot image is in > 10 documents; the boilerplate paragraph repeats in HOT - 1 documents; copy_b and
    # copy_c repeat copy_a (whitespace and case differ), and 39 text-only samples repeat text00
    assert by_rule["frequent_image"] == HOT
    assert by_rule["duplicate_paragraph"] == HOT - 1 + 5 + 4
    assert by_rule["duplicate_document"] == 3 * 2 + 39 * 2  # metadata + texts of each copy
    # hot documents repeat 1 of 2 paragraphs (0.5), mostly_not 4 of 5 (0.8): only `mostly` goes whole
    assert by_rule["mostly_duplicate_paragraphs"] == 1
    assert selection.curated.where("sample_id = 'mostly_not'").count() == 2  # metadata + the new paragraph
    details = {(r.sample_id, r.rule): r.detail for r in selection.drops.where("position = -1").collect()}
    assert details[("copy_b", "duplicate_document")] == "copy_a"
    assert selection.curated.count() + selection.drops.count() == lake.read("items").count()

    looser = Recipe.from_yaml("dedup_exact")
    looser = Recipe("dedup_loose", "1", tuple(
        Rule(r.name, r.level, f"image_documents <= {HOT}") if r.name == "frequent_image" else r for r in looser.rules))
    assert [a.action for a in steps.annotate(lake, steps.stages_for(looser))] == ["up_to_date"] * 4
    again = steps.select(lake, looser)
    assert again.drops.where("rule = 'frequent_image'").count() == 0
    assert {t: lake.version(t) for t in versions} == versions


def test_domain_scope_keeps_copies_on_other_domains(spark):
    items = planted(spark)
    docs = {r.sample_id: r for r in items.transform(DocumentDuplicates(domain_column="url")).collect()}
    assert docs["copy_b"].is_duplicate_document and docs["copy_b"].document_domain == "d.example"
    assert not docs["copy_c"].is_duplicate_document  # same text, but on e.example
    paragraphs = items.transform(ParagraphDuplicates(domain_column="url"))
    assert paragraphs.where("is_duplicate_paragraph AND sample_id LIKE 'hot%'").count() == HOT - 1  # one domain
    shares = {r.sample_id: r.duplicate_paragraph_share for r in items.transform(DocumentParagraphDuplicates()).collect()}
    assert (shares["mostly"], shares["mostly_not"], shares["hot0000"], shares["hot0001"]) == (1.0, 0.8, 0.0, 0.5)
    assert shares["img0"] == 0.0 and len(shares) == items.select("sample_id").distinct().count()
    assert ImageCopies.incremental is False
