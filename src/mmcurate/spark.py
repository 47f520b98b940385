"""Build a SparkSession with the settings the framework relies on, or reuse the active one.

On Databricks or in a notebook the session already exists and is returned untouched: the library
never changes a setting the user owns, it sets what one operation needs for that operation only
(`session_conf`). Otherwise a session is built: a Spark Connect client when `$SPARK_REMOTE` names a
server (`sc://host:port`), else `local[*]` unless spark-submit gave a master.
"""
from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Mapping

from pyspark import SparkContext, StorageLevel
from pyspark.sql import DataFrame, SparkSession

from mmcurate import class_archive

SESSION_CONF = {
    # Delta readers expect INT64 micros; Spark's default INT96 is legacy.
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
}
"""Set on sessions this module builds (never on one it finds already running)."""

LOCAL_CONF = {
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.shuffle.partitions": "8",
    "spark.default.parallelism": "4",
    "spark.driver.memory": os.environ.get("MMCURATE_DRIVER_MEMORY", "4g"),
    "spark.python.worker.reuse": "true",
    "spark.sql.sources.parallelPartitionDiscovery.threshold": "1000000",
    # Spark's Parquet committer writes a _SUCCESS marker; Delta tables do not want it.
    "spark.hadoop.mapreduce.fileoutputcommitter.marksuccessfuljobs": "false",
    "spark.hadoop.parquet.summary.metadata.level": "NONE",
}

_QUIET_LOGGING = f"-Dlog4j2.configurationFile={Path(__file__).parent / 'resources' / 'log4j2.properties'}"
"""Errors-only JVM logging for local sessions built here (a `spark.driver.extraJavaOptions` of the caller wins)."""

LOCAL_JIT = "-XX:TieredStopAtLevel=1"
"""Local JVMs built here compile with HotSpot's quick compiler (C1) only. The optimising one (C2) spends seconds
of CPU over a session's first jobs, taken from the Python workers that do the curation when cores are few: the
5,000-sample pipeline (bench/pipeline_peers.py) took 51.0 s instead of 56.8 s on 2 cores, every step faster.
What the JVM does here (planning, Arrow batches, Parquet, small shuffles) runs well on C1 code.
`$MMCURATE_JVM_JIT` replaces it (empty: HotSpot's default)."""


def get_spark(
    master: str | None = None, app_name: str = "mmcurate", conf: Mapping[str, str] | None = None
) -> SparkSession:
    """The active session, untouched, if there is one; else a new one with `conf` on top of our defaults.

    A new session is `local[*]` (or `$MMCURATE_SPARK_MASTER`) with local defaults, unless the
    process was started by spark-submit, whose master and settings are kept; its JVM maps Spark's classes from
    an archive recorded by the first such session (`mmcurate.class_archive`). Sets PYSPARK_PYTHON
    to the running interpreter so executors use the same environment. Without `master`, a set
    `$SPARK_REMOTE` gives a Spark Connect session to that server, with only runtime settings
    (`conf` on top of SESSION_CONF): the server owns its master, memory and Python workers.
    """
    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    settings = {**SESSION_CONF, **(conf or {})}
    remote = os.environ.get("SPARK_REMOTE")
    if remote and not master:
        builder = SparkSession.builder.remote(remote).appName(app_name)
        for key, value in settings.items():
            builder = builder.config(key, value)
        return builder.getOrCreate()
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    builder = SparkSession.builder.appName(app_name)
    launched_by_spark_submit = "PYSPARK_GATEWAY_PORT" in os.environ
    recording = archive = None
    if master or not launched_by_spark_submit:
        builder = builder.master(master or os.environ.get("MMCURATE_SPARK_MASTER", "local[*]"))
        java_options = f"{_QUIET_LOGGING} {os.environ.get('MMCURATE_JVM_JIT', LOCAL_JIT)}".strip()
        if not launched_by_spark_submit and SparkContext._gateway is None:  # this process starts the JVM
            archive = class_archive.archive_for(settings)
            options, recording = class_archive.java_options(archive)
            java_options = f"{java_options} {options}".strip()
        settings = {**LOCAL_CONF, "spark.driver.extraJavaOptions": java_options, **settings}
    for key, value in settings.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    if recording is not None and "ArchiveClassesAtExit" in settings["spark.driver.extraJavaOptions"]:
        class_archive.publish_at_exit(recording, archive)
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def is_connect(spark: SparkSession) -> bool:
    """True for a Spark Connect session (Databricks serverless and Connect, shared clusters): it has no
    sparkContext, no JVM gateway and no RDDs, and its DataFrames are analysed by the server, lazily."""
    return type(spark).__module__.startswith("pyspark.sql.connect")


@contextmanager
def session_conf(spark: SparkSession, settings: Mapping[str, str]) -> Iterator[None]:
    """Set runtime SQL settings for the duration of a block, restoring the previous values after."""
    previous = {key: spark.conf.get(key, None) for key in settings}
    for key, value in settings.items():
        spark.conf.set(key, value)
    try:
        yield
    finally:
        for key, value in previous.items():
            if value is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, value)


LARGE_ROW_BATCH = 64
"""Rows per column batch of a cache whose rows carry image bytes (or megabyte paragraphs): Spark's default of
10,000 rows is gigabytes per batch, copied as it grows and past a Java array's 2 GB limit for large images."""


def persist_large_rows(frame: DataFrame, level: StorageLevel = StorageLevel.DISK_ONLY) -> DataFrame:
    """`frame` persisted in column batches of LARGE_ROW_BATCH rows. A cache takes the batch size when declared,
    so the setting holds for the declaration only (the session's own value is restored); it fills on first use."""
    with session_conf(frame.sparkSession, {"spark.sql.inMemoryColumnarStorage.batchSize": str(LARGE_ROW_BATCH)}):
        return frame.persist(level)
