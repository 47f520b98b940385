"""The lakehouse: named Delta tables under one root, with the same calls on every backend.

>>> lake = Lakehouse.open(spark, "/data/lake")          # embedded here, native on Databricks
>>> lake.write(items, "items", mode="overwrite")
>>> lake.read("items", version=0).count()
>>> lake.register_views(); spark.sql("SELECT modality, count(*) FROM items GROUP BY 1").show()
"""
from __future__ import annotations

import re
from dataclasses import replace
from typing import Any, Callable, Mapping, Optional, Sequence

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T

from mmcurate.lakehouse.base import (
    BackendUnavailableError,
    CommitConflictError,
    LakehouseError,
    OptimizeResult,
    SchemaMismatchError,
    TableExistsError,
    TableNotFoundError,
    UnsupportedTableError,
    WriteResult,
    check_app_transaction,
    check_mode,
    has_no_rows,
    no_rows,
)
from mmcurate.lakehouse.embedded import EmbeddedBackend
from mmcurate.lakehouse.native import NativeBackend, delta_unavailable

BACKENDS = ("auto", "embedded", "native")
_TABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
RECENT_COMMITS = 32
"""How many of the newest commits `newest_commit_info` reads before it reads the whole log."""

__all__ = [
    "Lakehouse",
    "WriteResult",
    "OptimizeResult",
    "LakehouseError",
    "TableNotFoundError",
    "TableExistsError",
    "SchemaMismatchError",
    "UnsupportedTableError",
    "CommitConflictError",
    "BackendUnavailableError",
    "no_rows",
    "has_no_rows",
]


class Lakehouse:
    """Delta tables under `root` (a path, an object-store URI or, natively, a catalog schema)."""

    def __init__(self, spark: SparkSession, backend):
        self.spark = spark
        self.backend = backend

    @classmethod
    def open(
        cls,
        spark: SparkSession,
        root: str,
        backend: str = "auto",
        storage_options: Optional[dict] = None,
    ) -> "Lakehouse":
        """Open (lazily create) the lakehouse at `root`.

        backend: "native" uses the session's Delta connector, "embedded" Spark Parquet + delta-rs,
        "auto" picks native when the Spark *server* has Delta (`delta_unavailable` asks it, so a Spark
        Connect client with the `delta` package talking to a server without it gets "embedded").
        "native" on a server without Delta raises BackendUnavailableError saying what is missing.
        storage_options: delta-rs credentials/options for object stores (embedded backend only).
        """
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        if backend in ("auto", "native"):
            missing = delta_unavailable(spark)
            if missing and backend == "native":
                raise BackendUnavailableError(f"backend='native' needs Delta on the Spark server, but {missing}; "
                                              "use backend='embedded' (or 'auto') there")
            backend = "embedded" if missing else "native"
        if backend == "native":
            return cls(spark, NativeBackend(spark, root))
        return cls(spark, EmbeddedBackend(spark, root, storage_options))

    def location(self, table: str) -> str:
        """Where `table` lives: a path/URI, or a catalog name on a catalog root."""
        return self.backend.location(_check_name(table))

    def exists(self, table: str) -> bool:
        return self.backend.exists(_check_name(table))

    def scratch(self, purpose: str) -> Optional[str]:
        """A folder for a step's intermediate files, which executors write and the step removes
        (`<root>/_scratch/<purpose>`, never a table); None where executors cannot be assumed to write the root
        with pyarrow (the native backend: a catalog schema, or storage only Spark's connectors reach)."""
        return self.backend.scratch(_check_name(purpose))

    def tables(self) -> list[str]:
        """Names of the Delta tables in this lakehouse."""
        return self.backend.tables()

    def write(
        self,
        df: DataFrame,
        table: str,
        mode: str = "append",
        app_id: Optional[str] = None,
        app_version: Optional[int] = None,
        replace_where: Optional[Mapping[str, Any]] = None,
        commit_info: Optional[Mapping[str, Any]] = None,
        expected_version: Optional[int] = None,
    ) -> WriteResult:
        """Write `df` to `table` in one atomic commit.

        mode: "append" (creates the table if needed), "overwrite" (new version, history kept),
        "error" (fail if the table exists), "ignore" (do nothing if it exists).
        app_id/app_version: make the commit idempotent; a retry with a version the table has
        already seen for `app_id` is skipped (`WriteResult.skipped`), so a rerun job never
        appends twice.
        replace_where: with mode="overwrite", replace only the rows whose columns equal these values
        (`{"recipe": "obelics"}`); `df` must hold only such rows. Other rows stay, in the same commit.
        commit_info: JSON-able facts recorded in the commit (what stage wrote it, with which
        parameters); `commit_infos` reads them back.
        expected_version: commit only if the table is still at this version (-1: does not exist yet), else
        CommitConflictError and nothing is committed. For writes computed from what the table held (an
        append of the images it lacked): a concurrent writer makes the caller read again instead of
        both adding the same rows.
        """
        check_mode(mode)
        check_app_transaction(app_id, app_version)
        if replace_where is not None and (mode != "overwrite" or not replace_where):
            raise ValueError("replace_where needs mode='overwrite' and at least one column = value")
        return self.backend.write(df, _check_name(table), mode, app_id, app_version,
                                  dict(replace_where) if replace_where else None,
                                  dict(commit_info) if commit_info else None, expected_version)

    def adopt(self, files: Sequence[str], table: str, schema: T.StructType, app_id: Optional[str] = None,
              app_version: Optional[int] = None, commit_info: Optional[Mapping[str, Any]] = None) -> WriteResult:
        """Append the rows of Parquet `files` of `schema` (written by executors into a `scratch` folder) to `table`
        in one commit, as `write` would append them. Embedded: the files are moved into the table, with no Spark
        job and no copy (they must lie under the root); native: their rows are written, Delta's writer owning
        the table's files. An append of another schema raises SchemaMismatchError."""
        check_app_transaction(app_id, app_version)
        if not files:
            raise ValueError("adopt needs at least one file")
        return self.backend.adopt(list(files), _check_name(table), schema, app_id, app_version,
                                  dict(commit_info) if commit_info else None)

    def commit_infos(self, table: str, limit: Optional[int] = None) -> list[tuple[int, dict]]:
        """(version, commit_info) of the table's commits that recorded one, newest first; `limit`: of the
        newest `limit` commits only (only their log entries are read)."""
        return self.backend.commit_infos(_check_name(table), limit)

    def newest_commit_info(self, table: str, match: Callable[[dict], bool]) -> Optional[tuple[int, dict]]:
        """The newest (version, commit_info) that `match` accepts, or None. Looks at the newest commits
        first and at the whole log only when none of them matches, so a long history costs nothing in the
        common case (the commit sought is a recent one)."""
        for limit in (RECENT_COMMITS, None):
            found = next(((v, info) for v, info in self.commit_infos(table, limit) if match(info)), None)
            if found is not None:
                return found
        return None

    def read(self, table: str, version: Optional[int] = None) -> DataFrame:
        """The table as a DataFrame, at its latest or a given version (time travel)."""
        return self.backend.read(_check_name(table), version)

    def version(self, table: str) -> int:
        """The table's latest version number."""
        return self.backend.version(_check_name(table))

    def history(self, table: str, limit: Optional[int] = None) -> DataFrame:
        """One row per commit, newest first: version, timestamp, operation, parameters, metrics;
        `limit`: the newest `limit` commits only (only their log entries are read)."""
        return self.backend.history(_check_name(table), limit)

    def vacuum(self, table: str, retention_hours: int = 168) -> list[str]:
        """Delete data files that no version within `retention_hours` reads, and write folders left
        without one (a killed job's, or one whose files were replaced and expired). Time travel to versions older than that stops
        working. Returns what was removed (embedded backend; the native one returns [])."""
        if retention_hours < 0:
            raise ValueError(f"retention_hours must be >= 0, got {retention_hours}")
        return self.backend.vacuum(_check_name(table), retention_hours)

    def optimize(
        self, table: str, target_size: Optional[int] = None, retention_hours: Optional[int] = None,
    ) -> OptimizeResult:
        """Compact the table's small files into files of about `target_size` bytes (default: the table's
        `delta.targetFileSize`, else the engine's, 100 MiB for delta-rs) in one commit that changes no rows.
        Every version stays readable (`read(table, version=v)`) until vacuumed; with `retention_hours`,
        `vacuum` runs after it (0 reclaims the replaced files now, ending time travel to older versions).

        >>> lake.optimize("items", retention_hours=168).files_removed
        """
        if target_size is not None and target_size <= 0:
            raise ValueError(f"target_size must be > 0 bytes, got {target_size}")
        if retention_hours is not None and retention_hours < 0:
            raise ValueError(f"retention_hours must be >= 0, got {retention_hours}")
        result = self.backend.optimize(_check_name(table), target_size)
        if retention_hours is None:
            return result
        return replace(result, vacuumed=tuple(self.vacuum(table, retention_hours)))

    def register_views(self, tables: Optional[list[str]] = None) -> list[str]:
        """Make tables queryable by bare name in `spark.sql` (temporary views of their latest version).

        Catalog-backed lakehouses need no views: their tables are queried as `catalog.schema.table`,
        or by bare name after `USE catalog.schema`, which this call runs for them.
        """
        names = tables if tables is not None else self.tables()
        if isinstance(self.backend, NativeBackend) and self.backend.catalog:
            self.spark.sql(f"USE {self.backend.root}")
            return names
        for name in names:
            self.read(name).createOrReplaceTempView(name)
        return names

    def sql(self, query: str) -> DataFrame:
        """Run Spark SQL with every table of this lakehouse visible by name."""
        self.register_views()
        return self.spark.sql(query)


def _check_name(table: str) -> str:
    if not _TABLE_NAME.match(table):
        raise ValueError(f"table names are identifiers (letters, digits, _), got {table!r}")
    return table


def connect(root: str, spark: Optional[SparkSession] = None, backend: str = "auto") -> Lakehouse:
    """One call for notebooks: a session (the active one or a new local one) with every table of
    the lakehouse at `root` registered for `spark.sql`."""
    from mmcurate.spark import get_spark

    lake = Lakehouse.open(spark or get_spark(), root, backend=backend)
    lake.register_views()
    return lake
