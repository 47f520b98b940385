# Databricks notebook source
# MAGIC %md
# MAGIC # 02 · Tune a threshold without rescoring
# MAGIC A score's histogram, what a rule would drop at each threshold, then a select with the chosen one.
# MAGIC Selecting is SQL over the signal tables: the tuned score is not computed again. On-demand scores that
# MAGIC later rules read (QR after blur) exist only for what the earlier rules kept, so a looser threshold
# MAGIC first scores just the images it lets through; a stricter one computes nothing.

# COMMAND ----------

dbutils.widgets.text("lakehouse", "/tmp/mmcurate-demo/lake", "Lakehouse root")  # noqa: F821
dbutils.widgets.text("recipe", "nemo_default", "Recipe to start from")  # noqa: F821
dbutils.widgets.text("rule", "blur", "Rule to tune")  # noqa: F821
dbutils.widgets.text("column", "sharpness", "Score it reads")  # noqa: F821
dbutils.widgets.text("thresholds", "25,50,100,200,400,800", "Thresholds to compare (keep iff score >= t)")  # noqa: F821

from pyspark.sql import functions as F

from mmcurate import steps
from mmcurate.lakehouse import Lakehouse
from mmcurate.select import Recipe, Rule

lake = Lakehouse.open(spark, dbutils.widgets.get("lakehouse"))  # noqa: F821
recipe = Recipe.from_yaml(dbutils.widgets.get("recipe"))
rule_name, column = dbutils.widgets.get("rule"), dbutils.widgets.get("column")  # noqa: F821
thresholds = [float(t) for t in dbutils.widgets.get("thresholds").split(",")]  # noqa: F821
table = next(t for t in steps.signal_tables(lake, recipe) if column in t.df.columns)
scores_version = lake.version(table.name)
table.name

# COMMAND ----------

# MAGIC %md ## The score's distribution (log-spaced bins, counted in Spark)

# COMMAND ----------

scored = table.df.where(F.col(column).isNotNull() & ~F.isnan(column))
bins = scored.groupBy(F.floor(F.log2(F.greatest(F.col(column), F.lit(1.0)))).alias("log2_bin")) \
    .agg(F.count(F.lit(1)).alias("images"), F.min(column).alias("from"), F.max(column).alias("to")) \
    .orderBy("log2_bin")
display(bins)  # noqa: F821

# COMMAND ----------

# MAGIC %md ## What the rule would drop at each threshold (one pass over the scores)

# COMMAND ----------

at = scored.agg(*[F.count_if(F.col(column) < t).alias(f"below_{t:g}") for t in thresholds]).first().asDict()
what_if = spark.createDataFrame([(t, at[f"below_{t:g}"]) for t in thresholds],  # noqa: F821
                                "threshold double, images_dropped long")
display(what_if)  # noqa: F821

# COMMAND ----------

# MAGIC %md ## Apply the chosen threshold: a new recipe version, selected into its own table

# COMMAND ----------

dbutils.widgets.text("chosen", "200", "Chosen threshold")  # noqa: F821
chosen = float(dbutils.widgets.get("chosen"))  # noqa: F821
tuned = Recipe(f"{recipe.name}_tuned", f"{recipe.version}+{rule_name}{chosen:g}", tuple(
    Rule(r.name, r.level, f"{column} >= {chosen}", r.description, r.source, column) if r.name == rule_name else r
    for r in recipe.rules))
annotated = steps.annotate(lake, steps.stages_for(tuned), recipes=[tuned])  # on-demand scores it newly needs
selection = steps.select(lake, tuned, curated_table="curated_items_tuned")
display(selection.summary.orderBy("order"))  # noqa: F821
assert lake.version(table.name) == scores_version  # nothing was rescored
