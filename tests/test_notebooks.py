"""Databricks notebooks run top to bottom on a local session (dbutils and display stubbed; `%sql` cells through
`spark.sql`), on a copy of the demo lakehouse the session built once."""
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
    """The notebook's Python cells, and its `%sql` cells as `display(spark.sql(...))`; markdown and `%pip` skipped."""
    cells = path.read_text().split("# COMMAND ----------")
    assert cells[0].startswith("# Databricks notebook source")
    code = []
    for cell in (c.strip() for c in cells[1:] if c.strip()):
        if cell.startswith("# MAGIC %sql"):
            lines = [line[len("# MAGIC"):].strip() for line in cell.splitlines()[1:]]
            query = "\n".join(line for line in lines if line and not line.startswith("--"))
            code.append(f"display(spark.sql({query!r}))")
        elif not cell.startswith("# MAGIC"):
            code.append(cell)
    return code


def run_notebook(name: str, spark, widgets: dict) -> tuple[dict, list]:
    """Execute every cell in order; returns the namespace and the row count of each displayed DataFrame."""
    shown = []
    namespace = {"spark": spark, "dbutils": DBUtils(widgets), "display": lambda df: shown.append(df.count())}
    for cell in code_cells(NOTEBOOKS / name):
        exec(compile(cell, name, "exec"), namespace)  # the notebook's own code
    return namespace, shown


def test_explore_notebook_runs_sql_cells(spark, demo_copy):
    _, shown = run_notebook("01_explore_lakehouse.py", spark, {"lakehouse": str(demo_copy / "lake")})
    assert len(shown) == 6 and all(n > 0 for n in shown)


def test_tune_notebook_selects_without_rescoring(spark, demo_copy):
    namespace, shown = run_notebook("02_tune_threshold.py", spark, {"lakehouse": str(demo_copy / "lake")})
    assert namespace["table"].name == "image_scores" and len(shown) == 3
    drops = namespace["lake"].read("drops").where("recipe = 'nemo_default_tuned' AND rule = 'blur'").count()
    below = namespace["at"]["below_200"]
    assert drops >= 1 and namespace["what_if"].where("threshold = 200").first().images_dropped == below


def test_pipeline_notebook_reruns_the_demo_config_with_nothing_to_do(spark, demo_copy):
    namespace, shown = run_notebook("03_run_pipeline.py", spark, {"root": str(demo_copy)})
    report = namespace["report"]
    assert report["steps"][0]["files"] == 0 and all(s.get("skipped", True) for s in report["steps"]
                                                     if s["step"].startswith(("select", "mix")))
    assert shown == [len(report["steps"])]


def test_dedup_and_mix_notebook(spark, demo_copy):
    _, shown = run_notebook("04_dedup_and_mix.py", spark, {"lakehouse": str(demo_copy / "lake")})
    assert len(shown) == 5 and all(n > 0 for n in shown)


def test_curate_notebook_runs_step_by_step(spark, demo_copy):
    """The step-by-step notebook over the demo lakehouse: its files are already ingested, its scores current."""
    namespace, shown = run_notebook("curate_interleaved.py", spark, {"lakehouse": str(demo_copy / "lake"),
                                                                     "export": str(demo_copy / "wds")})
    tmp_path = demo_copy
    from mmcurate.demo import demo_shards

    shards = len(list(Path(demo_shards()).glob("*.tar")))
    assert namespace["summary"]["skipped_files"] == shards and namespace["summary"]["documents"] == 0
    assert all(a.action == "up_to_date" for a in namespace["annotated"])
    assert len(shown) == 6 and all(n > 0 for n in shown)
    assert sorted(p.name for p in (tmp_path / "wds").glob("*.tar"))
    assert (tmp_path / "wds" / "manifest.json").is_file()
