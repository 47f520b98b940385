"""Delta through the session's own connector (Databricks, or a cluster with the delta-spark jars).

The root is either a storage path (`s3://bucket/lake`, `/Volumes/...`) or a catalog schema
(`main.curation`), in which case tables are catalog tables `main.curation.items`.
"""
from __future__ import annotations

import json
from typing import Optional

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from mmcurate.lakehouse.base import (
    COMMIT_INFO_KEY,
    SchemaMismatchError,
    TableExistsError,
    TableNotFoundError,
    WriteResult,
    decode_commit_info,
    encode_commit_info,
    replace_where_sql,
    schema_differences,
)


def is_catalog_name(root: str) -> bool:
    """`catalog.schema` or `schema` (no slash, no scheme) names a catalog location, not a path."""
    return "/" not in root and ":" not in root


class NativeBackend:
    """Tables read and written with `format("delta")`; history and versions from Delta's own API."""

    name = "native"

    def __init__(self, spark: SparkSession, root: str):
        self.spark = spark
        self.root = root.rstrip("/")
        self.catalog = is_catalog_name(self.root)

    def location(self, table: str) -> str:
        return f"{self.root}.{table}" if self.catalog else f"{self.root}/{table}"

    def _delta_table(self, table: str):
        from delta.tables import DeltaTable

        if not self.exists(table):
            raise TableNotFoundError(f"no Delta table {table!r} at {self.location(table)}")
        if self.catalog:
            return DeltaTable.forName(self.spark, self.location(table))
        return DeltaTable.forPath(self.spark, self.location(table))

    def exists(self, table: str) -> bool:
        if self.catalog:
            return self.spark.catalog.tableExists(self.location(table))
        from delta.tables import DeltaTable

        return DeltaTable.isDeltaTable(self.spark, self.location(table))

    def tables(self) -> list[str]:
        if self.catalog:
            return sorted(t.name for t in self.spark.catalog.listTables(self.root))
        jvm = self.spark._jvm
        path = jvm.org.apache.hadoop.fs.Path(self.root)
        fs = path.getFileSystem(self.spark._jsc.hadoopConfiguration())
        if not fs.exists(path):
            return []
        names = [s.getPath().getName() for s in fs.listStatus(path) if s.isDirectory()]
        return sorted(n for n in names if self.exists(n))

    def version(self, table: str) -> int:
        return self._delta_table(table).history(1).select("version").first()[0]

    def read(self, table: str, version: Optional[int] = None) -> DataFrame:
        if not self.exists(table):
            raise TableNotFoundError(f"no Delta table {table!r} at {self.location(table)}")
        reader = self.spark.read.format("delta")
        if version is not None:
            reader = reader.option("versionAsOf", version)
        return reader.table(self.location(table)) if self.catalog else reader.load(self.location(table))

    def history(self, table: str) -> DataFrame:
        h = self._delta_table(table).history()
        return h.select(
            "version",
            "operation",
            F.to_json("operationParameters").alias("operation_parameters"),
            F.to_json("operationMetrics").alias("operation_metrics"),
            F.col("userMetadata").alias("user_metadata"),
            F.col("engineInfo").alias("engine"),
            "timestamp",
        ).orderBy(F.desc("version"))

    def commit_infos(self, table: str) -> list[tuple[int, dict]]:
        rows = self._delta_table(table).history().select("version", "userMetadata").collect()  # one row per commit
        found = []
        for row in rows:
            outer = decode_commit_info(row.userMetadata)
            info = decode_commit_info(outer.get(COMMIT_INFO_KEY)) if outer else None
            if info is not None:
                found.append((row.version, info))
        return sorted(found, key=lambda p: -p[0])

    def vacuum(self, table: str, retention_hours: int) -> list[str]:
        """Delta's VACUUM (the connector enforces its own minimum retention unless configured)."""
        self._delta_table(table).vacuum(retention_hours)
        return []

    def write(
        self,
        df: DataFrame,
        table: str,
        mode: str = "append",
        app_id: Optional[str] = None,
        app_version: Optional[int] = None,
        replace_where: Optional[dict] = None,
        commit_info: Optional[dict] = None,
    ) -> WriteResult:
        exists = self.exists(table)
        if exists and mode == "error":
            raise TableExistsError(f"table {table!r} already exists at {self.location(table)}")
        if exists and mode == "ignore":
            return WriteResult(table, self.version(table), skipped=True, reason="table exists")
        if exists and mode == "append":
            diffs = schema_differences(self.read(table).schema, df.schema)
            if diffs:
                raise SchemaMismatchError(f"cannot append to {table!r}: " + "; ".join(diffs))
        before = self.version(table) if exists else -1
        writer = df.write.format("delta").mode(mode)
        if mode == "overwrite" and replace_where and exists:
            writer = writer.option("replaceWhere", replace_where_sql(replace_where))
        elif mode == "overwrite":
            writer = writer.option("overwriteSchema", "true")
        if commit_info:
            writer = writer.option("userMetadata", json.dumps({COMMIT_INFO_KEY: encode_commit_info(commit_info)}))
        if app_id is not None:
            writer = writer.option("txnAppId", app_id).option("txnVersion", app_version)
        if self.catalog:
            writer.saveAsTable(self.location(table))
        else:
            writer.save(self.location(table))
        after = self.version(table)
        if after == before:
            return WriteResult(table, after, skipped=True, reason=f"{app_id} version {app_version} already committed")
        return WriteResult(table, after)


def has_delta_connector(spark: SparkSession) -> bool:
    """True when `format("delta")` resolves in this session (probed without touching any table)."""
    probe = "/nonexistent/mmcurate-delta-probe"
    try:
        spark.read.format("delta").load(probe)
    except Exception as e:  # the error's text is the only portable signal (classic and Connect)
        text = str(e)
        return not ("DATA_SOURCE_NOT_FOUND" in text or "Failed to find data source" in text
                    or "ClassNotFoundException" in text)
    return True
