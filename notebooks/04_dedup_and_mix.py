# Databricks notebook source
# MAGIC %md
# MAGIC # 04 · Inspect dedup clusters and mix buckets
# MAGIC Exact copies (images shared across documents, repeated paragraphs), what dedup dropped and kept,
# MAGIC and how a mix weighs what trains: samples, tokens and repeats per bucket, before and after.

# COMMAND ----------

dbutils.widgets.text("lakehouse", "/tmp/mmcurate-demo/lake", "Lakehouse root")  # noqa: F821
dbutils.widgets.text("mix", "balanced", "Mix")  # noqa: F821

from mmcurate.lakehouse import Lakehouse

lake = Lakehouse.open(spark, dbutils.widgets.get("lakehouse"))  # noqa: F821
lake.register_views()
mix_name = dbutils.widgets.get("mix")  # noqa: F821

# COMMAND ----------

# MAGIC %sql
# MAGIC -- image copy clusters: one row per image shown by more than one document
# MAGIC SELECT image_id, image_documents, image_occurrences, image_first_sample FROM image_copies
# MAGIC WHERE image_documents > 1 ORDER BY image_documents DESC LIMIT 20

# COMMAND ----------

# MAGIC %sql
# MAGIC -- repeated paragraphs: the copies dedup dropped, with the document whose copy was kept
# MAGIC SELECT d.rule, d.reason, count(*) AS items, count(DISTINCT d.sample_id) AS documents
# MAGIC FROM drops d WHERE d.recipe = 'dedup_exact' GROUP BY d.rule, d.reason ORDER BY items DESC

# COMMAND ----------

# MAGIC %sql
# MAGIC -- one paragraph cluster in full: its text and every document holding it
# MAGIC WITH dup AS (SELECT sample_id, position FROM drops WHERE recipe = 'dedup_exact' AND rule = 'duplicate_paragraph' LIMIT 1)
# MAGIC SELECT i.sample_id, i.position, left(i.text_content, 120) AS text
# MAGIC FROM items i JOIN items t ON i.text_content = t.text_content JOIN dup ON t.sample_id = dup.sample_id AND t.position = dup.position
# MAGIC WHERE i.modality = 'text' ORDER BY i.sample_id

# COMMAND ----------

# MAGIC %md ## The mix: buckets before and after, and what each sample trains

# COMMAND ----------

display(spark.sql(f"SELECT * FROM mix_report WHERE mix = '{mix_name}' ORDER BY dimension, bucket"))  # noqa: F821

# COMMAND ----------

display(spark.sql(f"""
    SELECT kind, repeats, count(*) AS samples, sum(tokens) AS tokens, first(reason) AS reason
    FROM mix_samples WHERE mix = '{mix_name}' GROUP BY kind, repeats ORDER BY kind, repeats
"""))  # noqa: F821
