"""Faults: a driver killed mid-write, racing writers, a dying worker. Tables must stay at a valid version."""
import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import deltalake
import pytest
from pyspark.sql import functions as F

from mmcurate.lakehouse import CommitConflictError, Lakehouse

pytestmark = pytest.mark.reliability

WRITER = textwrap.dedent(
    """
    import sys, time
    from pyspark.sql import functions as F
    from mmcurate.lakehouse import Lakehouse
    from mmcurate.spark import get_spark

    root, delay = sys.argv[1], float(sys.argv[2])
    spark = get_spark(master="local[2]")
    lake = Lakehouse.open(spark, root, backend="embedded")

    @F.udf("long")
    def slow(x):
        if x % 5000 == 0:
            time.sleep(delay)
        return x

    df = spark.range(0, 40000, numPartitions=8).select(slow("id").alias("id"), F.sha2(F.col("id").cast("string"), 256).alias("h"))
    print(lake.write(df, "t", mode="append", app_id="batch-job", app_version=1), flush=True)
    """
)


def run_writer(script, root, delay):
    return subprocess.Popen([sys.executable, str(script), root, str(delay)], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, start_new_session=True, text=True)


@pytest.mark.slow
def test_killed_driver_leaves_previous_version_and_rerun_is_exact(spark, tmp_path):
    root = str(tmp_path / "lake")
    lake = Lakehouse.open(spark, root, backend="embedded")
    lake.write(spark.range(0, 10).select("id", F.lit("seed").alias("h")), "t")
    script = tmp_path / "writer.py"
    script.write_text(WRITER)

    proc = run_writer(script, root, delay=3.0)
    table_dir = tmp_path / "lake" / "t"
    deadline = time.time() + 120
    while len(list(table_dir.glob("data-*"))) < 2:  # the seed's folder, then the writer's
        if proc.poll() is not None or time.time() > deadline:
            pytest.fail("writer finished (or never started writing) before it could be killed")
        time.sleep(0.2)
    time.sleep(1.0)
    os.killpg(proc.pid, signal.SIGKILL)  # the Python driver and its JVM, mid-job
    proc.wait()

    assert lake.version("t") == 0 and lake.read("t").count() == 10
    assert deltalake.DeltaTable(str(table_dir)).version() == 0

    rerun = run_writer(script, root, delay=0.0)
    assert rerun.wait(timeout=300) == 0
    assert lake.version("t") == 1
    first = sorted((r.id, r.h) for r in lake.read("t").collect())
    again = run_writer(script, root, delay=0.0)
    output = again.communicate(timeout=300)[0]
    assert again.returncode == 0 and "skipped=True" in output
    assert lake.version("t") == 1
    assert sorted((r.id, r.h) for r in lake.read("t").collect()) == first
    assert len(first) == 40010 and len({r[0] for r in first}) == 40000


def test_racing_overwrites_leave_a_valid_log(spark, tmp_path):
    lake = Lakehouse.open(spark, str(tmp_path), backend="embedded")
    lake.write(spark.range(3).withColumn("writer", F.lit("seed")), "t")
    outcomes = {}

    def overwrite(name):
        try:
            lake.write(spark.range(5).withColumn("writer", F.lit(name)), "t", mode="overwrite")
            outcomes[name] = "ok"
        except CommitConflictError as e:
            outcomes[name] = e

    threads = [threading.Thread(target=overwrite, args=(n,)) for n in ("a", "b")]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert set(outcomes) == {"a", "b"} and "ok" in outcomes.values()
    final = {r.writer for r in lake.read("t").collect()}
    assert len(final) == 1 and final <= {"a", "b"}  # one winner's rows, never a mix
    assert lake.read("t").count() == 5
    table = deltalake.DeltaTable(str(tmp_path / "t"))
    for version in range(table.version() + 1):
        deltalake.DeltaTable(str(tmp_path / "t"), version=version).to_pyarrow_table()


WORKER_DIES = textwrap.dedent(
    """
    import os, sys
    from typing import Iterator
    import pandas as pd
    from pyspark.sql import functions as F
    from mmcurate.annotate.image_scores import ImageScores
    from mmcurate.lakehouse import Lakehouse
    from mmcurate.spark import get_spark

    root, marker = sys.argv[1], sys.argv[2]
    spark = get_spark(master="local[2,3]")  # up to 3 attempts per task, as on a cluster
    lake = Lakehouse.open(spark, root, backend="embedded")

    @F.pandas_udf("binary")
    def die_once(batches: Iterator[pd.Series]) -> Iterator[pd.Series]:
        for batch in batches:
            if not os.path.exists(marker):
                open(marker, "w").close()
                os._exit(1)  # the Python worker dies mid-stage, as an OOM-killed model worker would
            yield batch

    images = lake.read("images").withColumn("binary_content", die_once("binary_content"))
    print(lake.write(images.transform(ImageScores()), "image_scores", mode="overwrite"), flush=True)
    """
)


@pytest.mark.slow
def test_a_scoring_worker_that_dies_is_retried_without_double_counting(spark, tmp_path, shared_data, solid_png):
    root = str(tmp_path / "lake")
    lake = Lakehouse.open(spark, root, backend="embedded")
    photos = sorted((shared_data / "images" / "opencv_debian").glob("*.jpg"))[:6]
    blobs = [p.read_bytes() for p in photos] + [solid_png(32, 32)]
    rows = [(hashlib.sha256(b).hexdigest(), b) for b in blobs]
    lake.write(spark.createDataFrame(rows, "image_id string, binary_content binary").repartition(3), "images")
    script, marker = tmp_path / "score.py", tmp_path / "died"
    script.write_text(WORKER_DIES)
    done = subprocess.run([sys.executable, str(script), root, str(marker)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert marker.exists()  # the worker did die once
    scores = lake.read("image_scores")
    assert scores.count() == len(blobs) and scores.select("image_id").distinct().count() == len(blobs)
    assert lake.version("image_scores") == 0  # one commit, not one per attempt
    assert scores.where("decode_ok AND sharpness IS NOT NULL").count() == len(blobs)
