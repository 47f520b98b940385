"""Delta `add` actions for Parquet files Spark wrote, with per-file statistics read from their footers.

Statistics (numRecords, nullCount, min/max of top-level primitive columns) let other engines
(delta-rs, Polars, Databricks) skip files; they are what Delta's own writer records.
"""
from __future__ import annotations

import datetime as dt
import json
import math
from concurrent.futures import ThreadPoolExecutor

import pyarrow.fs as pafs
import pyarrow.parquet as pq
from deltalake.transaction import AddAction

STRING_STATS_CHARS = 32
"""Delta's default: string min values are truncated prefixes; longer max values are left out."""


def _stat_value(value):
    """A footer min/max as a JSON value Delta accepts, or None when it must be left out."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, int):
        return value
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, str):
        return value
    return None


def file_stats(metadata: pq.FileMetaData) -> dict:
    """numRecords plus per-column nullCount/minValues/maxValues for flat columns of one file."""
    stats = {"numRecords": metadata.num_rows, "minValues": {}, "maxValues": {}, "nullCount": {}}
    schema = metadata.schema
    for i in range(len(schema)):
        column = schema.column(i)
        if "." in column.path:  # nested leaf: Delta keys these by struct path; not worth it here
            continue
        name = column.path
        nulls, lo, hi, complete = 0, None, None, True
        for rg in range(metadata.num_row_groups):
            st = metadata.row_group(rg).column(i).statistics
            if st is None:
                complete = False
                break
            nulls += st.null_count if st.has_null_count else 0
            if not st.has_min_max:
                if st.null_count != metadata.row_group(rg).num_rows:
                    complete = False
                continue
            lo = st.min if lo is None else min(lo, st.min)
            hi = st.max if hi is None else max(hi, st.max)
        if not complete:
            continue
        stats["nullCount"][name] = nulls
        lo, hi = _stat_value(lo), _stat_value(hi)
        if isinstance(lo, str):
            lo = lo[:STRING_STATS_CHARS]
        if isinstance(hi, str) and len(hi) > STRING_STATS_CHARS:
            hi = None
        if lo is not None and hi is not None:
            stats["minValues"][name] = lo
            stats["maxValues"][name] = hi
    return stats


def add_actions(fs: pafs.FileSystem, table_path: str, files: list[str]) -> tuple[list[AddAction], int]:
    """One AddAction per non-empty file (paths relative to the table), and the total row count."""

    def one(path: str):
        info = fs.get_file_info(path)
        with fs.open_input_file(path) as f:
            metadata = pq.ParquetFile(f).metadata
        return path, info, metadata

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(one, files))
    actions, rows = [], 0
    prefix = table_path.rstrip("/") + "/"
    for path, info, metadata in results:
        if metadata.num_rows == 0:
            continue
        rows += metadata.num_rows
        actions.append(
            AddAction(
                path=path[len(prefix):],
                size=info.size,
                partition_values={},
                modification_time=int(info.mtime_ns // 1_000_000) if info.mtime_ns else 0,
                data_change=True,
                stats=json.dumps(file_stats(metadata)),
            )
        )
    return actions, rows
