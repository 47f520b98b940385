"""Databricks notebooks run top to bottom on a local session (dbutils and display stubbed)."""
from pathlib import Path

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


class Widgets:
    """dbutils.widgets with the notebook's defaults, some overridden."""

    def __init__(self, overrides):
        self.values, self.overrides = {}, overrides

    def text(self, name, default, label=None):
        self.values[name] = self.overrides.get(name, default)

    def dropdown(self, name, default, choices, label=None):
        assert default in choices
        self.values[name] = self.overrides.get(name, default)

    def get(self, name):
        return self.values[name]


class DBUtils:
    def __init__(self, overrides):
        self.widgets = Widgets(overrides)


def code_cells(path: Path) -> list[str]:
    cells = path.read_text().split("# COMMAND ----------")
    assert cells[0].startswith("# Databricks notebook source")
    return [c for c in cells if c.strip() and not c.strip().startswith("# MAGIC")]


def test_curate_notebook_runs_on_the_demo_data(spark, tmp_path):
    shown = []
    namespace = {
        "spark": spark,
        "dbutils": DBUtils({"lakehouse": str(tmp_path / "lake"), "export": str(tmp_path / "wds")}),
        "display": lambda df: shown.append(df.count()),
    }
    for cell in code_cells(NOTEBOOKS / "curate_interleaved.py"):
        exec(compile(cell, "curate_interleaved.py", "exec"), namespace)  # the notebook's own code
    assert namespace["summary"]["documents"] == 59
    assert len(shown) == 6 and all(n > 0 for n in shown)
    assert sorted(p.name for p in (tmp_path / "wds").glob("*.tar"))
    assert (tmp_path / "wds" / "manifest.json").is_file()
