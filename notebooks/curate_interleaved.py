# Databricks notebook source
# MAGIC %md
# MAGIC # Curate interleaved image-text documents
# MAGIC
# MAGIC Ingest MINT-1T / OBELICS / MMC4 / NeMo data into Delta tables, annotate signal tables (every unique
# MAGIC image decoded once, only new data on a rerun), select with a recipe of SQL predicates (with a ledger
# MAGIC of every drop), mix (shares, repeats, token budgets) and export the training set as WebDataset shards. Set the widgets, then run all. With the defaults it runs on the sample data
# MAGIC shipped inside the package.

# COMMAND ----------

# MAGIC %pip install mmcurate

# COMMAND ----------

from mmcurate.demo import demo_shards

dbutils.widgets.text("lakehouse", "/tmp/mmcurate/lake", "Lakehouse root (path, URI or catalog.schema)")  # noqa: F821
dbutils.widgets.text("input", demo_shards(), "Input files or folder")  # noqa: F821
dbutils.widgets.dropdown("format", "webdataset", ["webdataset", "documents", "mmc4", "nemo_parquet"], "Format")  # noqa: F821
dbutils.widgets.text("recipe", "nemo_default", "Recipe (packaged name or YAML path)")  # noqa: F821
dbutils.widgets.text("mix", "balanced", "Mix (packaged name or YAML path)")  # noqa: F821
dbutils.widgets.text("export", "/tmp/mmcurate/webdataset", "Export folder")  # noqa: F821

params = {name: dbutils.widgets.get(name) for name in ("lakehouse", "input", "format", "recipe", "mix", "export")}  # noqa: F821
params

# COMMAND ----------

# MAGIC %md ## 1. Ingest
# MAGIC One Spark task per input file; bad documents, items and files land in `quarantine` with a reason.

# COMMAND ----------

from mmcurate import steps
from mmcurate.lakehouse import Lakehouse

lake = Lakehouse.open(spark, params["lakehouse"])  # noqa: F821  (native Delta on Databricks)
summary = steps.ingest(lake, params["input"], params["format"], skip_ingested=True)  # files already ingested are skipped
summary

# COMMAND ----------

lake.register_views()
display(spark.sql("SELECT reason, count(*) AS n FROM quarantine GROUP BY reason ORDER BY n DESC"))  # noqa: F821

# COMMAND ----------

# MAGIC %md ## 2. Annotate
# MAGIC The stages the recipe reads write their signal tables (`image_scores`, ...). Only keys without a row
# MAGIC are computed: rerunning after more data is ingested scores just the new images and samples. On-demand
# MAGIC stages (`image_qr`) score only the images the recipe's earlier rules keep (QR after blur).

# COMMAND ----------

annotated = steps.annotate(lake, steps.stages_for(params["recipe"]), recipes=[params["recipe"]])
[a.as_dict() for a in annotated]

# COMMAND ----------

# MAGIC %md ## 3. Select
# MAGIC The recipe's SQL predicates decide what goes to `curated_items`; `drops` names the first rule that
# MAGIC failed each dropped item (and its `detail`, e.g. the score). Selecting reads tables only.

# COMMAND ----------

from mmcurate.select import Recipe, Rule

recipe = Recipe.from_yaml(params["recipe"])
selection = steps.select(lake, recipe)
display(selection.summary.orderBy("order"))  # noqa: F821

# COMMAND ----------

lake.register_views()
why = spark.sql(f"""
    SELECT rule, reason, detail, count(*) AS items FROM drops
    WHERE recipe = '{recipe.name}' GROUP BY 1, 2, 3 ORDER BY items DESC LIMIT 50
""")  # noqa: F821
display(why)  # noqa: F821

# COMMAND ----------

# MAGIC %md ## 4. Tune a threshold without recomputing anything
# MAGIC A stricter recipe is only SQL over the same tables: no image is decoded again.

# COMMAND ----------

stricter = Recipe(f"{recipe.name}_strict", f"{recipe.version}-strict",
                  tuple(Rule(r.name, r.level, "sharpness >= 200", r.description, r.source, "sharpness")
                        if r.name == "blur" else r for r in recipe.rules))
display(steps.select(lake, stricter, curated_table="curated_items_strict").summary.orderBy("order"))  # noqa: F821

# COMMAND ----------

# MAGIC %md ## 5. Mix
# MAGIC What trains and how often: shares by kind (text-only : multimodal), deciles, source and cluster
# MAGIC weights, repeats, token budgets and sequence limits. `mix_samples` says for every sample how many
# MAGIC times it trains (and why not, when 0); `mix_report` sums it per bucket, before and after.

# COMMAND ----------

from mmcurate.mixing import Mix

mix = Mix.from_yaml(params["mix"])
mixed = steps.mix(lake, mix)
display(mixed.report.orderBy("dimension", "bucket"))  # noqa: F821

# COMMAND ----------

# MAGIC %md ## 6. Export the training set (MINT-1T / NeMo WebDataset layout)
# MAGIC Repeats become copies, shuffled across and within shards; `manifest.json` beside the shards holds the
# MAGIC lineage (recipe, mix, table versions, token totals) and `lineage/` maps each sample to its source.

# COMMAND ----------

manifest = steps.export(lake, params["export"], mix=mix.name, shard_bytes=512 * 2**20, overwrite=True)
display(manifest)  # noqa: F821
