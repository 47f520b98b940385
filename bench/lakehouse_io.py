"""Lakehouse write/read vs plain Spark Parquet on the same DataFrame, as ratios in one run.

    python bench/lakehouse_io.py --rows 200000 --payload-bytes 1024

Writes N item rows with non-repetitive image-sized binary payloads through
`Lakehouse.write` (Parquet + delta-rs commit with footer statistics) and through
`df.write.parquet`; reads them back with a full scan and with a pruned column scan.
Plain pyarrow is printed for reference.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
from _common import median_times, report, run  # noqa: E402

import pyarrow.parquet as pq  # noqa: E402
from pyspark.sql import functions as F  # noqa: E402

from mmcurate.lakehouse import Lakehouse  # noqa: E402
from mmcurate.spark import get_spark  # noqa: E402


def make_source(spark, rows: int, payload_bytes: int, path: str) -> None:
    """Items with random (incompressible) payloads, materialised once so every case reads the same input."""
    chunks = max(1, payload_bytes // 32)
    payload = F.concat(*[F.unhex(F.sha2(F.concat_ws(":", F.col("id").cast("string"), F.lit(str(k))), 256))
                         for k in range(chunks)])
    (
        spark.range(rows, numPartitions=8)
        .select(
            F.format_string("doc-%09d", "id").alias("sample_id"),
            (F.col("id") % 12).cast("int").alias("position"),
            F.when(F.col("id") % 3 == 0, "image").otherwise("text").alias("modality"),
            F.sha2(F.col("id").cast("string"), 256).alias("image_id"),
            F.repeat(F.lit("word "), (F.col("id") % 40).cast("int")).alias("text_content"),
            payload.alias("binary_content"),
        )
        .write.mode("overwrite")
        .parquet(path)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--payload-bytes", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    spark = get_spark(master="local[2]")
    work = tempfile.mkdtemp(prefix="mmcurate-bench-")
    try:
        source = os.path.join(work, "source")
        make_source(spark, args.rows, args.payload_bytes, source)
        df = spark.read.parquet(source)
        lake = Lakehouse.open(spark, os.path.join(work, "lake"), backend="embedded")
        plain = os.path.join(work, "plain")
        counter = iter(range(10**6))

        def write_lakehouse():
            lake.write(df, f"items_{next(counter)}", mode="error")

        def write_parquet():
            df.write.mode("overwrite").parquet(plain)

        def write_pyarrow():
            pq.write_table(pq.read_table(source), os.path.join(work, "arrow.parquet"))

        writes = median_times(
            {"spark parquet write": write_parquet, "lakehouse write + commit": write_lakehouse,
             "pyarrow read+write (ref)": write_pyarrow},
            args.repeat,
        )
        size_mb = sum(os.path.getsize(os.path.join(plain, f)) for f in os.listdir(plain)) / 2**20
        print(f"{args.rows} rows, {args.payload_bytes} B payload each, {size_mb:.0f} MiB of Parquet, local[2]")
        write_ratio = report("write", writes, "spark parquet write", goal=1.15)

        def scan(frame):
            return lambda: frame().agg(F.count("*"), F.sum(F.length("binary_content"))).collect()

        def pruned(frame):
            return lambda: frame().where("modality = 'image'").agg(F.countDistinct("image_id")).collect()

        table = "items_0"
        reads = median_times(
            {
                "spark parquet full scan": scan(lambda: spark.read.parquet(plain)),
                "lakehouse full scan": scan(lambda: lake.read(table)),
                "spark parquet pruned scan": pruned(lambda: spark.read.parquet(plain)),
                "lakehouse pruned scan": pruned(lambda: lake.read(table)),
                "pyarrow read_table (ref)": lambda: pq.read_table(plain),
            },
            args.repeat,
        )
        read_ratio = max(
            report("read (full scan)", {k: reads[k] for k in ("spark parquet full scan", "lakehouse full scan")},
                   "spark parquet full scan", goal=1.10),
            report("read (pruned: 2 of 6 columns)",
                   {k: reads[k] for k in ("spark parquet pruned scan", "lakehouse pruned scan")},
                   "spark parquet pruned scan", goal=1.10),
        )
        print(f"\npyarrow reference: read_table {reads['pyarrow read_table (ref)']:.2f} s, "
              f"read+write {writes['pyarrow read+write (ref)']:.2f} s")
        print(f"\nRESULT write_ratio={write_ratio:.2f} read_ratio={read_ratio:.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    run(main)
