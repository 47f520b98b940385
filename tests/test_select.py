"""Recipes: predicate validation, table planning, NeMo's item-drop semantics, kept counts, the ledger and its invariants."""
from pathlib import Path

import pytest
from chispa import assert_df_equality

from mmcurate.annotate import STAGES
from mmcurate.annotate.text_scores import SampleCounts
from mmcurate.annotate.text_signals import OBELICS_DOCUMENT, OBELICS_PARAGRAPH
from mmcurate.images import sha256_hex
from mmcurate.select import DROPS, Recipe, RecipeError, Rule, SignalTable, packaged_recipes

REPO = Path(__file__).resolve().parents[1]
ITEMS = "sample_id string, position int, modality string, text_content string, image_id string, image_url string"
PARAGRAPHS = [
    "OpenCV can read an image from a file, show it in a window and write it back to the disk. "
    "In this tutorial we load a photograph of a baboon and look at the values of its pixels.",
    "Before we detect the edges, we smooth the picture with a small Gaussian kernel. This removes "
    "most of the noise and keeps the strong transitions that the detector is looking for.",
    "The result is shown next to the original, so that you can compare them and choose the "
    "parameters that work best for your own images.",
]
NEMO_RULES = ("decodable", "blur", "qrcode")


@pytest.fixture(scope="module")
def blobs(photo_jpg, truncated_jpg, solid_png, qr_png) -> dict[str, bytes]:
    return {"photo": photo_jpg, "solid": solid_png(200, 200), "qr": qr_png, "truncated": truncated_jpg}


@pytest.fixture(scope="module")
def corpus(spark, blobs):
    """Items and images covering every path: NeMo's oracle document, QR, undecodable, URL-only, text-only, invalid rows."""
    photo, solid, qr, broken = (sha256_hex(blobs[k]) for k in ("photo", "solid", "qr", "truncated"))
    p0, p1, p2 = PARAGRAPHS
    rows = [
        ("doc", -1, "metadata", None, None, None),  # NeMo oracle: [meta, text@0, img@1, text@2, img@3, text@4]
        ("doc", 0, "text", p0, None, None),
        ("doc", 1, "image", None, photo, None),
        ("doc", 2, "text", p1, None, None),
        ("doc", 3, "image", None, solid, None),
        ("doc", 4, "text", p2, None, None),
        ("qr", 0, "text", p0, None, None),
        ("qr", 1, "image", None, qr, None),
        ("qr", 2, "image", None, photo, None),  # the same image in a second document
        ("broken", -1, "metadata", None, None, None),
        ("broken", 0, "image", None, broken, None),
        ("url_only", 0, "text", p1, None, None),
        ("url_only", 1, "image", None, None, "https://example.com/lost.jpg"),
        ("text_only", -1, "metadata", None, None, None),
        ("text_only", 0, "text", p0, None, None),
        ("text_only", 1, "text", p2, None, None),
        ("invalid", -1, "metadata", None, None, None),
        ("invalid", 0, "text", p2, None, None),
        ("invalid", 1, "audio", None, None, None),
        ("invalid", 2, "metadata", None, None, None),
    ]
    items = spark.createDataFrame(rows, ITEMS)
    images = spark.createDataFrame([(sha256_hex(b), b) for b in blobs.values()], "image_id string, binary_content binary")
    inputs = {"items": items, "images": images}
    tables = []
    for name, cls in STAGES.items():  # the catalogue lists a stage's input table before the stage
        if cls.needs_parameters() or not {cls.input, *cls.joins} <= set(inputs):  # model stages: tests/models
            continue
        table = SignalTable(name, cls.key, inputs[cls.input].transform(cls()).cache())
        inputs[name] = table.df
        tables.append(table)
    yield {"items": items, "images": images, "tables": tables, **{t.name: t.df for t in tables}}
    for table in tables:
        table.df.unpersist()


def image_recipe(*names: str, **predicates: str) -> Recipe:
    """nemo_default's image rules, picked by name and order, plus extra image rules given as name=predicate."""
    nemo = {r.name: r for r in Recipe.from_yaml("nemo_default").rules}
    extra = tuple(Rule(name, "image", predicate) for name, predicate in predicates.items())
    return Recipe("images", "test", tuple(nemo[n] for n in names) + extra)


def apply(recipe: Recipe, corpus):
    return recipe.apply(corpus["items"], corpus["tables"]).persist()


def only(corpus, *names: str) -> list[SignalTable]:
    return [t for t in corpus["tables"] if t.name in names]


@pytest.fixture(scope="module")
def image_rules(corpus):
    """nemo_default's image rules applied to the corpus, persisted for the tests that read it."""
    selection = apply(image_recipe(*NEMO_RULES), corpus)
    yield selection
    selection.unpersist()


def layout(df, sample_id: str) -> list[tuple]:
    return [(r.position, r.modality) for r in df.where(f"sample_id = '{sample_id}'").orderBy("position").collect()]


def ledger(selection) -> dict[tuple, tuple]:
    return {(r.sample_id, r.position): (r.rule, r.reason) for r in selection.drops.collect()}


def check_invariants(selection, n_items: int) -> list:
    """input = kept + dropped per rule and in total; the ledger agrees with the summary rule by rule."""
    summary = selection.summary.orderBy("order").collect()
    total = summary[-1]
    assert total.rule == "total" and total.evaluated == n_items
    assert (total.kept, total.dropped) == (selection.curated.count(), selection.drops.count())
    assert total.kept + total.dropped == n_items
    by_rule = {r.rule: r["count"] for r in selection.drops.groupBy("rule").count().collect()}
    reached = n_items
    for row in summary[:-1]:
        assert row.evaluated == row.kept + row.dropped, row
        assert row.dropped == by_rule.get(row.rule, 0), row
        assert row.failed >= row.dropped, row
        reached -= row.dropped
    assert reached == total.kept
    return summary


# --- recipes and their validation -------------------------------------------------------------

def test_packaged_recipes_load_with_a_source_for_every_rule():
    assert packaged_recipes() == ["c4", "clip_alignment", "dedup_exact", "fineweb", "gopher", "mmc4", "nemo_default", "obelics", "web_images"]
    nemo = Recipe.from_yaml("nemo_default")
    assert [(r.name, r.level, r.predicate) for r in nemo.rules] == [
        ("decodable", "image", "decode_ok"),
        ("blur", "image", "sharpness >= 100"),
        ("qrcode", "image", "qr_area_ratio < 0.05"),
        ("image_text_ratio", "sample", "kept_image_text_ratio BETWEEN 0.001 AND 0.1"),
    ]
    obelics = Recipe.from_yaml("obelics")
    assert {r.level for r in obelics.rules} == {"image", "text", "sample"}
    for rule in (r for name in packaged_recipes() for r in Recipe.from_yaml(name).rules):
        assert rule.description and rule.source


def test_obelics_recipe_uses_the_obelics_thresholds():
    rules = Recipe.from_yaml("obelics").rules
    for level, thresholds in (("text", OBELICS_PARAGRAPH), ("sample", OBELICS_DOCUMENT)):
        predicates = " ".join(r.predicate for r in rules if r.level == level)
        for signal, bounds in thresholds.items():
            assert signal in predicates, signal
            for bound in filter(None, bounds):
                assert f"{bound:g}" in predicates, (signal, bound)


def test_recipe_from_a_yaml_path(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text('name: mine\nversion: "2024.1"\nrules:\n  - {name: sharp, level: image, predicate: sharpness > 50}\n')
    recipe = Recipe.from_yaml(path)
    assert (recipe.name, recipe.version, recipe.rules[0].predicate) == ("mine", "2024.1", "sharpness > 50")


@pytest.mark.parametrize(
    "text, message",
    [
        ("name: x\nversion: 1\nrules: []\n", "version must be a non-empty string"),
        ('name: x\nversion: "1"\nrules: []\nfilters: []\n', "unknown keys \\['filters'\\]"),
        ('name: x\nversion: "1"\nrules:\n  - {name: a, level: pixel, predicate: "true"}\n', "level must be one of"),
        ('name: x\nversion: "1"\nrules:\n  - {name: a, level: image}\n', "name, level and predicate are required"),
        ('name: x\nversion: "1"\nrules:\n  - {name: a, level: image, predicate: "true", why: x}\n', "unknown keys \\['why'\\]"),
        ('name: x\nversion: "1"\nrules:\n  - {name: a, level: image, predicate: "true"}\n'
         '  - {name: a, level: sample, predicate: "true"}\n', "repeated: \\['a'\\]"),
        ('name: x\nversion: "1"\nrules:\n  - {name: total, level: sample, predicate: "true"}\n', "must be an identifier"),
    ],
)
def test_malformed_recipes_are_refused(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(RecipeError, match=message):
        Recipe.from_yaml(path)


def test_unknown_recipe_name_lists_the_packaged_ones():
    with pytest.raises(RecipeError, match="packaged: \\['c4', 'clip_alignment', 'dedup_exact', 'fineweb', 'gopher', 'mmc4', 'nemo_default', 'obelics', 'web_images'\\]"):
        Recipe.from_yaml("no_such_recipe")


@pytest.mark.parametrize(
    "level, predicate, message",
    [
        ("image", "sharpness", "is double, not boolean"),
        ("image", "sharpnes >= 100", "UNRESOLVED_COLUMN"),
        ("image", "1=1; DROP TABLE x", "subqueries are not allowed"),
        ("image", "1=1; DROP x", "PARSE_SYNTAX_ERROR"),
        ("image", "max(sharpness) > 100", "INVALID_WHERE_CONDITION"),
        ("image", "row_number() OVER (ORDER BY sharpness) = 1", "WINDOW_FUNCTION_NOT_ALLOWED"),
        ("image", "sharpness > (SELECT max(n_images) FROM sample_scores)", "subqueries are not allowed"),
        ("image", "sharpness > (SELECT 100)", "subqueries are not allowed"),
        ("image", "EXISTS (VALUES 1)", "subqueries are not allowed"),
        ("image", "rand() < 0.5", "rand\\(\\) is not allowed"),
        ("image", "reflect('java.lang.System', 'exit', 0) IS NULL", "reflect\\(\\) is not allowed"),
        ("sample", "modality = 'text'", "UNRESOLVED_COLUMN"),  # sample rules see sample-keyed tables only
        ("text", "word_count >= 4", "column of table 'paragraph_scores', which is missing: run the annotate stage "
                                    "'paragraph_scores' first"),
        ("sample", "lang = 'en'", "table 'document_scores', which is missing"),
    ],
)
def test_invalid_predicates_name_the_rule(spark, corpus, level, predicate, message):
    recipe = Recipe("bad", "1", (Rule("fine", "image", "decode_ok"), Rule("culprit", level, predicate)))
    with pytest.raises(RecipeError, match=f"rule 'culprit'.*{message}"):
        recipe.validate(corpus["items"], only(corpus, "image_scores", "sample_counts"))


def test_invalid_details_are_refused(corpus):
    for detail, message in (("rand()", "rand\\(\\) is not allowed"), ("nope", "UNRESOLVED_COLUMN"),
                            ("max(sharpness)", "INVALID_WHERE_CONDITION")):
        recipe = Recipe("bad", "1", (Rule("culprit", "image", "decode_ok", detail=detail),))
        with pytest.raises(RecipeError, match=f"rule 'culprit'.*detail.*{message}"):
            recipe.validate(corpus["items"], only(corpus, "image_scores"))


def test_a_column_in_two_tables_is_an_error_naming_both(spark, corpus):
    extra = SignalTable("clip_scores", ("image_id",), corpus["image_scores"].select("image_id", "sharpness"))
    recipe = Recipe("two", "1", (Rule("blur", "image", "sharpness >= 100"),))
    with pytest.raises(RecipeError, match="column 'sharpness' is in both image_scores and clip_scores"):
        recipe.validate(corpus["items"], [*only(corpus, "image_scores"), extra])
    # the same column in items and a table is ambiguous too; a column no rule reads is not
    shadow = SignalTable("urls", ("sample_id", "position"), corpus["items"].select("sample_id", "position", "image_url"))
    with pytest.raises(RecipeError, match="column 'image_url' is in both items and urls"):
        Recipe("u", "1", (Rule("url", "image", "image_url IS NULL"),)).validate(corpus["items"], [shadow])
    recipe.validate(corpus["items"], [*only(corpus, "image_scores"), shadow])


def test_only_the_tables_a_recipe_reads_are_joined(corpus):
    nemo = Recipe.from_yaml("nemo_default")
    plan = nemo.plan(corpus["items"], corpus["tables"])
    assert {level: [(t.name, cols) for t, cols in tables] for level, tables in plan.items()} == {
        "image": [("image_scores", ["decode_ok", "sharpness"]), ("image_qr", ["qr_area_ratio"])], "text": [],
        "sample": []}
    obelics = Recipe.from_yaml("obelics").plan(corpus["items"], corpus["tables"])
    assert [t.name for t, _ in obelics["text"]] == ["paragraph_scores"]
    assert [t.name for t, _ in obelics["sample"]] == ["document_scores"]  # document_images reads kept_images


def test_the_recipe_in_the_docs_is_valid(tmp_path, corpus):
    page = (REPO / "docs" / "selection.md").read_text()
    path = tmp_path / "doc.yaml"
    path.write_text(page.split("```yaml\n", 1)[1].split("```", 1)[0])
    Recipe.from_yaml(path).validate(corpus["items"], corpus["tables"])


def test_quoted_words_and_comments_are_not_mistaken_for_sql(corpus):
    rule = Rule("named", "image", "image_url IS NULL OR image_url != 'select * from values' -- rand() table")
    Recipe("ok", "1", (rule,)).validate(corpus["items"], only(corpus, "image_scores"))


# --- semantics ---------------------------------------------------------------------------------

def test_nemo_oracle_dropping_the_second_image_renumbers_positions(image_rules):
    selection = image_rules
    assert layout(selection.curated, "doc") == [(-1, "metadata"), (0, "text"), (1, "image"), (2, "text"), (3, "text")]
    kept_texts = [r.text_content for r in selection.curated.where("sample_id = 'doc' AND modality = 'text'")
                  .orderBy("position").collect()]
    assert kept_texts == PARAGRAPHS
    assert {k: v for k, v in ledger(selection).items() if k[0] == "doc"} == {("doc", 3): ("blur", "predicate_false")}


def test_image_drops_keep_the_sample_and_its_text(image_rules):
    drops = ledger(image_rules)
    assert drops[("qr", 1)] == ("qrcode", "predicate_false")
    assert ("qr", 2) not in drops and ("qr", 0) not in drops
    assert drops[("url_only", 1)] == ("decodable", "predicate_null")  # no bytes, no scores: NULL drops
    assert ("url_only", 0) not in drops
    assert drops[("broken", 0)] == ("decodable", "predicate_false")
    assert drops[("broken", -1)] == ("empty_after_filtering", "empty_after_filtering")


def test_text_only_samples_pass_image_rules_untouched(corpus, image_rules):
    curated = image_rules.curated
    original = corpus["items"].where("sample_id = 'text_only'")
    assert_df_equality(curated.where("sample_id = 'text_only'"), original, ignore_row_order=True, ignore_nullable=True)


def test_invalid_items_are_dropped_first(image_rules):
    drops = ledger(image_rules)
    assert drops[("invalid", 1)] == drops[("invalid", 2)] == ("valid_item", "predicate_false")
    assert ("invalid", 0) not in drops


def test_drop_invalid_rows_false_keeps_rows_no_rule_reads(spark, corpus):
    """NeMo's drop_invalid_rows=False: an audio item and a misplaced metadata row stay; image rules still apply."""
    recipe = Recipe.from_dict({"name": "lenient", "version": "1", "drop_invalid_rows": False,
                               "rules": [{"name": "decodable", "level": "image", "predicate": "decode_ok"}]})
    selection = apply(recipe, corpus)
    drops = ledger(selection)
    assert ("invalid", 1) not in drops and ("invalid", 2) not in drops
    assert drops[("broken", 0)][0] == "decodable"
    assert layout(selection.curated, "invalid") == [(-1, "metadata"), (0, "text"), (1, "audio"), (2, "metadata")]
    check_invariants(selection, corpus["items"].count())
    only_rows = Recipe.from_dict({"name": "none", "version": "1", "drop_invalid_rows": False, "rules": []})
    assert apply(only_rows, corpus).curated.count() == corpus["items"].count()
    with pytest.raises(RecipeError, match="drop_invalid_rows"):
        Recipe.from_dict({"name": "x", "version": "1", "drop_invalid_rows": "no", "rules": []})


def test_null_keeps_only_when_the_predicate_says_so(corpus):
    lenient = image_recipe(keep_unscored="coalesce(sharpness >= 100, true)")
    drops = ledger(apply(lenient, corpus))
    assert ("url_only", 1) not in drops and ("broken", 0) not in drops
    assert drops[("doc", 3)] == ("keep_unscored", "predicate_false")


def test_sample_rules_drop_whole_samples_and_name_the_rule(corpus):
    nemo = apply(Recipe.from_yaml("nemo_default"), corpus)
    drops = ledger(nemo)
    text_only = [k for k in drops if k[0] == "text_only"]
    assert sorted(text_only) == [("text_only", -1), ("text_only", 0), ("text_only", 1)]
    assert {drops[k] for k in text_only} == {("image_text_ratio", "predicate_false")}  # ratio 0 < 0.001, as in NeMo
    assert drops[("broken", 0)] == ("decodable", "predicate_false")  # first failing rule in recipe order
    assert drops[("broken", -1)] == ("image_text_ratio", "predicate_false")
    check_invariants(nemo, corpus["items"].count())


def test_ledger_invariants_per_rule_and_in_total(corpus, image_rules):
    selection = image_rules
    summary = check_invariants(selection, corpus["items"].count())
    assert [r.rule for r in summary] == ["valid_item", *NEMO_RULES, "empty_after_filtering", "total"]
    blur = summary[2]
    # 6 image rows; decodable drops the truncated and the URL-only one; blur drops the solid colour, and would
    # also fail the two unscored images whatever the order
    assert (blur.evaluated, blur.dropped, blur.kept, blur.failed) == (4, 1, 3, 3)
    assert [(f.name, f.dataType) for f in selection.drops.schema] == [(f.name, f.dataType) for f in DROPS]
    assert {(r.stage, r.recipe, r.recipe_version) for r in selection.drops.collect()} == {("select", "images", "test")}


def test_rule_order_never_changes_the_kept_set(corpus, image_rules):
    forward = image_rules
    backward = apply(image_recipe(*reversed(NEMO_RULES)), corpus)
    assert_df_equality(forward.curated, backward.curated, ignore_row_order=True)
    assert sorted(ledger(forward)) == sorted(ledger(backward))
    assert ledger(forward)[("url_only", 1)] == ("decodable", "predicate_null")
    assert ledger(backward)[("url_only", 1)] == ("qrcode", "predicate_null")  # the ledger names the first in order


NEMO_RATIO_CASES = [  # NeMo Curator's test_image_to_text_ratio_filter oracles: texts, images, bounds, kept
    ([], 2, (1.5, 2.5), True),
    (["one two three four"], 1, (0.25, 0.25), True),
    (["one two", "three four"], 1, (0.15, 0.25), True),
    (["one two three four five"], 1, (1.0, 2.0), False),
    (["one"], 2, (0.0, 1.0), False),
    (["a b"], 1, (0.4, 0.6), True),
    (["one two three"], 1, (0.4, 0.6), False),
]


def test_image_to_text_ratio_matches_nemo(spark):
    rows, rules = [], []
    for case, (texts, n_images, (lo, hi), _) in enumerate(NEMO_RATIO_CASES):
        sid = f"case{case}"
        rows += [(sid, i, "text", t, None, None) for i, t in enumerate(texts)]
        rows += [(sid, len(texts) + i, "image", None, None, None) for i in range(n_images)]
        # one recipe for all cases: each rule judges its own sample only
        rules.append(Rule(sid, "sample", f"sample_id != '{sid}' OR image_text_ratio BETWEEN {lo} AND {hi}"))
    items = spark.createDataFrame(rows, ITEMS)
    counts = SignalTable("sample_counts", ("sample_id",), items.transform(SampleCounts()))
    selection = Recipe("ratio", "1", tuple(rules)).apply(items, [counts])
    kept = {r.sample_id for r in selection.curated.select("sample_id").distinct().collect()}
    assert kept == {f"case{c}" for c, case in enumerate(NEMO_RATIO_CASES) if case[3]}


def test_metadata_only_sample_disappears_as_orphan(spark):
    items = spark.createDataFrame([("m", -1, "metadata", None, None, None)], ITEMS)
    drops = Recipe("none", "1", ()).apply(items).drops.collect()
    assert [(d.sample_id, d.position, d.rule) for d in drops] == [("m", -1, "empty_after_filtering")]


def test_nan_scores_are_dropped_as_null_not_kept(spark, corpus):
    # Spark orders NaN above every number: unhandled, `sharpness >= 100` would keep a NaN score
    nan_scores = corpus["image_scores"].selectExpr("image_id", "CAST('NaN' AS double) AS sharpness")
    recipe = Recipe("nan", "1", (Rule("blur", "image", "sharpness >= 100"),))
    selection = recipe.apply(corpus["items"], [SignalTable("image_scores", ("image_id",), nan_scores)])
    drops = {(r.sample_id, r.position): r.reason for r in selection.drops.collect()}
    assert drops[("doc", 1)] == "predicate_null"
    assert selection.curated.where("modality = 'image'").count() == 0


# --- sample rules see what the item rules kept: NeMo's stage order in one pass ----------------------

def nemo_sequential(rows, scores: dict, blur=100.0, qr=0.05, ratio=(0.001, 0.1)) -> list[tuple]:
    """NeMo Curator's interleaved filters run one after another, in plain Python: invalid rows out, blur, QR,
    the image-to-text ratio over what is left, orphan metadata out, content positions renumbered."""
    def valid(r):
        return (r.modality == "metadata" and r.position == -1) or (r.modality in ("text", "image") and r.position >= 0)

    def image_passes(r, test):
        s = scores.get(r.image_id)  # no bytes: NeMo's filters drop the row
        return r.modality != "image" or (s is not None and s["decode_ok"] and test(s))

    rows = [r for r in rows if valid(r)]
    rows = [r for r in rows if image_passes(r, lambda s: s["sharpness"] >= blur)]
    rows = [r for r in rows if image_passes(r, lambda s: s["qr_area_ratio"] < qr)]
    samples = {r.sample_id for r in rows}
    images = {s: sum(r.modality == "image" for r in rows if r.sample_id == s) for s in samples}
    words = {s: sum(len(str(r.text_content or "").split()) for r in rows if r.sample_id == s and r.modality == "text")
             for s in samples}
    rows = [r for r in rows if ratio[0] <= images[r.sample_id] / max(words[r.sample_id], 1) <= ratio[1]]
    content = {r.sample_id for r in rows if r.modality != "metadata"}
    rows = sorted((r for r in rows if r.sample_id in content), key=lambda r: (r.sample_id, r.position))
    out, nxt = [], {}
    for r in rows:
        position = -1 if r.modality == "metadata" else nxt.setdefault(r.sample_id, 0)
        if r.modality != "metadata":
            nxt[r.sample_id] += 1
        out.append((r.sample_id, position, r.modality, r.text_content, r.image_id))
    return out


def test_nemo_stage_order_in_one_select(spark, corpus, blobs):
    from mmcurate.annotate.image_signals import image_signals, qr_signals

    photo, solid = sha256_hex(blobs["photo"]), sha256_hex(blobs["solid"])
    long_text, short_text = " ".join(["word"] * 1200), " ".join(["word"] * 20)
    extra = [  # the image-to-text ratio changes sides once blur has dropped the solid images
        ("pruned", 0, "text", long_text, None, None), ("pruned", 1, "image", None, photo, None),
        ("pruned", 2, "image", None, solid, None),  # 2/1200 in range on the input, 1/1200 after blur: dropped
        ("crowded", 0, "text", short_text, None, None), ("crowded", 1, "image", None, photo, None),
        ("crowded", 2, "image", None, solid, None), ("crowded", 3, "image", None, solid, None),  # 3/20 -> 1/20: kept
    ]
    items = corpus["items"].unionByName(spark.createDataFrame(extra, ITEMS))
    scores = {sha256_hex(b): {**image_signals(b), **qr_signals(b)} for b in blobs.values()}
    expected = nemo_sequential(items.collect(), scores)
    assert {e[0] for e in expected} >= {"crowded"} and "pruned" not in {e[0] for e in expected}

    selection = Recipe.from_yaml("nemo_default").apply(items, only(corpus, "image_scores", "image_qr"))
    got = sorted((r.sample_id, r.position, r.modality, r.text_content, r.image_id) for r in selection.curated.collect())
    assert got == expected
    ratio_drops = {(r.sample_id, r.detail) for r in selection.drops.where("rule = 'image_text_ratio'").collect()}
    assert ("pruned", "1 images / 1200 words") in ratio_drops
    assert ("crowded", "1 images / 20 words") not in ratio_drops


def test_details_record_the_failing_value(image_rules):
    details = {(r.sample_id, r.position): (r.rule, r.detail) for r in image_rules.drops.collect()}
    assert details[("doc", 3)] == ("blur", "0.0")  # nemo_default's blur rule records the sharpness
    assert details[("invalid", 1)] == ("valid_item", "audio at position 1")
    assert details[("broken", 0)] == ("decodable", None)  # a rule without a detail expression


def test_a_simple_rule_is_also_a_python_test_of_one_row_with_the_select_s_null_semantics():
    test = Rule("blur", "image", "decode_ok AND sharpness >= 100").row_test(["decode_ok", "sharpness"])
    assert test({"decode_ok": True, "sharpness": 100.0}) and not test({"decode_ok": True, "sharpness": 99.5})
    assert not test({"decode_ok": None, "sharpness": 500.0}) and not test({"decode_ok": True, "sharpness": None})
    assert not test({"decode_ok": True, "sharpness": float("nan")})  # NaN reads as NULL in a select
    assert Rule("q", "image", "NOT flagged").row_test(["flagged"])({"flagged": False})
    assert Rule("q", "image", "x <> -1.5e0").row_test(["x"])({"x": 2})
    for predicate in ("sharpness BETWEEN 1 AND 2", "sharpness * 2 > 3", "sharpness >= width", "decode_ok OR x > 1",
                      "upper(format) = 'JPEG'"):
        assert Rule("r", "image", predicate).row_test(["sharpness", "width", "decode_ok", "x", "format"]) is None
    assert Rule("r", "image", "sharpness >= 100").row_test(["width"]) is None  # a column it may not read


def test_reaching_gives_the_items_an_on_demand_score_is_needed_for(corpus, blobs):
    nemo = Recipe.from_yaml("nemo_default")
    reached = nemo.reaching(corpus["items"], only(corpus, "image_scores"), {"qr_area_ratio"})
    photo, qr = sha256_hex(blobs["photo"]), sha256_hex(blobs["qr"])
    # valid, decodable and sharp: not the solid square, the truncated JPEG or the URL-only image
    assert sorted((r.sample_id, r.position, r.image_id) for r in reached.collect()) == [
        ("doc", 1, photo), ("qr", 1, qr), ("qr", 2, photo)]
    assert nemo.reaching(corpus["items"], corpus["tables"], {"kept_image_text_ratio"}) is None  # a sample rule
    assert nemo.reaching(corpus["items"], corpus["tables"], {"word_count"}) is None  # no rule reads it


def test_an_unscored_on_demand_key_is_not_computed_never_a_null_score(corpus, blobs):
    photo = sha256_hex(blobs["photo"])
    partial = corpus["image_qr"].where(f"image_id = '{photo}'")
    rules = image_recipe(*NEMO_RULES)
    reasons = {}
    for on_demand in (True, False):
        tables = [*only(corpus, "image_scores"), SignalTable("image_qr", ("image_id",), partial, on_demand=on_demand)]
        drops = rules.apply(corpus["items"], tables).drops.where("rule = 'qrcode'")
        reasons[on_demand] = sorted((r.sample_id, r.position, r.reason) for r in drops.collect())
    assert reasons == {True: [("qr", 1, "not_computed")], False: [("qr", 1, "predicate_null")]}
