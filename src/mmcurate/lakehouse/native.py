"""Delta through the session's own connector (Databricks, or a cluster with the delta-spark jars).

The root is either a storage path (`s3://bucket/lake`, `/Volumes/...`) or a catalog schema
(`main.curation`), in which case tables are catalog tables `main.curation.items`.
"""
from __future__ import annotations

import json
from typing import Optional

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from mmcurate.lakehouse.base import (
    CommitConflictError,
    COMMIT_INFO_KEY,
    OptimizeResult,
    SchemaMismatchError,
    TableExistsError,
    TableNotFoundError,
    WriteResult,
    decode_commit_info,
    encode_commit_info,
    replace_where_sql,
    schema_differences,
)
from mmcurate.spark import is_connect, session_conf

OPTIMIZE_MAX_FILE_SIZE = "spark.databricks.delta.optimize.maxFileSize"
"""The Delta setting OPTIMIZE bins files up to (bytes)."""


def delta_log_folders(spark: SparkSession, root: str) -> list[str]:
    """Names of the folders directly under `root` that hold a `_delta_log`, listed by the Spark server
    (a path-only `binaryFile` scan reads no file's bytes): no JVM gateway, so it works through Connect."""
    try:
        found = (spark.read.format("binaryFile").load(f"{root.rstrip('/')}/*/_delta_log")
                 .select(F.element_at(F.split("path", "/"), -3).alias("name")).distinct().collect())
    except Exception as e:  # a root (or glob) that matches nothing
        if "PATH_NOT_FOUND" in str(e) or "Path does not exist" in str(e):
            return []
        raise
    return sorted(row.name for row in found)


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

    def scratch(self, purpose: str) -> None:
        return None  # steps keep intermediate rows in Spark's cache here

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
        return sorted(n for n in delta_log_folders(self.spark, self.root) if self.exists(n))

    def version(self, table: str) -> int:
        return self._delta_table(table).history(1).select("version").first()[0]

    def read(self, table: str, version: Optional[int] = None) -> DataFrame:
        if not self.exists(table):
            raise TableNotFoundError(f"no Delta table {table!r} at {self.location(table)}")
        reader = self.spark.read.format("delta")
        if version is not None:
            reader = reader.option("versionAsOf", version)
        return reader.table(self.location(table)) if self.catalog else reader.load(self.location(table))

    def history(self, table: str, limit: Optional[int] = None) -> DataFrame:
        h = self._delta_table(table).history(limit)
        return h.select(
            "version",
            "operation",
            F.to_json("operationParameters").alias("operation_parameters"),
            F.to_json("operationMetrics").alias("operation_metrics"),
            F.col("userMetadata").alias("user_metadata"),
            F.col("engineInfo").alias("engine"),
            "timestamp",
        ).orderBy(F.desc("version"))

    def commit_infos(self, table: str, limit: Optional[int] = None) -> list[tuple[int, dict]]:
        rows = self._delta_table(table).history(limit).select("version", "userMetadata").collect()  # a row a commit
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

    def optimize(self, table: str, target_size: Optional[int]) -> OptimizeResult:
        """Delta's OPTIMIZE (bin-packing compaction); `target_size` is its maximum file size for this call only."""
        settings = {OPTIMIZE_MAX_FILE_SIZE: str(target_size)} if target_size else {}
        with session_conf(self.spark, settings):
            metrics = self._delta_table(table).optimize().executeCompaction().select("metrics.*").first()
        return OptimizeResult(table, self.version(table), metrics.numFilesRemoved, metrics.numFilesAdded,
                              metrics.filesRemoved.totalSize or 0, metrics.filesAdded.totalSize or 0)

    def write(
        self,
        df: DataFrame,
        table: str,
        mode: str = "append",
        app_id: Optional[str] = None,
        app_version: Optional[int] = None,
        replace_where: Optional[dict] = None,
        commit_info: Optional[dict] = None,
        expected_version: Optional[int] = None,
    ) -> WriteResult:
        exists = self.exists(table)
        if expected_version is not None and (self.version(table) if exists else -1) != expected_version:
            raise CommitConflictError(f"{table!r} changed since version {expected_version} was read; read it again")
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


    def adopt(self, files: list[str], table: str, schema: T.StructType, app_id: Optional[str] = None,
              app_version: Optional[int] = None, commit_info: Optional[dict] = None) -> WriteResult:
        """Delta's writer owns the table's files here: the rows are read and written (the files stay)."""
        return self.write(self.spark.read.schema(schema).parquet(*files), table, "append", app_id, app_version,
                          None, commit_info)


_PROBE = "/nonexistent/mmcurate-delta-probe"
_NO_SOURCE = ("DATA_SOURCE_NOT_FOUND", "Failed to find data source", "ClassNotFoundException")


def delta_unavailable(spark: SparkSession) -> Optional[str]:
    """Why the session's Spark *server* cannot run the native backend, or None when it can.

    The client's `delta` package says nothing about the server: through Spark Connect a server
    without Delta fails only when a plan reaches it (`NO_HANDLER_FOR_EXTENSION ... DeltaRelation`).
    So this asks the server: `.schema` makes it analyse a `format("delta")` read of a path that does
    not exist (no table is touched; Connect analyses lazily, classic at `load`), and on Connect a
    `DeltaTable.isDeltaTable` on that path checks that Delta's Connect plugin is installed.
    """
    try:
        spark.read.format("delta").load(_PROBE).schema
    except Exception as e:  # the error's text is the only portable signal (classic and Connect)
        if any(marker in str(e) for marker in _NO_SOURCE):
            return "the Spark server has no Delta data source (format('delta') does not resolve there)"
    if is_connect(spark):
        try:
            from delta.tables import DeltaTable

            DeltaTable.isDeltaTable(spark, _PROBE)
        except ImportError as e:
            return f"the client lacks delta-spark's Spark Connect support ({e})"
        except Exception as e:  # any other refusal (a path policy) came from a server that handles Delta
            if "NO_HANDLER_FOR_EXTENSION" in str(e):
                return ("the Spark Connect server does not serve Delta's Connect API (`delta.tables`): start it with "
                        "the Delta Connect server jars and plugins (Delta Lake's 'Delta Connect' docs)")
    return None


def has_delta_connector(spark: SparkSession) -> bool:
    """True when the session's Spark server can run the native backend (see `delta_unavailable`)."""
    return delta_unavailable(spark) is None
