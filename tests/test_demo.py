"""The README's demo: packaged sample data through ingest, scores, selection and export."""
import json
import tarfile
from pathlib import Path

from mmcurate.cli import main
from mmcurate.lakehouse import Lakehouse


def test_demo_runs_end_to_end_and_accounts_for_everything(spark, tmp_path, capsys, test_data):
    assert main(["demo", "--out", str(tmp_path)]) == 0
    report = json.loads(capsys.readouterr().out.split("\nExplore it:")[0])
    expected = json.loads((test_data / "fixtures.json").read_text())["demo_wds"]
    assert report["ingested"]["documents"] == expected["documents"]
    assert report["quarantine"] == {"malformed_json": 1, "image_truncated": 1, "missing_image_member": 3}

    lake = Lakehouse.open(spark, str(tmp_path / "lake"))
    items, curated = lake.read("items"), lake.read("curated_items")
    drops = lake.read("drops").where("recipe = 'nemo_default'")
    assert items.count() == curated.count() + drops.count()  # in = kept + dropped
    total = next(r for r in report["selection"] if r["rule"] == "total")
    assert total["kept"] == curated.count() and total["dropped"] == drops.count()

    # exact dedup ran too, its ledger rows beside the recipe's: the header logo every page shows goes
    dedup = {r["rule"]: r["dropped"] for r in report["dedup_exact"]}
    assert dedup["frequent_image"] == expected["documents"] and dedup["duplicate_paragraph"] > 0
    deduplicated, dedup_drops = lake.read("deduplicated_items"), lake.read("drops").where("recipe = 'dedup_exact'")
    assert items.count() == deduplicated.count() + dedup_drops.count()

    shards = sorted(Path(tmp_path / "webdataset").glob("*.tar"))
    assert shards
    # the mixed training set: every curated sample (or part of one) trains, as many times as the mix says
    mixed = report["mix"]
    assert mixed["samples_before"] >= report["curated_samples"] > 0
    assert sum(r["n_samples"] for r in report["shards"]) == mixed["samples_after"] > 0
    assert Path(mixed["chart"]).stat().st_size > 0
    with tarfile.open(shards[0]) as tar:
        names = tar.getnames()
    assert any(n.endswith(".json") for n in names)
    lineage = json.loads((tmp_path / "webdataset" / "manifest.json").read_text())["lineage"]
    assert lineage["selected_by"]["recipe"] == "nemo_default" and lineage["mix"]["mix"] == "balanced"
    assert lineage["tokens"]["samples_after"] == mixed["samples_after"]

    # a rerun reuses the ingest (idempotent commits) and gives the same curated set
    assert main(["demo", "--out", str(tmp_path)]) == 0
    capsys.readouterr()
    assert lake.read("items").count() == items.count()
    assert lake.read("curated_items").count() == curated.count()
