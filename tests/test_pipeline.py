"""Pipeline configs: every mistake is one clear error naming the key and what is allowed, before Spark starts;
the packaged examples validate. (The demo test runs the packaged `demo` pipeline end to end.)"""
import json
from pathlib import Path

import pytest
import yaml

from mmcurate.cli import job, main
from mmcurate.pipeline import ConfigError, Pipeline

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.yaml"))
GOOD = {"name": "t", "lakehouse": "lake", "ingest": [{"format": "webdataset", "paths": ["data/"]}],
        "select": [{"recipe": "nemo_default"}], "export": [{"out": "wds", "options": {"samples_per_shard": 10}}]}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_packaged_examples_validate(path, capsys):
    assert main(["validate", "--config", str(path)]) == 0
    assert "valid pipeline" in capsys.readouterr().out


def test_examples_exist():
    assert len(EXAMPLES) >= 3


def test_a_valid_config_resolves_paths_under_root_and_collects_stages():
    pipeline = Pipeline.from_dict(GOOD, root="/data/run")
    assert pipeline.lakehouse == "/data/run/lake" and pipeline.sources[0].paths == ("/data/run/data/",)
    assert pipeline.exports[0].out == "/data/run/wds" and pipeline.mlflow["directory"] == "/data/run/mlruns"
    assert [s.name for s in pipeline.stages] == ["image_scores", "image_qr"]  # what nemo_default reads
    assert [r.name for r in pipeline.demand] == ["nemo_default"]  # what the on-demand image_qr scores for
    catalog = Pipeline.from_dict({**GOOD, "lakehouse": "main.curation"}, root="/data/run")
    assert catalog.lakehouse == "main.curation"  # a catalog schema is not a path


@pytest.mark.parametrize("change, message", [
    ({"sourcez": []}, r"config: unknown key\(s\) \['sourcez'\]; allowed: .*'ingest'"),
    ({"ingest": [{"format": "warcx", "paths": ["x"]}]}, r"ingest\[0\].format: 'warcx' is not one of \['webdataset'"),
    ({"ingest": [{"format": "webdataset"}]}, r"ingest\[0\]: missing required key\(s\) \['paths'\]"),
    ({"ingest": [{"format": "webdataset", "paths": ["x"], "options": {"sample_id_feild": "id"}}]},
     r"ingest\[0\].options: unknown key\(s\) \['sample_id_feild'\]; allowed: .*'sample_id_field'"),
    ({"ingest": [{"format": "webdataset", "paths": ["x"], "options": {"on_missing_image": "drop"}}]},
     r"ingest\[0\].options: on_missing_image must be one of"),
    ({"annotate": {"stages": ["image_scorez"]}}, r"annotate.stages\[0\]: unknown stage 'image_scorez'; known stages"),
    ({"annotate": {"stages": [{"stage": "image_scores", "batch_sise": 3}]}}, r"annotate.stages\[0\]: stage 'image_scores'"),
    ({"select": [{"recipe": "nemo_defualt"}]}, r"select\[0\].recipe: no recipe file 'nemo_defualt'.*packaged: \["),
    ({"select": {"recipe": "nemo_default", "table": "x"}}, r"select\[0\]: unknown key\(s\) \['table'\]"),
    ({"mix": {"mix": "balancedd"}}, r"mix.mix: no mix file 'balancedd'"),
    ({"export": [{"out": "x", "format": "tfrecord"}]}, r"export\[0\].format: 'tfrecord' is not one of"),
    ({"export": [{"out": "x", "options": {"shards": 4}}]}, r"export\[0\].options: unknown key\(s\) \['shards'\]; allowed: .*'samples_per_shard'"),
    ({"export": [{"out": "x", "mix": "balanced"}]}, r"export\[0\].mix: 'balanced' is not the mix this config runs"),
    ({"backend": "delta"}, r"backend: 'delta' is not one of"),
    ({"name": 3}, r"name: expected a run name, got 3"),
    ({"mlflow": {"enabled": "yes"}}, r"mlflow.enabled: expected true or false"),
])
def test_each_mistake_is_one_clear_error(change, message, tmp_path, capsys):
    with pytest.raises(ConfigError, match=message):
        Pipeline.from_dict({**GOOD, **change}, where="run.yaml")
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({**GOOD, **change}))
    assert main(["validate", "--config", str(path)]) == 2
    assert "validate: run.yaml: " in capsys.readouterr().err


def test_a_missing_section_and_a_missing_file_are_clear():
    with pytest.raises(ConfigError, match=r"missing required key\(s\) \['lakehouse'\]"):
        Pipeline.from_dict({"name": "t"})
    with pytest.raises(ConfigError, match="no pipeline file 'nowhere.yaml' and no packaged pipeline"):
        Pipeline.from_yaml("nowhere.yaml")


def test_a_per_stage_job_runs_only_its_steps_of_the_config(spark, demo_copy, capsys):
    """`spark-submit jobs/select_items.py --config demo ...`: the config's selects only (current: skipped)."""
    report = demo_copy / "select.json"
    assert job("select", ["--config", "demo", "--root", str(demo_copy), "--quiet", "--report", str(report)]) == 0
    steps = json.loads(report.read_text())["steps"]
    assert [s["step"] for s in steps] == ["select[dedup_exact]", "select[nemo_default]"] and all(s["skipped"] for s in steps)
    assert main(["run", "--config", "demo", "--only", "selct"]) == 2
    assert "--only: unknown step kind(s) ['selct']" in capsys.readouterr().err


def test_the_format_names_are_the_readers():
    from mmcurate.io.formats import FORMATS
    from mmcurate.io.ingest import PATTERNS, READERS

    assert tuple(READERS) == tuple(PATTERNS) == FORMATS
