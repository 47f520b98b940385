# Databricks notebook source
# MAGIC %md
# MAGIC # 03 · Run a pipeline from its config
# MAGIC One YAML file describes the run (sources, annotate stages, selects, mix, exports, MLflow). It is checked
# MAGIC before anything runs; a rerun adds no duplicate rows and redoes nothing committed. The packaged `demo`
# MAGIC config runs on the sample data inside the package.

# COMMAND ----------

dbutils.widgets.text("config", "demo", "Pipeline config (YAML path or packaged name)")  # noqa: F821
dbutils.widgets.text("root", "/tmp/mmcurate-demo", "Directory the config's relative paths are under")  # noqa: F821

from mmcurate.pipeline import Pipeline

pipeline = Pipeline.from_yaml(dbutils.widgets.get("config"), root=dbutils.widgets.get("root"))  # noqa: F821
{"name": pipeline.name, "lakehouse": pipeline.lakehouse, "sources": [s.paths for s in pipeline.sources],
 "stages": [s.name for s in pipeline.stages], "selects": [s.recipe.name for s in pipeline.selects],
 "mix": pipeline.mix.name if pipeline.mix else None, "exports": [e.out for e in pipeline.exports]}

# COMMAND ----------

from mmcurate.runner import describe

report = pipeline.run(spark, on_step=lambda name, result: print(describe(result)))  # noqa: F821

# COMMAND ----------

steps_run = spark.createDataFrame(  # noqa: F821
    [(s["step"], float(s["seconds"]), bool(s.get("skipped", False))) for s in report["steps"]],
    "step string, seconds double, skipped boolean")
display(steps_run)  # noqa: F821
report["mlflow"]
