"""What every lakehouse backend offers, and the errors and results they share."""
from __future__ import annotations

from dataclasses import dataclass
import json
from functools import reduce
from typing import Any, Optional, Protocol

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

WRITE_MODES = ("append", "overwrite", "error", "ignore")
COMMIT_INFO_KEY = "mmcurate"
"""The commit-info field (embedded) or userMetadata key (native) holding what the writer recorded."""


class LakehouseError(RuntimeError):
    """Base of the lakehouse's errors."""


class TableNotFoundError(LakehouseError):
    """The table (or the requested version of it) does not exist."""


class TableExistsError(LakehouseError):
    """mode='error' and the table already exists."""


class SchemaMismatchError(LakehouseError):
    """An append whose columns or types differ from the table's."""


class UnsupportedTableError(LakehouseError):
    """A table uses a Delta feature the embedded backend cannot read correctly."""


class CommitConflictError(LakehouseError):
    """Another writer committed a conflicting change first; nothing of this write is visible."""


class BackendUnavailableError(LakehouseError):
    """The backend asked for cannot run on this session's Spark server (backend='native' without Delta there)."""


@dataclass(frozen=True)
class WriteResult:
    """What a write did: the table version it produced, files and rows added, or that it was skipped."""

    table: str
    version: int
    files_added: int = 0
    rows_added: Optional[int] = None
    skipped: bool = False
    reason: Optional[str] = None


@dataclass(frozen=True)
class OptimizeResult:
    """What an optimize did: the version it left the table at, the small files it replaced by fewer larger ones
    (counts and bytes), and what the vacuum after it removed (empty when none ran)."""

    table: str
    version: int
    files_removed: int
    files_added: int
    bytes_removed: int
    bytes_added: int
    vacuumed: tuple[str, ...] = ()


class Backend(Protocol):
    """The operations a storage backend implements; `Lakehouse` adds naming and SQL on top."""

    name: str

    def location(self, table: str) -> str: ...

    def exists(self, table: str) -> bool: ...

    def scratch(self, purpose: str) -> Optional[str]: ...

    def tables(self) -> list[str]: ...

    def write(
        self, df: DataFrame, table: str, mode: str, app_id: Optional[str], app_version: Optional[int],
        replace_where: Optional[dict[str, Any]], commit_info: Optional[dict[str, Any]],
        expected_version: Optional[int] = None,
    ) -> WriteResult: ...

    def adopt(self, files: list[str], table: str, schema: T.StructType, app_id: Optional[str],
              app_version: Optional[int], commit_info: Optional[dict[str, Any]]) -> WriteResult: ...

    def commit_infos(self, table: str, limit: Optional[int] = None) -> list[tuple[int, dict]]: ...

    def read(self, table: str, version: Optional[int]) -> DataFrame: ...

    def version(self, table: str) -> int: ...

    def history(self, table: str, limit: Optional[int] = None) -> DataFrame: ...

    def vacuum(self, table: str, retention_hours: int) -> list[str]: ...

    def optimize(self, table: str, target_size: Optional[int]) -> OptimizeResult: ...


_NO_ROWS = "_mmcurate_no_rows"


def no_rows(df: DataFrame) -> DataFrame:
    """`df` emptied, and known to be empty: a lakehouse write of it commits the schema and the commit's facts
    without running a Spark job (an empty write is otherwise a job of its own). A frame derived from it is not
    marked, whatever it holds."""
    empty = df.limit(0)
    setattr(empty, _NO_ROWS, True)
    return empty


def has_no_rows(df: DataFrame) -> bool:
    """True for a frame `no_rows` made (read from the object itself: a Connect frame answers any unknown
    attribute with a column)."""
    return vars(df).get(_NO_ROWS) is True


def check_mode(mode: str) -> None:
    if mode not in WRITE_MODES:
        raise ValueError(f"mode must be one of {WRITE_MODES}, got {mode!r}")


def check_app_transaction(app_id: Optional[str], app_version: Optional[int]) -> None:
    if (app_id is None) != (app_version is None):
        raise ValueError("app_id and app_version go together: pass both or neither")
    if app_version is not None and app_version < 0:
        raise ValueError(f"app_version must be >= 0, got {app_version}")


def matches(replace_where: dict[str, Any]) -> Column:
    """The rows a replace_where mapping selects: every column equal to its value."""
    return reduce(lambda a, b: a & b, [F.col(f"`{c}`") == F.lit(v) for c, v in replace_where.items()])


def replace_where_sql(replace_where: dict[str, Any]) -> str:
    """The same condition as Delta's `replaceWhere` SQL text (strings quoted, quotes escaped)."""
    def literal(value: Any) -> str:
        if isinstance(value, str):
            return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return repr(value)
        raise ValueError(f"replace_where values are strings or numbers, got {value!r}")
    return " AND ".join(f"`{c}` = {literal(v)}" for c, v in replace_where.items())


def encode_commit_info(info: dict[str, Any]) -> str:
    return json.dumps(info, sort_keys=True, default=str)


def decode_commit_info(text: Optional[str]) -> Optional[dict]:
    """What `encode_commit_info` wrote, or None for a commit that recorded nothing (or something else)."""
    try:
        value = json.loads(text) if text else None
    except (TypeError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def schema_differences(table: T.StructType, incoming: T.StructType) -> list[str]:
    """Columns an append would add, lose or retype (nullability is not compared)."""
    have = {f.name: f.dataType for f in table.fields}
    new = {f.name: f.dataType for f in incoming.fields}
    out = [f"missing column {n} ({t.simpleString()})" for n, t in have.items() if n not in new]
    out += [f"unexpected column {n} ({t.simpleString()})" for n, t in new.items() if n not in have]
    out += [
        f"column {n}: table has {have[n].simpleString()}, data has {t.simpleString()}"
        for n, t in new.items()
        if n in have and not _same_type(have[n], t)
    ]
    return out


def _same_type(a: T.DataType, b: T.DataType) -> bool:
    """Type equality ignoring nullability flags, at any depth."""
    return _all_nullable(a) == _all_nullable(b)


def _all_nullable(t: T.DataType) -> T.DataType:
    if isinstance(t, T.StructType):
        return T.StructType([T.StructField(f.name, _all_nullable(f.dataType), True) for f in t.fields])
    if isinstance(t, T.ArrayType):
        return T.ArrayType(_all_nullable(t.elementType), True)
    if isinstance(t, T.MapType):
        return T.MapType(_all_nullable(t.keyType), _all_nullable(t.valueType), True)
    return t
