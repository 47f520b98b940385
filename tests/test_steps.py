"""Steps over a real lakehouse: annotate only what is new, select that only reads tables, a ledger per recipe."""
import json
import os
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from pyspark import cloudpickle

from mmcurate import steps
from mmcurate.annotate.image_scores import ImageQR, ImageScores
from mmcurate.cli import main
from mmcurate.images import sha256_hex
from mmcurate.lakehouse import Lakehouse
from mmcurate.select import Recipe, RecipeError, Rule

REPO = Path(__file__).resolve().parents[1]
ITEMS = "sample_id string, position int, modality string, text_content string, image_id string, image_url string"
TEXT = ("OpenCV can read an image from a file, show it in a window and write it back to the disk. In this "
        "tutorial we load a photograph of a baboon and look at the values of its pixels.")

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # executors get CountingImageScores by value


class Counting:
    """A stage that appends one line per image it scores to its `log` (executors share the local disk)."""

    def score(self, data) -> dict:
        self.count()
        return super().score(data)

    def score_with_pixels(self, data):  # a fused pass (`image_qr` after `image_scores`) scores here
        self.count()
        return super().score_with_pixels(data)

    def score_pixels(self, data, rgb) -> dict:
        if rgb is None:
            return self.score(data)
        self.count()
        return super().score_pixels(data, rgb)

    def count(self) -> None:
        with open(self.log, "a") as f:
            f.write("scored\n")


@dataclass(frozen=True)
class CountingImageScores(Counting, ImageScores):
    log: str = ""


@dataclass(frozen=True)
class CountingImageQR(Counting, ImageQR):
    log: str = ""


def decoded(log: Path) -> int:
    return len(log.read_text().splitlines()) if log.exists() else 0


def make_lake(spark, root, blobs: dict) -> Lakehouse:
    photo, solid, qr, broken = (sha256_hex(blobs[k]) for k in ("photo", "solid", "qr", "broken"))
    rows = [
        ("doc", -1, "metadata", None, None, None), ("doc", 0, "text", TEXT, None, None),
        ("doc", 1, "image", None, photo, None), ("doc", 2, "text", TEXT, None, None),
        ("doc", 3, "image", None, solid, None),
        ("qr", 0, "text", TEXT, None, None), ("qr", 1, "image", None, qr, None),
        ("broken", 0, "image", None, broken, None), ("text_only", 0, "text", TEXT, None, None),
    ]
    lake = Lakehouse.open(spark, str(root), backend="embedded")
    lake.write(spark.createDataFrame(rows, ITEMS), "items")
    lake.write(spark.createDataFrame([(sha256_hex(b), b) for b in blobs.values()], "image_id string, binary_content binary"),
               "images")
    return lake


@pytest.fixture(scope="module")
def blobs(photo_jpg, truncated_jpg, solid_png, qr_png):
    return {"photo": photo_jpg, "solid": solid_png(200, 200), "qr": qr_png, "broken": truncated_jpg}


def test_annotate_once_then_select_and_retune_without_decoding(spark, tmp_path, blobs, solid_png):
    lake, log = make_lake(spark, tmp_path / "lake", blobs), tmp_path / "decoded.log"
    stage = CountingImageScores(log=str(log))
    with pytest.raises(RecipeError, match="table 'image_scores', which is missing: run the annotate stage 'image_scores'"):
        steps.select(lake, "nemo_default")

    batch_key = "spark.sql.execution.arrow.maxRecordsPerBatch"
    before = spark.conf.get(batch_key)
    [first] = steps.annotate(lake, [stage])
    assert (first.action, first.rows_added, decoded(log)) == ("overwrite", 4, 4)
    assert spark.conf.get(batch_key) == before  # the stage's batch size held for its write only
    info = steps.stage_info(lake, "image_scores")
    assert (info["stage"], info["version"], info["key"], info["input_version"]) == ("image_scores", "2", ["image_id"], 0)
    assert info["params"]["log"] == str(log) and info["fingerprint"] == stage.fingerprint

    steps.annotate(lake, [ImageQR()], recipes=["nemo_default"])
    nemo = steps.select(lake, "nemo_default")
    n_items = lake.read("items").count()
    assert nemo.curated.count() + nemo.drops.count() == n_items
    recipe = Recipe.from_yaml("nemo_default")
    stricter = Recipe("strict", "1", tuple(Rule(r.name, r.level, "sharpness >= 1e9", detail="sharpness")
                                           if r.name == "blur" else r for r in recipe.rules))
    strict = steps.select(lake, stricter)
    assert strict.curated.where("modality = 'image'").count() == 0  # every image fails blur now
    assert decoded(log) == 4  # two selects, a threshold changed: nothing decoded again

    assert [a.action for a in steps.annotate(lake, [stage])] == ["up_to_date"]  # nothing new: nothing computed
    assert decoded(log) == 4 and lake.version("image_scores") == 0

    new = solid_png(64, 32, (10, 20, 30))  # a new document with one new image and one known one
    lake.write(spark.createDataFrame([("new", 0, "image", None, sha256_hex(new), None),
                                      ("new", 1, "image", None, sha256_hex(blobs["photo"]), None)], ITEMS), "items")
    lake.write(spark.createDataFrame([(sha256_hex(new), new)], "image_id string, binary_content binary"), "images")
    [more] = steps.annotate(lake, [stage])
    assert (more.action, more.rows_added, decoded(log)) == ("append", 1, 5)
    assert lake.read("image_scores").count() == 5

    faster = CountingImageScores(log=str(log), batch_size=2)  # how it runs, not what it gives: nothing to redo
    assert [a.action for a in steps.annotate(lake, [faster])] == ["up_to_date"] and decoded(log) == 5

    other = CountingImageScores(log=str(log), max_pixels=10**8)  # other parameters: the table is rebuilt, not mixed
    [rebuilt] = steps.annotate(lake, [other])
    assert (rebuilt.action, rebuilt.rows_added, decoded(log)) == ("overwrite", 5, 10)
    assert "max_pixels" in rebuilt.reason and lake.read("image_scores").count() == 5
    [back] = steps.annotate(lake, [stage])  # and back to the first parameters: rebuilt again, never skipped
    assert (back.action, back.rows_added, decoded(log)) == ("overwrite", 5, 15)
    assert steps.stage_info(lake, "image_scores")["fingerprint"] == stage.fingerprint


@pytest.fixture(scope="module")
def annotated(spark, tmp_path_factory, blobs):
    """A lakehouse with every catalogued signal table, written by `mmcurate annotate` (all stages by default)."""
    root = tmp_path_factory.mktemp("annotated")
    make_lake(spark, root, blobs)
    assert main(["annotate", "--lakehouse", str(root)]) == 0
    return Lakehouse.open(spark, str(root), backend="embedded")


def test_each_recipe_replaces_only_its_own_ledger_rows(annotated):
    lake = annotated
    n_items = lake.read("items").count()
    first = {r.recipe: r["count"] for r in steps.select(lake, "nemo_default").drops.groupBy("recipe").count().collect()}
    obelics = steps.select(lake, "obelics")
    assert obelics.curated.count() + obelics.drops.count() == n_items
    both = {r.recipe: r["count"] for r in lake.read("drops").groupBy("recipe").count().collect()}
    assert both == {**first, "obelics": obelics.drops.count()}
    steps.select(lake, "nemo_default")  # again: its rows are replaced, not added
    assert {r.recipe: r["count"] for r in lake.read("drops").groupBy("recipe").count().collect()} == both
    [(_, info)] = lake.commit_infos("drops")[:1]
    assert info["recipe"] == "nemo_default" and info["read"] == {"items": 0, "image_scores": 0, "image_qr": 0}


def test_a_recipe_reads_a_table_it_names_with_its_key(spark, annotated):
    lake = annotated
    lake.write(spark.createDataFrame([("doc", True), ("qr", False)], "sample_id string, flagged boolean"),
               "my_flags", mode="overwrite")
    recipe = Recipe.from_dict({"name": "flags", "version": "1", "tables": {"my_flags": ["sample_id"]},
                               "rules": [{"name": "unflagged", "level": "sample", "predicate": "NOT flagged"}]})
    kept = {r.sample_id for r in steps.select(lake, recipe, curated_table="flag_kept").curated.collect()}
    assert kept == {"qr"}  # doc is flagged; broken and text_only have no row: NULL drops
    unnamed = Recipe("flags", "1", recipe.rules)
    with pytest.raises(RecipeError, match="UNRESOLVED_COLUMN"):
        steps.select(lake, unnamed)
    with pytest.raises(RecipeError, match="names tables the lakehouse lacks: \\['nope'\\]"):
        steps.select(lake, Recipe("x", "1", (), tables=(("nope", ("sample_id",)),)))


def test_annotate_command_runs_what_a_recipe_reads(annotated, capsys):
    assert main(["annotate", "--recipe", "obelics", "--lakehouse", str(annotated.backend.root)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(d["stage"], d["action"]) for d in lines] == [
        ("image_scores", "up_to_date"), ("document_scores", "up_to_date"), ("paragraph_scores", "up_to_date")]
    assert main(["annotate", "--stages", "clip", "--lakehouse", "unused"]) == 2
    assert "unknown stage 'clip'" in capsys.readouterr().err


def test_select_job_refuses_an_unknown_recipe_before_starting_spark():
    done = subprocess.run([sys.executable, str(REPO / "jobs" / "select_items.py"), "--lakehouse", "unused", "--recipe", "nope"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "no packaged recipe of that name" in done.stderr


@pytest.mark.slow
def test_annotate_config_and_select_jobs_run_under_a_fresh_interpreter(annotated, tmp_path):
    config = tmp_path / "annotate.yaml"
    config.write_text("stages:\n  - image_scores\n  - {stage: sample_counts}\n")
    env = {**os.environ, "MMCURATE_SPARK_MASTER": "local[2]", "PYSPARK_PYTHON": sys.executable}
    root = annotated.backend.root
    for job, args in (("annotate.py", ["--config", str(config)]), ("select_items.py", ["--recipe", "nemo_default"])):
        done = subprocess.run([sys.executable, str(REPO / "jobs" / job), "--lakehouse", root, *args],
                              capture_output=True, text=True, env=env, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        if job == "annotate.py":
            assert [json.loads(line)["action"] for line in done.stdout.splitlines()] == ["up_to_date", "up_to_date"]
    assert "recipe nemo_default version 1" in done.stdout and "empty_after_filtering" in done.stdout


def test_a_new_stage_from_the_architecture_page_is_annotated_and_read_by_rules(spark, tmp_path, blobs):
    """The 'Adding a stage' example, verbatim from docs/architecture.md: select finds its table by the key
    its annotate commit recorded, with no registration anywhere."""
    page = (REPO / "docs" / "architecture.md").read_text()
    code = page.split("### Adding a stage\n\n```python\n", 1)[1].split("```", 1)[0]
    namespace = {}
    exec("from dataclasses import dataclass\nfrom pyspark.sql import functions as F, types as T\n"
         "from mmcurate.stage import ITEM_KEY, Stage\n" + code, namespace)
    lake = make_lake(spark, tmp_path / "lake", blobs)
    [done] = steps.annotate(lake, [namespace["CaptionLength"]()])
    assert (done.table, done.action, done.rows_added) == ("caption_length", "overwrite", 4)
    recipe = Recipe("long_texts", "1", (Rule("long", "text", f"n_chars > {len(TEXT)}", detail="n_chars"),))
    selection = steps.select(lake, recipe)
    assert selection.curated.where("modality = 'text'").count() == 0
    assert {r.detail for r in selection.drops.where("rule = 'long'").collect()} == {str(len(TEXT))}


def test_a_first_run_scores_qr_from_the_pixels_image_scores_decoded(spark, tmp_path, blobs):
    """One decode for both tables when neither exists: the same rows and commits as two passes, and QR still
    only on the images the earlier rules keep."""
    from pyspark.testing import assertDataFrameEqual

    nemo = Recipe.from_yaml("nemo_default")
    fused, apart = make_lake(spark, tmp_path / "fused", blobs), make_lake(spark, tmp_path / "apart", blobs)
    scores_log, qr_log = tmp_path / "scores.log", tmp_path / "qr.log"
    done = steps.annotate(fused, [CountingImageScores(log=str(scores_log)), CountingImageQR(log=str(qr_log))],
                          recipes=[nemo])
    assert [a.action for a in done] == ["overwrite", "overwrite"] and "one decode with image_scores" in done[1].reason
    assert (decoded(scores_log), decoded(qr_log)) == (4, 2)
    steps.annotate(apart, [ImageScores()])  # image_scores exists: QR is its own pass, narrowed by a join
    [qr] = steps.annotate(apart, [ImageQR()], recipes=[nemo])
    assert "one decode" not in qr.reason
    for table in ("image_scores", "image_qr"):
        assertDataFrameEqual(fused.read(table), apart.read(table))
        ours, theirs = steps.stage_info(fused, table), steps.stage_info(apart, table)
        same = ("stage", "version", "action", "demand", "input", "input_version", "key", "upstream")
        assert {k: ours[k] for k in same} == {k: theirs[k] for k in same}
    # a rule the pass cannot test on image_scores' values leaves QR to its own pass
    odd = Recipe("odd", "1", tuple(replace(r, predicate="sharpness BETWEEN 100 AND 1e9") if r.name == "blur" else r
                                   for r in nemo.rules))
    other = make_lake(spark, tmp_path / "other", blobs)
    assert "one decode" not in steps.annotate(other, [ImageScores(), ImageQR()], recipes=[odd])[1].reason
    assertDataFrameEqual(other.read("image_qr"), apart.read("image_qr"))


def test_qr_is_scored_on_demand_only_where_the_earlier_rules_keep_the_image(spark, tmp_path, blobs):
    """NeMo's order, blur before QR, as a saving: QR runs on blur survivors only; a looser recipe scores just the
    images it adds; a select reaching an unscored image refuses instead of reading a missing score as a verdict."""
    lake, log = make_lake(spark, tmp_path / "lake", blobs), tmp_path / "qr.log"
    qr = CountingImageQR(log=str(log))
    nemo = Recipe.from_yaml("nemo_default")
    done = steps.annotate(lake, [qr, ImageScores()], recipes=[nemo])  # on-demand stages run after the rest
    assert [(a.stage, a.action) for a in done] == [("image_scores", "overwrite"), ("image_qr", "overwrite")]
    photo, solid, code = (sha256_hex(blobs[k]) for k in ("photo", "solid", "qr"))
    assert {r.image_id for r in lake.read("image_qr").collect()} == {photo, code}  # solid is blurry, broken undecodable
    assert decoded(log) == 2 and "as ['nemo_default'] need" in done[1].reason
    assert steps.stage_info(lake, "image_qr")["demand"] == ["nemo_default"]

    full = steps.select(lake, nemo)
    everything = make_lake(spark, tmp_path / "full", blobs)
    steps.annotate(everything, [ImageScores(), ImageQR()])  # no recipe: every image scored
    assert everything.read("image_qr").count() == 4
    reference = steps.select(everything, nemo)
    assert sorted(full.curated.collect()) == sorted(reference.curated.collect())
    assert sorted(full.drops.collect()) == sorted(reference.drops.collect())

    looser = Recipe("looser", "1", tuple(replace(r, predicate="sharpness >= 0") if r.name == "blur" else r
                                         for r in nemo.rules))
    with pytest.raises(RecipeError, match="not computed \\(1 at rule 'qrcode'\\).*annotate for this recipe first"):
        steps.select(lake, looser)  # the solid image now reaches the QR rule, unscored
    [again] = steps.annotate(lake, [qr], recipes=[nemo, looser])
    assert (again.action, again.rows_added, decoded(log)) == ("append", 1, 3)  # just the solid image
    assert [a.action for a in steps.annotate(lake, [qr], recipes=[looser])] == ["up_to_date"] and decoded(log) == 3
    kept = steps.select(lake, looser).curated
    assert kept.where(f"image_id = '{solid}'").count() == 1
