# Databricks notebook source
# MAGIC %md
# MAGIC # Curate interleaved image-text documents
# MAGIC
# MAGIC Ingest MINT-1T / OBELICS / MMC4 / NeMo data into Delta tables, score every unique image and
# MAGIC every sample, select with a recipe of SQL predicates (with a ledger of every drop), and export
# MAGIC WebDataset shards. Set the widgets, then run all. With the defaults it runs on the sample data
# MAGIC shipped inside the package.

# COMMAND ----------

# MAGIC %pip install mmcurate

# COMMAND ----------

from mmcurate.demo import demo_shards

dbutils.widgets.text("lakehouse", "/tmp/mmcurate/lake", "Lakehouse root (path, URI or catalog.schema)")  # noqa: F821
dbutils.widgets.text("input", demo_shards(), "Input files or folder")  # noqa: F821
dbutils.widgets.dropdown("format", "webdataset", ["webdataset", "documents", "mmc4", "nemo_parquet"], "Format")  # noqa: F821
dbutils.widgets.text("recipe", "nemo_default", "Recipe (packaged name or YAML path)")  # noqa: F821
dbutils.widgets.text("export", "/tmp/mmcurate/webdataset", "Export folder")  # noqa: F821

params = {name: dbutils.widgets.get(name) for name in ("lakehouse", "input", "format", "recipe", "export")}  # noqa: F821
params

# COMMAND ----------

# MAGIC %md ## 1. Ingest
# MAGIC One Spark task per input file; bad documents, items and files land in `quarantine` with a reason.

# COMMAND ----------

from mmcurate.io.ingest import ingest_to_lakehouse
from mmcurate.lakehouse import Lakehouse

lake = Lakehouse.open(spark, params["lakehouse"])  # noqa: F821  (native Delta on Databricks)
summary = ingest_to_lakehouse(lake, params["input"], params["format"], app_id="notebook-ingest", app_version=1)
summary

# COMMAND ----------

lake.register_views()
display(spark.sql("SELECT reason, count(*) AS n FROM quarantine GROUP BY reason ORDER BY n DESC"))  # noqa: F821

# COMMAND ----------

# MAGIC %md ## 2. Score and select
# MAGIC Scores go to `image_scores`, `sample_scores`, `paragraph_scores`; the recipe's SQL predicates
# MAGIC decide what goes to `curated_items`, and `drops` names the first rule that failed each dropped item.

# COMMAND ----------

from mmcurate.pipeline import run_select

selection = run_select(lake, params["recipe"])
display(selection.summary.orderBy("order"))  # noqa: F821

# COMMAND ----------

lake.register_views()
why = spark.sql("""
    SELECT s.n_images, s.n_words, round(s.image_text_ratio, 4) AS ratio, d.rule, d.reason
    FROM drops d JOIN sample_scores s USING (sample_id)
    ORDER BY s.n_images DESC LIMIT 50
""")  # noqa: F821
display(why)  # noqa: F821

# COMMAND ----------

# MAGIC %md ## 3. Tune a threshold without recomputing any model
# MAGIC `rescore=False` reuses the score tables: only the SQL predicates run again.

# COMMAND ----------

from mmcurate.select import Recipe, Rule

recipe = Recipe.from_yaml(params["recipe"])
stricter = Recipe(f"{recipe.name}_strict", f"{recipe.version}-strict",
                  tuple(Rule(r.name, r.level, "sharpness >= 200", r.description, r.source) if r.name == "blur" else r
                        for r in recipe.rules))
display(run_select(lake, stricter, rescore=False).summary.orderBy("order"))  # noqa: F821

# COMMAND ----------

# MAGIC %md ## 4. Export WebDataset shards (MINT-1T / NeMo layout)

# COMMAND ----------

from mmcurate.io.webdataset_writer import write_webdataset

manifest = write_webdataset(lake.read("curated_items"), lake.read("images"), params["export"],
                            shard_bytes=512 * 2**20, overwrite=True)
display(manifest)  # noqa: F821
