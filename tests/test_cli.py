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


def test_lazy_ingest_materialize_and_export_commands(spark, tmp_path, test_data, capsys):
    lake = tmp_path / "lake"
    assert main(["ingest", str(test_data / "mint_pdf"), "--format", "webdataset", "--lazy-images",
                 "--lakehouse", str(lake)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["documents"] == 5 and summary["image_items"] == 16 and summary["unique_images"] == 0
    assert Lakehouse.open(spark, str(lake)).tables() == ["images", "items", "quarantine"]

    assert main(["materialize", "--lakehouse", str(lake)]) == 0
    counts = json.loads(capsys.readouterr().out)
    assert (counts["tried"], counts["materialized"], counts["failed"]) == (16, 16, {})
    assert counts["new_images"] == Lakehouse.open(spark, str(lake)).read("images").count() > 0
    assert main(["export", "--table", "items", "--format", "parquet", "--on-materialize-error", "error",
                 "--out", str(tmp_path / "pq"), "--lakehouse", str(lake)]) == 0
    assert list((tmp_path / "pq").glob("*.parquet"))


def test_vacuum_command(spark, tmp_path, capsys):
    lake = Lakehouse.open(spark, str(tmp_path), backend="embedded")
    df = spark.createDataFrame([("a", 0)], "sample_id string, position int")
    lake.write(df, "items")
    lake.write(df, "items", mode="overwrite")
    assert main(["vacuum", "--lakehouse", str(tmp_path), "--retention-hours", "0"]) == 0
    assert "items: removed" in capsys.readouterr().out
    assert lake.read("items").count() == 1


def test_optimize_command_compacts_and_vacuums(spark, tmp_path, capsys):
    lake = Lakehouse.open(spark, str(tmp_path), backend="embedded")
    for i in range(3):
        lake.write(spark.createDataFrame([("a", i)], "sample_id string, position int"), "items")
    lake.write(spark.createDataFrame([("b", 0)], "sample_id string, position int"), "other")
    assert main(["optimize", "--lakehouse", str(tmp_path), "--table", "items", "--vacuum", "--retention-hours", "0"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("items: 3 files (") and "into 1 (" in printed and "vacuum removed" in printed
    assert "other" not in printed and sorted(r.position for r in lake.read("items").collect()) == [0, 1, 2]


def test_model_stages_from_a_config_then_a_recipe_over_them(spark, tmp_path, test_data, capsys):
    """mmcurate tiny-models writes models and an annotate config; annotate runs every model stage from it."""
    lake = str(tmp_path / "lake")
    assert main(["tiny-models", str(tmp_path / "models")]) == 0
    config = tmp_path / "models" / "annotate.yaml"
    assert str(config) in capsys.readouterr().out
    main(["ingest", str(test_data / "mint_pdf"), "--format", "webdataset", "--lakehouse", lake])
    capsys.readouterr()
    assert main(["annotate", "--config", str(config), "--lakehouse", lake]) == 0
    done = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [d["stage"] for d in done] == [
        "image_embeddings", "text_embeddings", "sample_embeddings", "clusters", "cluster_summary", "pair_scores",
        "image_alignment", "aesthetic_scores", "nsfw_scores", "text_perplexity", "document_perplexity",
        "quality_scores", "text_tokens"]
    assert all(d["action"] == "overwrite" and d["rows_added"] > 0 for d in done)
    assert main(["select", "--recipe", "clip_alignment", "--lakehouse", lake]) == 0
    # the model-scored mix: deciles, quality epochs, tokenizer counts; then its training set
    assert main(["mix", "--mix", "quality_epochs", "--chart", str(tmp_path / "mix.png"), "--lakehouse", lake]) == 0
    assert "chart: " in capsys.readouterr().out and (tmp_path / "mix.png").stat().st_size > 0
    mixed = Lakehouse.open(spark, lake).read("mix_samples").collect()
    assert {r.decile for r in mixed} <= {str(d) for d in range(1, 11)} and all(r.tokens > 0 for r in mixed)
    assert all((r.repeats == 0) == (r.reason is not None) for r in mixed)
    assert main(["export", "--mix", "quality_epochs", "--out", str(tmp_path / "train"), "--lakehouse", lake]) == 0
    manifest = json.loads((tmp_path / "train" / "manifest.json").read_text())
    assert manifest["totals"]["samples"] == sum(r.repeats for r in mixed)
    assert main(["mix", "--mix", str(tmp_path / "missing.yaml"), "--lakehouse", lake]) == 2
    assert main(["annotate", "--recipe", "mmc4", "--lakehouse", lake]) == 2
    assert "need parameters: image_embeddings (model_path)" in capsys.readouterr().err


def test_train_quality_command(spark, tmp_path, capsys):
    lake = Lakehouse.open(spark, str(tmp_path), backend="embedded")
    rows = [("science history of the river city", 1)] * 20 + [("buy cheap casino click now", 0)] * 20
    lake.write(spark.createDataFrame(rows, "document string, label int"), "labelled")
    out = str(tmp_path / "quality.bin")
    assert main(["train-quality", "--table", "labelled", "--out", out, "--lakehouse", str(tmp_path)]) == 0
    assert json.loads(capsys.readouterr().out) == {"labels": ["__label__hq", "__label__cc"], "negatives": 20,
                                                   "path": out, "positives": 20}
    assert main(["train-quality", "--out", out, "--lakehouse", str(tmp_path)]) == 2
