"""Faults on a real cluster and between jobs: an executor JVM killed while a scoring stage and while an export
run, a driver killed between two commits of an ingest, two ingests committing at once, an ingest while a
select reads, a disk that fills up. The tables and shards must be those of an undisturbed run.

The `heavy` ones take minutes each and are left out of the default run (the suite's time budget):
`python -m pytest -m heavy` runs them (docs/reliability.md)."""
import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import deltalake
import pytest
from pyspark.testing import assertDataFrameEqual

from mmcurate import steps
from mmcurate.annotate.image_scores import ImageScores
from mmcurate.io.webdataset_writer import write_webdataset
from mmcurate.lakehouse import Lakehouse

pytestmark = pytest.mark.reliability

KILL_EXECUTOR_ONCE = textwrap.dedent(
    """
    import os, signal
    from typing import Iterator

    import pandas as pd
    from pyspark.sql import functions as F

    def executor_pid():
        # the Python worker -> its pyspark daemon -> the executor JVM (CoarseGrainedExecutorBackend)
        pid = os.getpid()
        while pid > 1:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if b"CoarseGrainedExecutorBackend" in f.read():
                    return pid
            with open(f"/proc/{pid}/stat") as f:
                pid = int(f.read().rsplit(")", 1)[1].split()[1])
        raise RuntimeError("no executor JVM above this Python worker")

    def kill_executor_once(marker):
        @F.pandas_udf("binary")
        def passthrough(batches: Iterator[pd.Series]) -> Iterator[pd.Series]:
            for batch in batches:
                try:
                    fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)  # exactly one task kills
                except FileExistsError:
                    yield batch
                    continue
                pid = executor_pid()
                os.write(fd, str(pid).encode())
                os.close(fd)
                os.kill(pid, signal.SIGKILL)  # the executor JVM dies mid-stage, with every task it runs
                yield batch
        return passthrough
    """
)

SCORE_AND_EXPORT = textwrap.dedent(
    """
    import sys
    from mmcurate import steps
    from mmcurate.annotate.image_scores import ImageScores
    from mmcurate.io.webdataset_writer import write_webdataset
    from mmcurate.lakehouse import Lakehouse
    from mmcurate.spark import get_spark
    from faults import kill_executor_once

    root, source, out, markers = sys.argv[1:5]
    spark = get_spark()
    lake = Lakehouse.open(spark, root, backend="embedded")
    steps.ingest(lake, source, "webdataset")
    images = lake.read("images")
    scored = images.withColumn("binary_content", kill_executor_once(markers + "/score")("binary_content"))
    lake.write(scored.transform(ImageScores()), "image_scores", mode="overwrite")
    export_images = images.withColumn("binary_content", kill_executor_once(markers + "/export")("binary_content"))
    write_webdataset(lake.read("items"), export_images, out, samples_per_shard=5)
    print("done", flush=True)
    """
)


def submit(cluster, script: Path, *args: str, env: dict = None, timeout: int = 600) -> subprocess.CompletedProcess:
    command = [str(Path(cluster["spark_home"]) / "bin" / "spark-submit"), "--master", cluster["master"],
               "--conf", "spark.executor.memory=1g", "--conf", "spark.sql.shuffle.partitions=4",
               "--conf", f"spark.executorEnv.PYSPARK_PYTHON={sys.executable}",
               "--conf", f"spark.executorEnv.PYTHONPATH={script.parent}",
               str(script), *args]
    return subprocess.run(command, env={**cluster["env"], "PYTHONPATH": str(script.parent), **(env or {})},
                          capture_output=True, text=True, timeout=timeout)


def why(done: subprocess.CompletedProcess) -> str:
    """The error lines of a failed spark-submit (no stack frames)."""
    lines = [line for line in done.stderr.splitlines() if ("Error" in line or "Exception" in line or "Lost" in line)
             and not line.strip().startswith("at ")]
    return "\n".join(lines[:40])


@pytest.fixture(scope="module")
def undisturbed(spark, test_data, tmp_path_factory):
    """wds_mint ingested, scored and exported in the test session without any fault: what every run must give."""
    root = tmp_path_factory.mktemp("undisturbed")
    lake = Lakehouse.open(spark, str(root / "lake"), backend="embedded")
    steps.ingest(lake, str(test_data / "wds_mint"), "webdataset")
    lake.write(lake.read("images").transform(ImageScores()), "image_scores", mode="overwrite")
    write_webdataset(lake.read("items"), lake.read("images"), str(root / "wds"), samples_per_shard=5)
    return lake, root / "wds"


def files_of(folder: Path) -> dict:
    """Every file under an export folder with its size (the manifest's varies with the folder's path it names)."""
    return {str(p.relative_to(folder)): None if p.name == "manifest.json" else p.stat().st_size
            for p in folder.rglob("*") if p.is_file() and not p.name.endswith(".crc") and "lineage" not in p.parts}


@pytest.mark.slow
@pytest.mark.heavy
def test_an_executor_killed_while_scoring_and_while_exporting_changes_nothing(spark, standalone_cluster, undisturbed,
                                                                               test_data, tmp_path):
    (tmp_path / "faults.py").write_text(KILL_EXECUTOR_ONCE)
    script = tmp_path / "score_and_export.py"
    script.write_text(SCORE_AND_EXPORT)
    markers = tmp_path / "markers"
    markers.mkdir()
    done = submit(standalone_cluster, script, str(tmp_path / "lake"), str(test_data / "wds_mint"),
                  str(tmp_path / "wds"), str(markers))
    assert done.returncode == 0 and "done" in done.stdout, why(done)
    for phase in ("score", "export"):  # an executor JVM really died in each phase
        pid = int((markers / phase).read_text())
        assert not Path(f"/proc/{pid}").exists()

    ours, expected = Lakehouse.open(spark, str(tmp_path / "lake")), undisturbed[0]
    for table in ("items", "images", "quarantine", "image_scores"):
        assertDataFrameEqual(ours.read(table), expected.read(table))
    scores = ours.read("image_scores")
    assert scores.count() == scores.select("image_id").distinct().count()  # no row written twice
    assert files_of(tmp_path / "wds") == files_of(undisturbed[1])  # no temp file left, nothing extra
    shards = lambda folder: [s["sha256"] for s in json.loads((folder / "manifest.json").read_text())["shards"]]
    assert shards(tmp_path / "wds") == shards(undisturbed[1])


DIE_BEFORE_ITEMS = textwrap.dedent(
    """
    import os, signal, sys
    from mmcurate import steps
    from mmcurate.lakehouse import Lakehouse
    from mmcurate.lakehouse.embedded import EmbeddedBackend
    from mmcurate.spark import get_spark

    root, source = sys.argv[1:3]
    if os.environ.get("DIE_BEFORE_ITEMS"):
        commit = EmbeddedBackend._commit

        def die_before_items(self, table, *args, **kwargs):
            if table == "items":  # images and quarantine are committed, items' files written: the driver dies
                os.kill(os.getpid(), signal.SIGKILL)
            return commit(self, table, *args, **kwargs)

        EmbeddedBackend._commit = die_before_items
    spark = get_spark()
    lake = Lakehouse.open(spark, root, backend="embedded")
    print(steps.ingest(lake, source, "webdataset", app_id="cluster-ingest", app_version=1), flush=True)
    """
)


@pytest.mark.slow
@pytest.mark.heavy
def test_a_driver_killed_between_commits_on_the_cluster_lands_exactly_once_on_rerun(
        spark, standalone_cluster, undisturbed, test_data, tmp_path):
    script = tmp_path / "ingest.py"
    script.write_text(DIE_BEFORE_ITEMS)
    root, source = str(tmp_path / "lake"), str(test_data / "wds_mint")
    killed = submit(standalone_cluster, script, root, source, env={"DIE_BEFORE_ITEMS": "1"})
    assert killed.returncode != 0
    lake = Lakehouse.open(spark, root)
    assert lake.exists("images") and not lake.exists("items")  # died between the commits
    assert submit(standalone_cluster, script, root, source).returncode == 0
    assert submit(standalone_cluster, script, root, source).returncode == 0  # a third run: nothing to do
    for table in ("images", "quarantine", "items"):
        assert lake.version(table) == 0  # each committed once
        assertDataFrameEqual(lake.read(table), undisturbed[0].read(table))


CONCURRENT_INGEST = textwrap.dedent(
    """
    import json, os, sys, time
    import mmcurate.steps as steps
    from mmcurate.lakehouse import CommitConflictError, Lakehouse
    from mmcurate.spark import get_spark

    root, source, ready, go = sys.argv[1:5]
    append = steps._append_new_images
    conflicts = []

    def at_the_same_time(lake, images, info, txn):
        open(ready, "w").close()
        while not os.path.exists(go):  # both jobs have parsed: they commit together
            time.sleep(0.05)
        return append(lake, images, info, txn)

    steps._append_new_images = at_the_same_time
    write = Lakehouse.write

    def counting(self, df, table, *args, **kwargs):
        try:
            return write(self, df, table, *args, **kwargs)
        except CommitConflictError:
            conflicts.append(table)
            raise

    Lakehouse.write = counting
    spark = get_spark(master="local[1]")
    lake = Lakehouse.open(spark, root, backend="embedded")
    summary = steps.ingest(lake, source, "webdataset")
    print("RESULT " + json.dumps({"documents": summary["documents"], "conflicts": conflicts}), flush=True)
    """
)


@pytest.mark.slow
@pytest.mark.heavy
def test_two_ingests_at_once_lose_no_append_and_store_each_image_once(spark, test_data, tmp_path, fixtures_counts):
    script = tmp_path / "ingest.py"
    script.write_text(CONCURRENT_INGEST)
    root = str(tmp_path / "lake")
    shards = sorted((test_data / "wds_mint").glob("*.tar"))
    jobs = [subprocess.Popen([sys.executable, str(script), root, str(shard), str(tmp_path / f"ready{i}"),
                              str(tmp_path / "go")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for i, shard in enumerate(shards)]
    deadline = time.time() + 300
    while not all((tmp_path / f"ready{i}").exists() for i in range(len(jobs))):
        assert time.time() < deadline and all(j.poll() is None for j in jobs), [j.communicate() for j in jobs]
        time.sleep(0.1)
    (tmp_path / "go").touch()
    outputs = [j.communicate(timeout=300) for j in jobs]
    assert all(j.returncode == 0 for j in jobs), [o[1][-3000:] for o in outputs]
    results = [json.loads(next(line for line in out.splitlines() if line.startswith("RESULT "))[7:])
               for out, _ in outputs]
    assert sum(r["conflicts"].count("images") for r in results) >= 1  # one of them had to check again

    lake = Lakehouse.open(spark, root)
    expected = fixtures_counts["wds_mint"]
    assert lake.read("items").where("position = -1").count() == expected["documents"]  # no lost append
    images = lake.read("images")
    assert images.count() == images.select("image_id").distinct().count() == \
        expected["unique_images"] - expected["url_only_images"]  # each image stored once
    for table in ("items", "images", "quarantine"):  # every version of every log reads
        location = str(tmp_path / "lake" / table)
        for version in range(deltalake.DeltaTable(location).version() + 1):
            deltalake.DeltaTable(location, version=version).to_pyarrow_table()


@pytest.fixture(scope="module")
def fixtures_counts(test_data):
    return json.loads((test_data / "fixtures.json").read_text())


INGEST_ONE = textwrap.dedent(
    """
    import sys
    from mmcurate import steps
    from mmcurate.lakehouse import Lakehouse
    from mmcurate.spark import get_spark

    root, source = sys.argv[1:3]
    spark = get_spark(master="local[1]")
    print(steps.ingest(Lakehouse.open(spark, root, backend="embedded"), source, "webdataset"), flush=True)
    """
)


@pytest.mark.slow
@pytest.mark.heavy
def test_a_select_while_an_ingest_commits_reads_one_consistent_version(spark, test_data, tmp_path):
    shards = sorted(str(p) for p in (test_data / "wds_mint").glob("*.tar"))
    lake = Lakehouse.open(spark, str(tmp_path / "lake"), backend="embedded")
    steps.ingest(lake, shards[0], "webdataset")
    steps.annotate(lake, steps.stages_for("nemo_default"), recipes=["nemo_default"])
    script = tmp_path / "ingest.py"
    script.write_text(INGEST_ONE)
    job = subprocess.Popen([sys.executable, str(script), str(tmp_path / "lake"), shards[1]],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    selects = 0
    while job.poll() is None or selects < 2:
        steps.select(lake, "nemo_default")
        selects += 1
        info = steps.newest_commit(lake, "curated_items", "select")
        items = lake.read("items", version=info["read"]["items"]).count()
        drops = lake.read("drops").where("recipe = 'nemo_default'").count()
        assert lake.read("curated_items").count() + drops == items  # in = kept + dropped, at the version read
    assert job.wait(timeout=300) == 0, job.communicate()[1][-3000:]
    assert lake.version("items") == 1


@pytest.mark.slow
def test_a_full_disk_fails_the_write_says_so_and_leaves_the_previous_version(spark, test_data, tmp_path):
    """A lakehouse on a 6 MiB tmpfs: the first ingest fits, the second does not."""
    mount = tmp_path / "small"
    mount.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(mount)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        lake = Lakehouse.open(spark, str(mount / "lake"), backend="embedded")
        shards = sorted(str(p) for p in (test_data / "wds_mint").glob("*.tar"))
        steps.ingest(lake, shards[0], "webdataset")
        before = {t: (lake.version(t), lake.read(t).count()) for t in ("items", "images", "quarantine")}
        filler = spark.range(0, 100000, numPartitions=1).selectExpr("id", "sha2(cast(id AS string), 512) AS a",
                                                                   "sha2(cast(id + 1 AS string), 512) AS b")
        with pytest.raises(Exception) as failed:
            lake.write(filler, "filler")  # ~25 MB of incompressible text
        text = str(failed.value) + "".join(getattr(failed.value, "__notes__", []))
        assert "No space left on device" in text or "Disk quota" in text, text[-2000:]
        assert "writing table 'filler'" in text and "nothing was committed" in text
        assert not lake.exists("filler") and not list((mount / "lake" / "filler").glob("data-*"))  # staging removed
        assert {t: (lake.version(t), lake.read(t).count()) for t in before} == before  # previous versions intact
        lake.write(spark.range(10), "after")  # the lakehouse goes on: the next write that fits works
        assert lake.read("after").count() == 10
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)
