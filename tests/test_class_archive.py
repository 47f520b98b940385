"""The JVM class archive: recorded once by a real JVM, published only when complete, used by later sessions."""
import os
import shutil
import subprocess
import sys

import pytest

from mmcurate import class_archive
from mmcurate.spark import LOCAL_JIT

JAVA = shutil.which("java")


def java(*options: str) -> subprocess.Popen:
    return subprocess.Popen([JAVA, *options, "-version"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_the_archive_fits_the_class_path_and_can_be_switched_off(tmp_path, monkeypatch):
    monkeypatch.delenv(class_archive.SWITCH, raising=False)
    plain = class_archive.archive_for({}, tmp_path)
    assert plain.parent == tmp_path and plain.name.startswith("spark-classes-")
    assert class_archive.archive_for({"spark.sql.shuffle.partitions": "4"}, tmp_path) == plain  # not class path
    assert class_archive.archive_for({"spark.jars.packages": "io.delta:delta-spark_2.13:4.0.0"}, tmp_path) != plain
    (tmp_path / "a-file").write_text("")  # a cache folder that cannot be made: the JVM starts as Spark's does
    assert class_archive.java_options(class_archive.archive_for({}, tmp_path / "a-file" / "cache")) == ("", None)
    monkeypatch.setenv(class_archive.SWITCH, "0")
    assert class_archive.archive_for({}, tmp_path) is None
    assert class_archive.java_options(None) == ("", None)


def test_a_recording_is_published_only_from_a_jvm_that_exited_cleanly(tmp_path):
    archive = tmp_path / "spark-classes-aaaaaaaaaaaa-0123456789ab.jsa"
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = archive.with_name(f"{archive.name}.{int(gone.stdout)}.recording")
    stale.write_bytes(b"half an archive")  # left by a process killed while its JVM wrote
    options, recording = class_archive.java_options(archive)
    assert not stale.exists()
    assert recording == archive.with_name(f"{archive.name}.{os.getpid()}.recording")
    assert f"-XX:ArchiveClassesAtExit={recording}" in options

    old = tmp_path / "spark-classes-aaaaaaaaaaaa-ffffffffffff.jsa"  # for jars no longer installed there
    other = tmp_path / "spark-classes-bbbbbbbbbbbb-ffffffffffff.jsa"  # another installation's (a virtualenv)
    old.write_bytes(b"x")
    other.write_bytes(b"x")
    assert class_archive.publish(java(*options.split()), recording, archive)
    assert archive.is_file() and not recording.exists() and not old.exists() and other.exists()
    # the published archive maps: -Xshare:on makes a JVM that cannot use it fail
    assert subprocess.run([JAVA, f"-XX:SharedArchiveFile={archive}", "-Xshare:on", "-version"],
                          capture_output=True).returncode == 0
    assert class_archive.java_options(archive) == (f"-XX:SharedArchiveFile={archive} {class_archive.QUIET}", None)

    failed = tmp_path / "spark-classes-cccccccccccc-111111111111.jsa"
    options, recording = class_archive.java_options(failed)
    recording.write_bytes(b"\0" * 4096)  # what a JVM that died while writing leaves
    assert not class_archive.publish(java("-XX:+NoSuchOption"), recording, failed)
    assert not failed.exists() and not recording.exists()


@pytest.mark.slow
def test_a_second_local_session_starts_from_the_archive_the_first_recorded(tmp_path):
    """Also: the JVM runs with the local JIT setting, which `$MMCURATE_JVM_JIT` replaces (empty: HotSpot's own)."""
    env = {**os.environ, "MMCURATE_CACHE_DIR": str(tmp_path), "PYSPARK_PYTHON": sys.executable}
    env.pop(class_archive.SWITCH, None)
    env.pop("SPARK_REMOTE", None)
    script = ("from mmcurate.spark import get_spark\n"
              "spark = get_spark(master='local[1]')\n"
              "assert spark.range(5).count() == 5\n"
              "print(spark.sparkContext.getConf().get('spark.driver.extraJavaOptions'))\n"
              "jvm = spark.sparkContext._jvm.java.lang.management.ManagementFactory.getRuntimeMXBean()\n"
              "print('JVM', list(jvm.getInputArguments()))\n")
    first = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr[-2000:]
    assert "-XX:ArchiveClassesAtExit=" in first.stdout
    assert f"'{LOCAL_JIT}'" in first.stdout.split("JVM", 1)[1]
    archives = list(tmp_path.glob("spark-classes-*.jsa"))
    assert len(archives) == 1 and not list(tmp_path.glob("*.recording"))
    second = subprocess.run([sys.executable, "-c", script], env={**env, "MMCURATE_JVM_JIT": ""},
                            capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr[-2000:]
    assert f"-XX:SharedArchiveFile={archives[0]}" in second.stdout
    assert "TieredStopAtLevel" not in second.stdout
