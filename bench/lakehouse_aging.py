"""A table after many small appends vs after a few, then after optimize, as ratios in one run.

    python bench/lakehouse_aging.py --appends 1000 --rows 20

Appends `--rows` item rows at a time through `Lakehouse.write` (checkpoints on, Delta's default
interval of 10; the JVM warmed on another table first) and measures, after `--early` appends and
again after `--appends`: a full read
(count), a filtered read, `version()`, the newest commit-info lookup (`newest_commit_info`, what
incremental steps ask), `history(limit=10)` and the wall time of one more append. Then
`optimize` compacts the table and the reads are measured again, next to a table written once
with the same rows (a single file).
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
from _common import median_times, report, run, timed  # noqa: E402

from pyspark.sql import functions as F  # noqa: E402

from mmcurate.lakehouse import Lakehouse  # noqa: E402
from mmcurate.spark import get_spark  # noqa: E402


FILTER = "position = 3 AND modality = 'image'"
"""The filtered read: a predicate Spark pushes down to the Parquet row groups."""


def batch(spark, start: int, rows: int):
    """`rows` item rows numbered from `start`, in one partition (one small file per append)."""
    return spark.range(start, start + rows, numPartitions=1).select(
        F.format_string("doc-%09d", "id").alias("sample_id"),
        (F.col("id") % 12).cast("int").alias("position"),
        F.when(F.col("id") % 3 == 0, "image").otherwise("text").alias("modality"),
        F.sha2(F.col("id").cast("string"), 256).alias("image_id"),
    )


def lookups(spark, lake: Lakehouse, table: str, rows: int) -> dict:
    """The operations whose cost should not grow with the table's age, as timing cases."""
    appended = iter(range(10**6))

    def append():
        lake.write(batch(spark, 10**9 + next(appended) * rows, rows), table, commit_info={"step": "bench"})

    return {
        "read: count": lambda: lake.read(table).count(),
        "read: filtered": lambda: lake.read(table).where(FILTER).count(),
        "version()": lambda: lake.version(table),
        "commit-info lookup": lambda: lake.newest_commit_info(table, lambda info: info.get("step") == "bench"),
        "history(limit=10)": lambda: lake.history(table, limit=10).count(),
        "append (commit)": append,
    }


def age(spark, lake: Lakehouse, args) -> tuple[float, float]:
    """Append to `items` and time the lookups after `--early` and after `--appends` appends; print the ratios and
    return the worst of the log lookups and commits, and of the reads."""
    for i in range(args.early):  # JIT and Python workers warm before anything is timed
        lake.write(batch(spark, i * args.rows, args.rows), "warmup")
    median_times(lookups(spark, lake, "warmup", args.rows), 1)
    written, append_times, measured = 0, [], {}
    for target in (args.early, args.appends):
        while written < target:
            append_times.append(timed(lambda: lake.write(batch(spark, written * args.rows, args.rows), "items",
                                                          commit_info={"step": "bench", "n": written})))
            written += 1
        # the lookups' own appends come after the timed reads, so each measurement sees one more commit
        measured[target] = median_times(lookups(spark, lake, "items", args.rows), args.repeat)
    log = os.listdir(os.path.join(lake.location("items"), "_delta_log"))
    print(f"{written} appends of {args.rows} rows, local[2]; {sum(f.endswith('.checkpoint.parquet') for f in log)} "
          f"checkpoints; mean append {sum(append_times[:10]) / 10:.3f} s (first 10), "
          f"{sum(append_times[-10:]) / 10:.3f} s (last 10)")
    baseline = f"after {args.early} appends"

    def aged(case: str) -> dict[str, float]:
        return {baseline: measured[args.early][case], f"after {args.appends} appends": measured[args.appends][case]}

    log_ratio = max(report(case, aged(case), baseline, goal=1.2)
                    for case in ("version()", "commit-info lookup", "history(limit=10)", "append (commit)"))
    read_ratio = max(report(f"{case} (before optimize)", aged(case), baseline)
                     for case in ("read: count", "read: filtered"))
    return log_ratio, read_ratio


def compacted(lake: Lakehouse, repeat: int) -> float:
    """Optimize `items`, then time its reads next to a single-file table of the same rows; the worst ratio."""
    files_before = len(lake.read("items").inputFiles())
    result = lake.optimize("items")
    print(f"\noptimize: {result.files_removed} files ({result.bytes_removed / 2**20:.1f} MiB) -> "
          f"{result.files_added} ({result.bytes_added / 2**20:.1f} MiB); the table had {files_before} files")
    lake.write(lake.read("items").coalesce(1), "single", mode="error")
    reads = median_times(
        {
            "single-file table": lambda: lake.read("single").count(),
            "optimized table": lambda: lake.read("items").count(),
            "single-file table, filtered": lambda: lake.read("single").where(FILTER).count(),
            "optimized table, filtered": lambda: lake.read("items").where(FILTER).count(),
        },
        repeat,
    )
    return max(
        report("read: count, after optimize", {k: reads[k] for k in reads if "filtered" not in k},
               "single-file table", goal=1.2),
        report("read: filtered, after optimize", {k: reads[k] for k in reads if "filtered" in k},
               "single-file table, filtered", goal=1.2),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--appends", type=int, default=1000, help="appends before the late measurement")
    parser.add_argument("--early", type=int, default=10, help="appends before the early measurement")
    parser.add_argument("--rows", type=int, default=20, help="rows per append")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="mmcurate-bench-aging-")
    try:
        spark = get_spark(master="local[2]")
        lake = Lakehouse.open(spark, os.path.join(work, "lake"), backend="embedded")
        log_ratio, read_ratio = age(spark, lake, args)
        optimized_ratio = compacted(lake, args.repeat)
        print(f"\nRESULT log_and_commit_ratio={log_ratio:.2f} read_ratio_before_optimize={read_ratio:.2f} "
              f"read_ratio_optimized_vs_single_file={optimized_ratio:.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    run(main)
