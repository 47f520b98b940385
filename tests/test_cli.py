"""The command line over a real lakehouse."""
import json

from mmcurate.cli import main
from mmcurate.lakehouse import Lakehouse


def test_sql_prints_a_table_and_json_lines(spark, tmp_path, capsys):
    lake = Lakehouse.open(spark, str(tmp_path), backend="embedded")
    lake.write(spark.createDataFrame([("a", 0, "text"), ("a", 1, "image"), ("b", 0, "text")],
                                     "sample_id string, position int, modality string"), "items")
    assert main(["sql", "SELECT modality, count(*) AS n FROM items GROUP BY modality ORDER BY modality",
                 "--lakehouse", str(tmp_path)]) == 0
    shown = capsys.readouterr().out
    assert "|modality|  n|" in shown and "|    text|  2|" in shown

    main(["sql", "SELECT sample_id FROM items WHERE position = 1", "--lakehouse", str(tmp_path), "--json"])
    assert [json.loads(line) for line in capsys.readouterr().out.splitlines()] == [{"sample_id": "a"}]

    main(["tables", "--lakehouse", str(tmp_path)])
    assert capsys.readouterr().out.startswith("items\tversion=0\t")
    main(["history", "items", "--lakehouse", str(tmp_path), "--json"])
    assert json.loads(capsys.readouterr().out.splitlines()[0])["version"] == 0


def test_ingest_command_fills_the_lakehouse(spark, tmp_path, test_data, capsys):
    assert main(["ingest", str(test_data / "mint_pdf"), "--format", "webdataset",
                 "--lakehouse", str(tmp_path)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["documents"] == 5 and summary["image_items"] == 16
    assert Lakehouse.open(spark, str(tmp_path)).tables() == ["images", "items", "quarantine"]


def test_vacuum_command(spark, tmp_path, capsys):
    lake = Lakehouse.open(spark, str(tmp_path), backend="embedded")
    df = spark.createDataFrame([("a", 0)], "sample_id string, position int")
    lake.write(df, "items")
    lake.write(df, "items", mode="overwrite")
    assert main(["vacuum", "--lakehouse", str(tmp_path), "--retention-hours", "0"]) == 0
    assert "items: removed" in capsys.readouterr().out
    assert lake.read("items").count() == 1
