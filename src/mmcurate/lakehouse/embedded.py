"""Real Delta tables without the Delta Spark connector: Spark's Parquet writer/reader move the data,
delta-rs keeps the transaction log.

Write: Spark writes part files into a fresh folder inside the table directory (invisible to Delta
readers until committed), then the driver commits their `add` actions, with statistics from the
Parquet footers, in one atomic delta-rs transaction. Read: the active files of a version come from
delta-rs and go to `spark.read.parquet` with the table's schema, so column pruning and predicate
push-down work as on any Parquet source.
"""
from __future__ import annotations

import json
import os
import time
import uuid
import warnings
from typing import Optional
from urllib.parse import urlparse

import pyarrow as pa
import pyarrow.fs as pafs
from deltalake import CommitProperties, DeltaTable, PostCommitHookProperties, Schema, Transaction
from deltalake.exceptions import CommitFailedError, DeltaError, TableNotFoundError as _DeltaNotFound
from deltalake.transaction import RemoveAction, create_table_with_add_actions
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.pandas.types import from_arrow_schema, to_arrow_schema

from mmcurate.lakehouse.base import (
    COMMIT_INFO_KEY,
    CommitConflictError,
    LakehouseError,
    OptimizeResult,
    SchemaMismatchError,
    TableExistsError,
    TableNotFoundError,
    UnsupportedTableError,
    WriteResult,
    decode_commit_info,
    encode_commit_info,
    has_no_rows,
    matches,
    schema_differences,
)
from mmcurate.lakehouse.stats import add_actions
from mmcurate.spark import session_conf

COMMIT_METADATA = {"engine": "mmcurate-embedded"}
"""Recorded in every commit this backend makes."""

POST_COMMIT = PostCommitHookProperties(create_checkpoint=False)
"""delta-rs' own checkpoint hook (its own interval and counting) stays off: `_checkpoint_if_due` checkpoints as
Delta's writers do. Its cleanup of expired log files stays as the table configures it."""

WRITE_CONF = {"spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS"}
"""Set for the duration of each write: Delta readers expect INT64 micros, Spark's default is INT96."""

UNSUPPORTED_READER_FEATURES = {"deletionVectors", "columnMapping", "v2Checkpoint"}
"""Features whose semantics a plain Parquet read of the active files would get wrong."""

CHECKPOINT_INTERVAL = 10
"""Delta's default `delta.checkpointInterval`: commits between checkpoints, so loading a version replays
at most that many JSON commits after the newest checkpoint instead of the whole log."""


class EmbeddedBackend:
    """Delta tables under a root directory or object-store URI, written and read without the JVM connector."""

    name = "embedded"

    def __init__(self, spark: SparkSession, root: str, storage_options: Optional[dict] = None):
        self.spark = spark
        self.root = _absolute(root)
        self.storage_options = storage_options or None
        self.fs, self.fs_root = pafs.FileSystem.from_uri(self.root)

    # -- naming ---------------------------------------------------------------------------------
    def location(self, table: str) -> str:
        return f"{self.root.rstrip('/')}/{table}"

    def scratch(self, purpose: str) -> str:
        return f"{self.root.rstrip('/')}/_scratch/{purpose}"  # the driver's pyarrow reaches the root: so do executors

    def _fs_path(self, table: str) -> str:
        return f"{self.fs_root.rstrip('/')}/{table}"

    # -- catalogue ------------------------------------------------------------------------------
    def exists(self, table: str) -> bool:
        return DeltaTable.is_deltatable(self.location(table), storage_options=self.storage_options)

    def tables(self) -> list[str]:
        if self.fs.get_file_info(self.fs_root).type != pafs.FileType.Directory:
            return []
        entries = self.fs.get_file_info(pafs.FileSelector(self.fs_root))
        return sorted(
            e.base_name
            for e in entries
            if e.type == pafs.FileType.Directory and self.exists(e.base_name)
        )

    def _load(self, table: str, version: Optional[int] = None) -> Optional[DeltaTable]:
        try:
            return DeltaTable(self.location(table), version=version, storage_options=self.storage_options)
        except _DeltaNotFound:
            return None
        except DeltaError as e:
            if version is not None and self.exists(table):
                raise TableNotFoundError(f"table {table!r} has no version {version}: {e}") from e
            raise

    def _require(self, table: str, version: Optional[int] = None) -> DeltaTable:
        dt = self._load(table, version)
        if dt is None:
            raise TableNotFoundError(f"no Delta table {table!r} at {self.location(table)}")
        return dt

    def version(self, table: str) -> int:
        return self._require(table).version()

    # -- read -----------------------------------------------------------------------------------
    def read(self, table: str, version: Optional[int] = None) -> DataFrame:
        dt = self._require(table, version)
        _check_readable(table, dt)
        schema = spark_schema(dt)
        actions = pa.table(dt.get_add_actions(flatten=False))
        paths = [self._spark_path(table, p) for p in actions.column("path").to_pylist()]
        if not paths:
            return self.spark.createDataFrame([], schema)
        return self.spark.read.schema(schema).parquet(*paths)

    def _spark_path(self, table: str, relative: str) -> str:
        return relative if "://" in relative else f"{self.location(table)}/{relative}"

    def history(self, table: str, limit: Optional[int] = None) -> DataFrame:
        rows = [
            (
                h["version"],
                h.get("timestamp"),
                h.get("operation"),
                json.dumps(h.get("operationParameters") or {}),
                json.dumps(h.get("operationMetrics") or {}),
                h.get(COMMIT_INFO_KEY) or json.dumps(h.get("userMetadata") or {}),
                h.get("engineInfo") or h.get("clientVersion"),
            )
            for h in self._require(table).history(limit)
        ]
        schema = (
            "version long, timestamp_ms long, operation string, operation_parameters string, "
            "operation_metrics string, user_metadata string, engine string"
        )
        return (
            self.spark.createDataFrame(rows, schema)
            .withColumn("timestamp", F.timestamp_millis("timestamp_ms"))
            .drop("timestamp_ms")
            .orderBy(F.desc("version"))
        )

    def commit_infos(self, table: str, limit: Optional[int] = None) -> list[tuple[int, dict]]:
        history = self._require(table).history(limit)
        found = [(h["version"], decode_commit_info(h.get(COMMIT_INFO_KEY))) for h in history]
        return sorted(((v, info) for v, info in found if info is not None), key=lambda p: -p[0])

    # -- maintenance ----------------------------------------------------------------------------
    def vacuum(self, table: str, retention_hours: int) -> list[str]:
        """Delete files no version newer than `retention_hours` needs, and the write folders (`data-*`) untouched
        that long which then hold no data file: a killed driver's, or one whose files were all replaced."""
        dt = self._require(table)
        stale = self._folders_older_than(table, retention_hours)  # before vacuum's deletions touch their mtimes
        removed = dt.vacuum(retention_hours=retention_hours, dry_run=False, enforce_retention_duration=False,
                            full=True, post_commithook_properties=POST_COMMIT)
        base = self._fs_path(table).rstrip("/") + "/"
        holding = {  # folders with a data file vacuum kept: some version within the retention still reads it
            info.path[len(base):].split("/", 1)[0]
            for info in self.fs.get_file_info(pafs.FileSelector(base, recursive=True))
            if info.is_file and info.base_name.endswith(".parquet") and info.path[len(base):].count("/") == 1
        }
        for name in sorted(stale - holding):
            self.fs.delete_dir(base + name)
            removed.append(name + "/")
        self._checkpoint_if_due(table, dt)  # vacuum commits too (VACUUM START/END)
        return sorted(removed)

    def _folders_older_than(self, table: str, hours: float) -> set[str]:
        cutoff_ns = (time.time() - hours * 3600) * 1e9
        return {
            info.base_name
            for info in self.fs.get_file_info(pafs.FileSelector(self._fs_path(table)))
            if info.type == pafs.FileType.Directory and info.base_name.startswith("data-")
            and info.mtime_ns is not None and info.mtime_ns < cutoff_ns
        }

    def optimize(self, table: str, target_size: Optional[int]) -> OptimizeResult:
        """delta-rs' compaction: small files rewritten into files of about `target_size` bytes in one commit
        that changes no data (Parquet with statistics, timestamps as INT64 micros, as Spark reads them)."""
        dt = self._require(table)
        _check_readable(table, dt)
        metrics = dt.optimize.compact(target_size=target_size, post_commithook_properties=POST_COMMIT,
                                      commit_properties=CommitProperties(custom_metadata=COMMIT_METADATA))
        self._checkpoint_if_due(table, dt)
        return OptimizeResult(table, dt.version(), metrics["numFilesRemoved"], metrics["numFilesAdded"],
                              json.loads(metrics["filesRemoved"])["totalSize"],
                              json.loads(metrics["filesAdded"])["totalSize"])

    def _checkpoint_if_due(self, table: str, dt: DeltaTable) -> None:
        """Checkpoint `dt` (at the version just committed) once the log passed a multiple of the table's
        `delta.checkpointInterval` since its newest checkpoint, as Delta's writers do; a version another commit
        (vacuum's, another writer's) took is caught up by the next. A failed checkpoint only warns: the commit
        stands, and readers replay the JSON commits as before."""
        interval = int((dt.metadata().configuration or {}).get("delta.checkpointInterval") or CHECKPOINT_INTERVAL)
        if dt.version() // interval <= self._last_checkpoint(table) // interval:
            return
        try:
            dt.create_checkpoint()
        except (DeltaError, OSError) as e:
            warnings.warn(f"mmcurate: checkpoint of {table!r} at version {dt.version()} failed: {e}", stacklevel=3)

    def _last_checkpoint(self, table: str) -> int:
        """The version of the table's newest checkpoint (its `_delta_log/_last_checkpoint`), 0 when it has none."""
        try:
            with self.fs.open_input_stream(f"{self._fs_path(table)}/_delta_log/_last_checkpoint") as f:
                return json.loads(f.read())["version"]
        except FileNotFoundError:
            return 0

    # -- write ----------------------------------------------------------------------------------
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
        dt = self._load(table)
        empty = has_no_rows(df)  # known before df is reordered to the table's columns
        if expected_version is not None and (dt.version() if dt is not None else -1) != expected_version:
            raise CommitConflictError(f"{table!r} changed since version {expected_version} was read; read it again")
        read_version, removes = None, []
        if replace_where and dt is not None:
            read_version = dt.version()
            removes = _files_holding_only(dt, replace_where)
            if removes is not None and not schema_differences(spark_schema(dt), df.schema):
                mode = "append"  # the replaced rows fill whole files: remove those, add df's, one commit
            else:  # rows mixed within files, or a new schema: rewrite the other rows with df, one overwrite
                removes = []
                kept = self.read(table, read_version).where(~F.coalesce(matches(replace_where), F.lit(False)))
                df = kept.unionByName(df, allowMissingColumns=True)
        if dt is not None:
            if mode == "error":
                raise TableExistsError(f"table {table!r} already exists at {self.location(table)}")
            if mode == "ignore":
                return WriteResult(table, dt.version(), skipped=True, reason="table exists")
            done = _committed_already(table, dt, app_id, app_version)
            if done is not None:
                return done
            if mode == "append":
                table_schema = _append_schema(table, dt, df.schema)
                df = df.select(*[f"`{n}`" for n in table_schema.fieldNames()])
                arrow_schema = to_arrow_schema(table_schema, timezone="UTC")
            else:
                arrow_schema = to_arrow_schema(df.schema, timezone="UTC")
        else:
            arrow_schema = to_arrow_schema(df.schema, timezone="UTC")

        def spark_writes(folder: str) -> list[str]:
            if empty:
                return []
            with session_conf(self.spark, WRITE_CONF):
                df.write.mode("error").parquet(f"{self.location(table)}/{folder}")
            return self._written_files(f"{self.location(table)}/{folder}", f"{self._fs_path(table)}/{folder}")

        return self._commit_files(table, dt, spark_writes, mode, arrow_schema, commit_info, app_id, app_version,
                                  read_version, removes, expected_version)

    def adopt(self, files: list[str], table: str, schema: T.StructType, app_id: Optional[str] = None,
              app_version: Optional[int] = None, commit_info: Optional[dict] = None) -> WriteResult:
        """Append Parquet files of `schema` that lie under the root (a step's scratch folder) by moving them into
        the table: no Spark job, no copy. An append of another schema raises SchemaMismatchError and leaves them."""
        dt = self._load(table)
        if dt is not None:
            done = _committed_already(table, dt, app_id, app_version)
            if done is not None:
                return done
            schema = _append_schema(table, dt, schema)  # the files are read by column name: the table's order stays
        sources = [self._fs_path_of(f) for f in files]

        def move(folder: str) -> list[str]:
            target = f"{self._fs_path(table)}/{folder}"
            self.fs.create_dir(target, recursive=True)
            moved = []
            for source in sources:
                moved.append(f"{target}/{source.rsplit('/', 1)[-1]}")
                self.fs.move(source, moved[-1])
            return moved

        return self._commit_files(table, dt, move, "append", to_arrow_schema(schema, timezone="UTC"), commit_info,
                                  app_id, app_version)

    def _fs_path_of(self, location: str) -> str:
        """The filesystem path of a location under the root (as `scratch` names them)."""
        root = self.root.rstrip("/")
        if not location.startswith(root + "/"):
            raise ValueError(f"{location} is not under the lakehouse root {root}")
        return self.fs_root.rstrip("/") + location[len(root):]

    def _commit_files(self, table: str, dt: Optional[DeltaTable], produce, mode: str, arrow_schema: pa.Schema,
                      commit_info: Optional[dict], app_id: Optional[str], app_version: Optional[int],
                      read_version: Optional[int] = None, removes: Optional[list] = None,
                      expected_version: Optional[int] = None) -> WriteResult:
        """Commit the files `produce(folder)` puts in a new folder of the table (and `removes`) in one transaction;
        on failure the folder goes and the table stays as it was."""
        folder = f"data-{uuid.uuid4().hex[:16]}"
        staging_fs = f"{self._fs_path(table)}/{folder}"
        removes = removes or []
        try:
            actions, rows = add_actions(self.fs, self._fs_path(table), produce(folder))
            metadata = dict(COMMIT_METADATA)
            if commit_info:
                metadata[COMMIT_INFO_KEY] = encode_commit_info(commit_info)
            if read_version is not None and self._require(table).version() != read_version:
                raise CommitConflictError(f"{table!r} changed while its rows were being replaced; run again")
            properties = CommitProperties(  # a write computed from a version must not land on a later one
                custom_metadata=metadata,
                max_commit_retries=0 if expected_version is not None else None,
                app_transactions=[Transaction(app_id, app_version)] if app_id is not None else None,
            )
            version = self._commit(table, dt, actions + removes, mode, arrow_schema, properties,
                                   strict=expected_version is not None)
        except BaseException as e:
            self._remove_quietly(staging_fs)
            if isinstance(e, Exception) and not isinstance(e, CommitConflictError):
                version = "absent" if dt is None else f"at version {dt.version()}"
                e.add_note(f"mmcurate: writing table {table!r} ({self.location(table)}) failed and nothing was "
                           f"committed: the table stays {version}, readable as before.")
            raise
        if not actions:
            self._remove_quietly(staging_fs)
        if dt is not None:  # _commit brought it to the committed version
            self._checkpoint_if_due(table, dt)
        return WriteResult(table, version, files_added=len(actions), rows_added=rows)

    def _written_files(self, location: str, staging_fs: str) -> list[str]:
        """The Parquet files Spark just wrote to `location`, listed by this (the driver's) process, which commits
        them; an error saying why when it cannot see them (a Spark Connect server on other storage)."""
        try:
            found = self.fs.get_file_info(pafs.FileSelector(staging_fs))
        except FileNotFoundError as e:
            raise LakehouseError(
                f"Spark wrote {location}, but this process cannot see it: the embedded backend commits the Delta "
                "log from the driver (the client, under Spark Connect), so it must reach the storage the Spark "
                "executors write to (the same disk, or an object store both reach by the same URI); otherwise "
                "use backend='native' on a server with Delta") from e
        return sorted(info.path for info in found if info.is_file and info.base_name.endswith(".parquet"))

    def _commit(self, table, dt, actions, mode, arrow_schema, properties, strict: bool = False) -> int:
        """Commit the actions (creating the table if it has none); strict: a table another writer created
        meanwhile is a conflict, not something to append to."""
        if dt is None:
            try:
                create_table_with_add_actions(
                    self.location(table),
                    Schema.from_arrow(arrow_schema),
                    actions,
                    mode="error",
                    commit_properties=properties,
                    post_commithook_properties=POST_COMMIT,
                    storage_options=self.storage_options,
                )
                return 0
            except (DeltaError, CommitFailedError) as e:
                dt = self._load(table)
                if dt is None:
                    raise
                if strict:
                    raise CommitConflictError(f"{table!r} was created by another writer meanwhile") from e
                if mode == "error":
                    raise TableExistsError(f"table {table!r} was created by another writer") from e
                if mode == "ignore":
                    return dt.version()
        try:
            dt.create_write_transaction(actions, mode=mode, schema=arrow_schema, commit_properties=properties,
                                        post_commithook_properties=POST_COMMIT)
        except CommitFailedError as e:
            raise CommitConflictError(f"commit to {table!r} conflicted with a concurrent writer: {e}") from e
        dt.update_incremental()
        return dt.version()

    def _remove_quietly(self, path: str) -> None:
        try:
            self.fs.delete_dir(path)
        except (OSError, FileNotFoundError):
            pass


def _committed_already(table: str, dt: DeltaTable, app_id: Optional[str],
                       app_version: Optional[int]) -> Optional[WriteResult]:
    """The skipped result of a write whose application transaction the table has seen already, else None."""
    done = dt.transaction_version(app_id) if app_id is not None else None
    if done is None or done < app_version:
        return None
    reason = f"{app_id} version {app_version} already committed (table has {done})"
    return WriteResult(table, dt.version(), skipped=True, reason=reason)


def _append_schema(table: str, dt: DeltaTable, incoming: T.StructType) -> T.StructType:
    """The table's schema, when rows of `incoming` may be appended to it; else SchemaMismatchError naming why."""
    table_schema = spark_schema(dt)
    diffs = schema_differences(table_schema, incoming)
    if diffs:
        raise SchemaMismatchError(f"cannot append to {table!r}: " + "; ".join(diffs)
                                  + ". Overwrite the table to change its schema.")
    return table_schema


def _files_holding_only(dt: DeltaTable, values: dict) -> Optional[list[RemoveAction]]:
    """Remove actions for the files whose statistics show every row matching `values`; None when some file
    may hold matching and other rows alike (or lacks the statistics to tell)."""
    files = pa.table(dt.get_add_actions(flatten=True)).to_pylist()
    removes, now = [], int(time.time() * 1000)
    for f in files:
        bounds = [(f.get(f"min.{c}"), f.get(f"max.{c}"), f.get(f"null_count.{c}"), v) for c, v in values.items()]
        if all(lo == hi == v and nulls == 0 for lo, hi, nulls, v in bounds):
            removes.append(RemoveAction(path=f["path"], data_change=True, deletion_timestamp=now, size=f["size_bytes"]))
        elif not any(lo is not None and hi is not None and (v < lo or v > hi) for lo, hi, _, v in bounds):
            return None
    return removes


def spark_schema(dt: DeltaTable) -> T.StructType:
    """The table's schema as a Spark StructType."""
    return from_arrow_schema(pa.schema(dt.schema().to_arrow()))


def _check_readable(table: str, dt: DeltaTable) -> None:
    protocol = dt.protocol()
    features = set(protocol.reader_features or []) & UNSUPPORTED_READER_FEATURES
    mapping = (dt.metadata().configuration or {}).get("delta.columnMapping.mode", "none")
    if mapping != "none":
        features.add("columnMapping")
    if dt.metadata().partition_columns:
        features.add("partitioning")
    if features:
        raise UnsupportedTableError(
            f"table {table!r} uses {sorted(features)}, which the embedded backend cannot read "
            "correctly; read it on a session with the Delta connector (backend='native')"
        )


def _absolute(root: str) -> str:
    """Local paths become absolute; URIs (s3://, abfss://, file://) are kept as given."""
    if urlparse(root).scheme and len(urlparse(root).scheme) > 1:
        return root.rstrip("/")
    return os.path.abspath(os.path.expanduser(root))
