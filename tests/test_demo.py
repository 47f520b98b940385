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
    items, curated, drops = lake.read("items"), lake.read("curated_items"), lake.read("drops")
    assert items.count() == curated.count() + drops.count()  # in = kept + dropped
    total = next(r for r in report["selection"] if r["rule"] == "total")
    assert total["kept"] == curated.count() and total["dropped"] == drops.count()

    shards = sorted(Path(tmp_path / "webdataset").glob("*.tar"))
    assert shards and sum(r["n_samples"] for r in report["shards"]) == report["curated_samples"] > 0
    with tarfile.open(shards[0]) as tar:
        names = tar.getnames()
    assert any(n.endswith(".json") for n in names)

    # a rerun reuses the ingest (idempotent commits) and gives the same curated set
    assert main(["demo", "--out", str(tmp_path)]) == 0
    capsys.readouterr()
    assert lake.read("items").count() == items.count()
    assert lake.read("curated_items").count() == curated.count()
