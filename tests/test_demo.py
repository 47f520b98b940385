"""The README's demo: the packaged pipeline through ingest, scores, dedup, selection, mix and export, tracked in
MLflow; run once locally, once more (nothing to do), and once on a standalone cluster through spark-submit."""
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from pyspark.testing import assertDataFrameEqual

from mmcurate.cli import main
from mmcurate.lakehouse import Lakehouse

REPO = Path(__file__).resolve().parents[1]


def test_demo_runs_end_to_end_and_accounts_for_everything(spark, demo_run, capsys, test_data):
    tmp_path, printed = demo_run
    assert "select[nemo_default]" in printed and f"report:    {tmp_path / 'report.json'}" in printed
    report = json.loads((tmp_path / "report.json").read_text())
    step = {s["step"]: s for s in report["steps"]}
    expected = json.loads((test_data / "fixtures.json").read_text())["demo_wds"]
    assert step["ingest[0]"]["documents"] == expected["documents"]
    # the truncated image and the three absent members stay image items (no bytes / undecodable): `decodable` drops them
    assert step["ingest[0]"]["quarantine_reasons"] == {"malformed_json": 1}

    lake = Lakehouse.open(spark, str(tmp_path / "lake"))
    items, curated = lake.read("items"), lake.read("curated_items")
    drops = lake.read("drops").where("recipe = 'nemo_default'")
    assert items.count() == curated.count() + drops.count()  # in = kept + dropped
    selected = step["select[nemo_default]"]
    assert selected["kept_items"] == curated.count() and selected["dropped_items"] == drops.count()
    assert selected["dropped"]["decodable"] == 4
    # the showcase documents make every rule drop something: blurred photos, the QR poster, the gallery and the
    # text-only note (image-to-text ratio)
    assert set(selected["dropped"]) == {"decodable", "blur", "qrcode", "image_text_ratio"}

    # exact dedup ran too, its ledger rows beside the recipe's: the header logo every page shows goes
    # (on every tutorial page; the showcase mirror of a page goes whole as a duplicate document first; the three
    # image items without bytes have no copy count: dropped by the same rule as NULL)
    dedup = step["select[dedup_exact]"]["dropped"]
    frequent = lake.read("drops").where("recipe = 'dedup_exact' AND rule = 'frequent_image'")
    logo_pages = expected["documents"] - expected["showcase_documents"]
    assert frequent.where("reason = 'predicate_false'").count() == logo_pages
    assert dedup["frequent_image"] == frequent.count() == logo_pages + 3 and dedup["duplicate_paragraph"] > 0
    assert dedup["duplicate_document"] > 0  # the mirrored page
    deduplicated, dedup_drops = lake.read("deduplicated_items"), lake.read("drops").where("recipe = 'dedup_exact'")
    assert items.count() == deduplicated.count() + dedup_drops.count()

    shards = sorted(Path(tmp_path / "webdataset").glob("*.tar"))
    assert shards
    # the mixed training set: every curated sample (or part of one) trains, as many times as the mix says
    mixed = step["mix[balanced]"]
    assert mixed["samples_before"] >= selected["kept_samples"] > 0
    assert step["export[0]"]["samples"] == mixed["samples_after"] > 0
    assert Path(mixed["chart"]).stat().st_size > 0
    with tarfile.open(shards[0]) as tar:
        names = tar.getnames()
    assert any(n.endswith(".json") for n in names)
    lineage = json.loads((tmp_path / "webdataset" / "manifest.json").read_text())["lineage"]
    assert lineage["selected_by"]["recipe"] == "nemo_default" and lineage["mix"]["mix"] == "balanced"
    assert lineage["tokens"]["samples_after"] == mixed["samples_after"]

    # the run is in MLflow: the config as params, every step's counts as metrics equal to the ledger's
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=report["mlflow"]["tracking_uri"])
    run = client.get_run(report["mlflow"]["run_id"])
    assert run.info.status == "FINISHED" and run.data.params["select.1.recipe"] == "nemo_default"
    ledger = {r.rule: r["count"] for r in drops.groupBy("rule").count().collect()}
    assert {k.rsplit(".", 1)[1]: v for k, v in run.data.metrics.items()
            if k.startswith("select.nemo_default.dropped.")} == ledger
    assert run.data.metrics["select.nemo_default.kept_items"] == curated.count()
    assert run.data.metrics["ingest.0.documents"] == expected["documents"]
    assert run.data.tags["delta_version.curated_items"] == str(lake.version("curated_items"))
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)} | \
        {a.path for folder in ("histograms", "mix", "samples") for a in client.list_artifacts(run.info.run_id, folder)}
    assert {"report.json", "histograms/image_scores.sharpness.png", "mix/mix_report.png", "samples/view.html"} <= artifacts
    assert step["view[0]"]["out"] == str(tmp_path / "view.html") and (tmp_path / "view.html").stat().st_size > 0

    # a rerun adds nothing and recomputes nothing: files already ingested, keys scored, selects and mix current
    versions = {t: lake.version(t) for t in lake.tables()}
    assert main(["demo", "--out", str(tmp_path), "--quiet"]) == 0
    assert "select[" not in capsys.readouterr().out
    rerun = {s["step"]: s for s in json.loads((tmp_path / "report.json").read_text())["steps"]}
    assert rerun["ingest[0]"]["files"] == 0 and rerun["select[nemo_default]"]["skipped"] and rerun["mix[balanced]"]["skipped"]
    assert {t: lake.version(t) for t in lake.tables()} == versions  # not one commit
    assert rerun["export[0]"]["samples"] == step["export[0]"]["samples"]


@pytest.mark.slow
def test_the_demo_pipeline_on_a_standalone_cluster_gives_the_local_output(spark, demo_run, standalone_cluster, tmp_path):
    """spark-submit jobs/pipeline.py to a master with two workers (separate executor JVMs and Python workers):
    the curated items, the ledger and the exported shards equal the local run's."""
    local, _ = demo_run
    cluster = standalone_cluster
    submit = [str(Path(cluster["spark_home"]) / "bin" / "spark-submit"), "--master", cluster["master"],
              "--conf", "spark.executor.memory=1g", "--conf", "spark.sql.shuffle.partitions=4",
              "--conf", f"spark.executorEnv.PYSPARK_PYTHON={sys.executable}",
              str(REPO / "jobs" / "pipeline.py"), "--config", "demo", "--root", str(tmp_path), "--quiet"]
    done = subprocess.run(submit, env=cluster["env"], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]
    assert f"lakehouse: {tmp_path / 'lake'}" in done.stdout

    ours, theirs = Lakehouse.open(spark, str(local / "lake")), Lakehouse.open(spark, str(tmp_path / "lake"))
    for table in ("items", "curated_items", "deduplicated_items", "drops", "mix_samples"):
        assertDataFrameEqual(theirs.read(table), ours.read(table))
    shards = lambda root: {s["path"].rsplit("/", 1)[1]: s["sha256"]
                           for s in json.loads((root / "webdataset" / "manifest.json").read_text())["shards"]}
    assert shards(tmp_path) == shards(local)  # byte-identical tars
