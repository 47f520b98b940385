"""Mixing on a planted lakehouse of 12,000 samples: shares, deciles, clusters, repeats, budgets, sequence limits."""
import math

import pytest
from pyspark.sql import functions as F

from mmcurate import steps
from mmcurate.lakehouse import Lakehouse
from mmcurate.mixing import Mix, MixError
from mmcurate.mixing.plan import mixed_items
from mmcurate.mixing.tokens import ImageTokens
from mmcurate.schema import IMAGES, ITEMS

N = 12_000
SIZES = [(640, 480), (1000, 500), (300, 900), (2048, 2048), (100, 100)]


def kind_of(i: int) -> str:
    return ("text_only", "caption", "interleaved", "interleaved")[i % 4]


def text_of(i: int, position: int) -> str:
    return "x" * (40 + (i % 7) * 10 + position)


@pytest.fixture(scope="module")
def lake(spark, tmp_path_factory):
    """12,000 samples (1/4 text-only, 1/4 caption, 1/2 interleaved) from three sources, with planted deciles,
    clusters and quality scores as annotate stages would write them."""
    lake = Lakehouse.open(spark, str(tmp_path_factory.mktemp("mixlake")), backend="embedded")
    items = spark.range(N).select(F.col("id").cast("int").alias("i")).select(
        "i", F.format_string("doc%05d", "i").alias("sample_id"),
        F.format_string('{"path": "/data/src%d/part.tar", "member": "doc%05d.json", "byte_offset": 0, '
                        '"byte_size": 1}', F.col("i") % 3, "i").alias("source_ref"))
    layout = F.expr("""CASE i % 4 WHEN 0 THEN array('text', 'text') WHEN 1 THEN array('image', 'text')
                       ELSE array('text', 'image', 'text', 'image') END""")
    rows = items.select("*", F.posexplode(layout).alias("position", "modality")).select(
        "sample_id", F.col("position").cast("int"), "modality",
        F.when(F.col("modality") == "text", "text/plain").otherwise("image/png").alias("content_type"),
        F.when(F.col("modality") == "text", F.repeat(F.lit("x"), 40 + (F.col("i") % 7) * 10 + F.col("position")))
        .alias("text_content"),
        F.when(F.col("modality") == "image", F.concat(F.lit("img"), ((F.col("i") + F.col("position")) % 5)
                                                      .cast("string"))).alias("image_id"),
        F.lit(None).cast("string").alias("image_url"), "source_ref")
    meta = items.select("sample_id", F.lit(-1).alias("position"), F.lit("metadata").alias("modality"),
                        F.lit("application/json").alias("content_type"), F.lit(None).cast("string").alias("text_content"),
                        F.lit(None).cast("string").alias("image_id"), F.lit(None).cast("string").alias("image_url"),
                        "source_ref")
    both = meta.unionByName(rows).withColumn("materialize_error", F.lit(None).cast("string"))
    lake.write(both.select(*[F.col(f.name).cast(f.dataType) for f in ITEMS.fields]), "curated_items")
    images = [(f"img{k}", b"", "image/png", w, h, 0) for k, (w, h) in enumerate(SIZES)]
    lake.write(spark.createDataFrame(images, IMAGES), "images")
    annotated = {"step": "annotate", "key": ["sample_id"]}
    signals = items.select("sample_id", (F.col("i") % 10 + 1).alias("perplexity_decile"),
                           (F.col("i") % 5).alias("cluster"), ((F.col("i") % 100) / 100.0).alias("quality_score"))
    lake.write(signals.select("sample_id", "perplexity_decile"), "document_perplexity", commit_info=annotated)
    lake.write(signals.select("sample_id", "cluster"), "clusters", commit_info=annotated)
    lake.write(signals.select("sample_id", "quality_score"), "quality_scores", commit_info=annotated)
    return lake


def run(lake, **spec):
    mixed = steps.mix(lake, Mix.from_dict({"name": "m", "version": "1", "seed": 7, **spec}))
    return mixed, {r["sample_id"]: r for r in mixed.samples.collect()}


def test_kind_shares_hold_exactly_by_samples(lake):
    mixed, rows = run(lake, kinds={"text_only": 1, "multimodal": 3})
    after = {r.bucket: r.samples_after for r in mixed.report.where("dimension = 'kind'").collect()}
    text, multimodal = after["text_only"], after["caption"] + after["interleaved"]
    assert multimodal == 9000 and text == 3000  # the largest 1:3 mix: every multimodal sample, 3000 of 3000...
    assert abs(text / (text + multimodal) - 0.25) < 0.0025
    assert len(rows) == N and all(r["repeats"] in (0, 1) for r in rows.values())
    assert {r["reason"] for r in rows.values() if r["repeats"] == 0} <= {"not_sampled"}


def test_shares_downsample_the_larger_kind_within_one_percent(lake):
    mixed, rows = run(lake, kinds={"text_only": 1, "interleaved": 1, "caption": 2})
    after = {r.bucket: r.samples_after for r in mixed.report.where("dimension = 'kind'").collect()}
    assert after == {"text_only": 1500, "interleaved": 1500, "caption": 3000}
    again = run(lake, kinds={"text_only": 1, "interleaved": 1, "caption": 2})[1]
    assert {k for k, r in again.items() if r["repeats"]} == {k for k, r in rows.items() if r["repeats"]}
    other = run(lake, kinds={"text_only": 1, "interleaved": 1, "caption": 2}, seed=8)[1]
    assert {k for k, r in other.items() if r["repeats"]} != {k for k, r in rows.items() if r["repeats"]}


def test_token_shares_and_budget(lake):
    mixed, rows = run(lake, kinds={"text_only": 1, "multimodal": 1}, share_by="tokens",
                      tokens={"image": {"scheme": "fixed", "tokens_per_tile": 64}})
    kinds = {r.bucket: r for r in mixed.report.where("dimension = 'kind'").collect()}
    text = kinds["text_only"].text_tokens_after + kinds["text_only"].image_tokens_after
    multi = sum(kinds[k].text_tokens_after + kinds[k].image_tokens_after for k in ("caption", "interleaved"))
    assert abs(text / (text + multi) - 0.5) < 0.01
    budget = 200_000
    capped = run(lake, kinds={"text_only": 1, "multimodal": 1}, share_by="tokens", budget={"tokens": budget},
                 tokens={"image": {"scheme": "fixed", "tokens_per_tile": 64}})[0]
    total = capped.totals["text_tokens_after"] + capped.totals["image_tokens_after"]
    assert abs(total - budget) / budget < 0.01


def test_decile_selection_is_exact_and_weights_repeat(lake):
    mixed, rows = run(lake, deciles={"keep": [2, 3, 4], "weights": {2: 2}})
    for sample_id, r in rows.items():
        decile = int(sample_id[3:]) % 10 + 1
        assert r["decile"] == str(decile)
        assert r["repeats"] == {2: 2, 3: 1, 4: 1}.get(decile, 0)
        assert r["reason"] == (None if decile in (2, 3, 4) else "decile_excluded")
    deciles = {r.bucket: (r.samples_before, r.samples_after) for r in mixed.report.where("dimension = 'decile'").collect()}
    assert deciles["2"] == (1200, 2400) and deciles["5"] == (1200, 0)


def test_cluster_weights_and_cap(lake):
    _, rows = run(lake, clusters={"weights": {0: 0, 1: 2}, "cap": 1000})
    by_cluster = {}
    for r in rows.values():
        by_cluster.setdefault(r["cluster"], []).append(r)
    assert all(r["reason"] == "cluster_weight_zero" for r in by_cluster["0"])
    for cluster in ("1", "2", "3", "4"):
        kept = [r for r in by_cluster[cluster] if r["repeats"]]
        assert len(kept) == 1000 and len(by_cluster[cluster]) - 1000 == sum(
            r["reason"] == "cluster_cap" for r in by_cluster[cluster])
    assert {r["repeats"] for r in by_cluster["1"] if r["repeats"]} == {2}


def test_repeats_from_quality_are_clipped(lake):
    _, rows = run(lake, repeats={"expression": "quality_score * 10", "max": 4})
    for sample_id, r in rows.items():
        q = (int(sample_id[3:]) % 100) / 100
        expected = min(4.0, q * 10)
        assert r["expected"] == pytest.approx(expected)
        assert r["repeats"] in (math.floor(expected), math.floor(expected) + 1)
    total = sum(r["repeats"] for r in rows.values())
    assert total == round(sum(r["expected"] for r in rows.values()))


def test_image_and_text_tokens_equal_hand_counts(lake):
    scheme = {"scheme": "fixed", "tokens_per_tile": 256, "tile_size": 448, "max_tiles": 6, "thumbnail": True}
    _, rows = run(lake, tokens={"image": scheme, "text": {"chars_per_token": 4}})
    # InternVL grids (<= 6 tiles of 448 px), + a thumbnail when there is more than one tile:
    # 640x480 (4:3) -> 3x2, 7 tiles; 1000x500 -> 2x1, 3; 300x900 -> 1x3, 4; 2048x2048 -> 1x1 ties 2x2, and the
    # tie goes to 2x2 (the image has more than half of 4 tiles' pixels), 5; 100x100 -> 1x1 (too small for 2x2)
    per_image = {"img0": 7 * 256, "img1": 3 * 256, "img2": 4 * 256, "img3": 5 * 256, "img4": 256}
    assert {f"img{k}": ImageTokens(**scheme).count(w, h) for k, (w, h) in enumerate(SIZES)} == per_image
    for i in (0, 1, 2, 7):
        r = rows[f"doc{i:05d}"]
        layout = {"text_only": ["text", "text"], "caption": ["image", "text"],
                  "interleaved": ["text", "image", "text", "image"]}[kind_of(i)]
        text = sum(math.ceil(len(text_of(i, p)) / 4) for p, m in enumerate(layout) if m == "text")
        image = sum(per_image[f"img{(i + p) % 5}"] for p, m in enumerate(layout) if m == "image")
        assert (r["text_tokens"], r["image_tokens"], r["kind"]) == (text, image, kind_of(i))


def test_naflex_tokens_follow_the_patch_grid():
    scheme = ImageTokens(scheme="naflex", patch_size=16, max_patches=256)
    assert scheme.count(640, 480) == 18 * 14  # 4:3 at the largest scale whose ceil'd grid fits 256 patches
    assert scheme.count(16, 16) == 256  # a tiny image is scaled up to fill the budget
    assert ImageTokens(scheme="naflex", patch_size=16, max_patches=256, merge=2, extra_tokens=2).count(640, 480) == \
        (18 * 14) // 4 + 2
    assert scheme.count(None, 480) is None


def parts_of(mixed, sample_id):
    rows = mixed.samples.where(F.col("sample_id") == sample_id).collect()
    return sorted(((r.part, r.first_position, r.last_position, r.export_id, r.reason) for r in rows))


def test_sequence_limit_splits_greedily_cuts_oversized_items_and_drops(lake):
    # doc00002: text 60 tokens, image 100, text 62, image 100 (1 char per token, 100 per image)
    tokens = {"image": {"scheme": "fixed", "tokens_per_tile": 100}, "text": {"chars_per_token": 1}}
    split = steps.mix(lake, Mix.from_dict({"name": "s", "version": "1", "tokens": {
        **tokens, "sequence": {"max_tokens": 170, "over": "split"}}}))
    assert parts_of(split, "doc00002") == [(0, 0, 1, "doc00002#0", None), (1, 2, 3, "doc00002#1", None)]
    assert parts_of(split, "doc00001") == [(0, 0, 1, "doc00001", None)]  # 100 + 60: fits, not renamed
    exported, repeats = mixed_items(lake.read("curated_items"), split.samples)
    part = sorted((r.position, r.modality, r.text_content) for r in exported.where("sample_id = 'doc00002#1'").collect())
    assert part == [(-1, "metadata", None), (0, "text", "x" * 62), (1, "image", None)]
    assert repeats.where("sample_id = 'doc00002#1'").first().repeats == 1
    cut = steps.mix(lake, Mix.from_dict({"name": "c", "version": "1", "tokens": {
        **tokens, "sequence": {"max_tokens": 90, "over": "split"}}}))
    assert parts_of(cut, "doc00002") == [(-1, 1, 3, "doc00002#-1", "item_over_sequence_limit"),
                                         (0, 0, 0, "doc00002#0", None), (1, 2, 2, "doc00002#1", None)]
    dropped = steps.mix(lake, Mix.from_dict({"name": "d", "version": "1", "tokens": {
        **tokens, "sequence": {"max_tokens": 150, "over": "drop", "count": "image"}}}))
    assert parts_of(dropped, "doc00002")[0][4] == "over_sequence_limit"   # 200 image tokens
    assert parts_of(dropped, "doc00001")[0][4] is None                    # 100


def test_a_mix_reading_a_missing_table_names_the_stage(lake):
    with pytest.raises(MixError, match="text_tokens"):
        run(lake, tokens={"text": {"table": "text_tokens"}})
    with pytest.raises(MixError, match="unknown keys"):
        Mix.from_dict({"name": "m", "version": "1", "kinds": {"text_only": 1}, "shares": {}})
    with pytest.raises(MixError, match="overlap"):
        Mix.from_dict({"name": "m", "version": "1", "kinds": {"multimodal": 1, "caption": 1}})


def test_packaged_mixes_load():
    from mmcurate.mixing import packaged_mixes

    assert packaged_mixes() == ["balanced", "quality_epochs"]
    assert Mix.from_yaml("balanced").kinds == {"text_only": 1.0, "multimodal": 3.0}
    assert Mix.from_yaml("quality_epochs").dimensions == ["kind", "decile"]


def test_unlisted_kinds_are_excluded_and_counts_add_up(lake):
    mixed, rows = run(lake, kinds={"multimodal": 1}, budget={"samples": 4500})
    reasons = {}
    for r in rows.values():
        reasons[(r["kind"], r["reason"])] = reasons.get((r["kind"], r["reason"]), 0) + 1
    assert reasons[("text_only", "kind_excluded")] == 3000
    assert sum(r["repeats"] for r in rows.values()) == 4500  # the sample budget, drawn exactly
    assert sum(reasons.values()) == N and mixed.totals["samples_before"] == N
