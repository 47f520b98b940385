# Databricks notebook source
# MAGIC %md
# MAGIC # 01 · Explore a lakehouse with SQL
# MAGIC Every table of an mmcurate lakehouse is a Delta table: items (one row per text, image or metadata row),
# MAGIC images (stored once per sha256), quarantine, the signal tables, curated items and the `drops` ledger.
# MAGIC Point the widget at a lakehouse (the demo's: `mmcurate demo --out /tmp/mmcurate-demo`), run all.

# COMMAND ----------

dbutils.widgets.text("lakehouse", "/tmp/mmcurate-demo/lake", "Lakehouse root (path, URI or catalog.schema)")  # noqa: F821

from mmcurate.lakehouse import Lakehouse

lake = Lakehouse.open(spark, dbutils.widgets.get("lakehouse"))  # noqa: F821
tables = lake.register_views()  # path lakehouses: temporary views; catalog ones: USE catalog.schema
{name: lake.version(name) for name in tables}

# COMMAND ----------

# MAGIC %sql
# MAGIC -- what came in: documents, and items per modality
# MAGIC SELECT modality, count(*) AS items, count(DISTINCT sample_id) AS documents FROM items GROUP BY modality ORDER BY modality

# COMMAND ----------

# MAGIC %sql
# MAGIC -- what could not come in, and why
# MAGIC SELECT stage, reason, count(*) AS n, first(detail) AS example FROM quarantine GROUP BY stage, reason ORDER BY n DESC

# COMMAND ----------

# MAGIC %sql
# MAGIC -- image items without bytes (a missing member, a URL to fetch): why
# MAGIC SELECT substring_index(materialize_error, ':', 1) AS reason, count(*) AS items
# MAGIC FROM items WHERE modality = 'image' AND image_id IS NULL GROUP BY 1 ORDER BY items DESC

# COMMAND ----------

# MAGIC %sql
# MAGIC -- every dropped item, by recipe and the rule that dropped it
# MAGIC SELECT recipe, rule, reason, count(*) AS items, count(DISTINCT sample_id) AS documents
# MAGIC FROM drops GROUP BY recipe, rule, reason ORDER BY recipe, items DESC

# COMMAND ----------

# MAGIC %sql
# MAGIC -- the most shared images (logos, icons): how many documents show each
# MAGIC SELECT i.image_id, count(DISTINCT i.sample_id) AS documents, first(s.width) AS width, first(s.height) AS height,
# MAGIC        round(first(s.sharpness), 1) AS sharpness
# MAGIC FROM items i JOIN image_scores s USING (image_id)
# MAGIC GROUP BY i.image_id ORDER BY documents DESC LIMIT 10

# COMMAND ----------

# MAGIC %md Each commit records the step that made it (recipe, versions read): the history of `curated_items`.

# COMMAND ----------

display(lake.history("curated_items").select("version", "timestamp", "operation"))  # noqa: F821
