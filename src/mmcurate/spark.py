"""Build a SparkSession with the settings the framework relies on, or reuse the active one.

On Databricks or in a notebook the session already exists and is returned untouched: the library
never changes a setting the user owns, it sets what one operation needs for that operation only
(`session_conf`). Otherwise a session is built, `local[*]` unless spark-submit gave a master.
"""
from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Mapping

from pyspark.sql import SparkSession

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


def get_spark(
    master: str | None = None, app_name: str = "mmcurate", conf: Mapping[str, str] | None = None
) -> SparkSession:
    """The active session, untouched, if there is one; else a new one with `conf` on top of our defaults.

    A new session is `local[*]` (or `$MMCURATE_SPARK_MASTER`) with local defaults, unless the
    process was started by spark-submit, whose master and settings are kept. Sets PYSPARK_PYTHON
    to the running interpreter so executors use the same environment.
    """
    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    builder = SparkSession.builder.appName(app_name)
    launched_by_spark_submit = "PYSPARK_GATEWAY_PORT" in os.environ
    settings = {**SESSION_CONF, **(conf or {})}
    if master or not launched_by_spark_submit:
        builder = builder.master(master or os.environ.get("MMCURATE_SPARK_MASTER", "local[*]"))
        settings = {**LOCAL_CONF, "spark.driver.extraJavaOptions": _QUIET_LOGGING, **settings}
    for key, value in settings.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


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
