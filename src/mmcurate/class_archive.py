"""A class-data-sharing archive of the local Spark JVM: sessions `get_spark` builds start about 3 s sooner.

Spark's driver JVM loads some 20,000 classes from its jars at start; HotSpot's AppCDS maps them from an archive
instead. The first local session records the archive when its JVM exits, under a name of its own process, and
publishes it only once that JVM has exited cleanly (a partly written archive would crash the next JVM); later
sessions on the same Java, Spark jars and class-path settings use it. HotSpot checks each archive's JVM build and
class path itself and ignores one that does not match.

Stored in `$MMCURATE_CACHE_DIR` (default `~/.cache/mmcurate`), about 180 MB; `MMCURATE_JVM_CLASS_ARCHIVE=0` turns
it off. Sessions that exist already (Databricks, notebooks), spark-submit's and Spark Connect's are not touched.
"""
from __future__ import annotations

import atexit
import hashlib
import os
import shutil
import subprocess
from pathlib import Path
from typing import Mapping, Optional

import pyspark

SWITCH = "MMCURATE_JVM_CLASS_ARCHIVE"
CLASS_PATH_SETTINGS = ("spark.jars", "spark.jars.packages", "spark.driver.extraClassPath")
"""Settings that change the driver's class path, and so which archive fits it."""
QUIET = "-Xlog:cds=off -Xlog:cds+dynamic=off"
"""HotSpot's archive warnings (classes it cannot archive, an archive it ignores) are not the user's concern."""
EXIT_WAIT_S = 120


def cache_dir() -> Path:
    return Path(os.environ.get("MMCURATE_CACHE_DIR") or Path.home() / ".cache" / "mmcurate")


def archive_for(settings: Mapping[str, str], folder: Optional[Path] = None) -> Optional[Path]:
    """The archive a JVM with these session settings can use (present or not); None when switched off."""
    if os.environ.get(SWITCH, "1").strip().lower() in ("0", "false", "no", "off"):
        return None
    jars = Path(pyspark.__file__).parent / "jars"
    identity = [os.environ.get("JAVA_HOME", ""), shutil.which("java") or "", pyspark.__version__,
                *sorted(p.name for p in jars.glob("*.jar")), *(settings.get(k, "") for k in CLASS_PATH_SETTINGS)]
    return (folder or cache_dir()) / f"spark-classes-{_digest(str(jars))}-{_digest(*identity)}.jsa"


def _digest(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:12]


def java_options(archive: Optional[Path]) -> tuple[str, Optional[Path]]:
    """The JVM options for `archive` and the file this JVM records into when the archive is still to be made
    (to `publish` after the JVM exits). Records left by processes that are gone are removed first."""
    if archive is None:
        return "", None
    if archive.is_file():
        return f"-XX:SharedArchiveFile={archive} {QUIET}", None
    try:
        archive.parent.mkdir(parents=True, exist_ok=True)
        for stale in archive.parent.glob(f"{archive.name}.*.recording"):
            if not _alive(int(stale.name.split(".")[-2])):
                stale.unlink(missing_ok=True)
    except (OSError, ValueError):  # a cache folder this user cannot write: start as Spark does
        return "", None
    recording = archive.with_name(f"{archive.name}.{os.getpid()}.recording")
    return f"-XX:ArchiveClassesAtExit={recording} {QUIET}", recording


def publish(jvm: subprocess.Popen, recording: Path, archive: Path, wait_s: float = EXIT_WAIT_S) -> bool:
    """Wait for the recording JVM to exit, then move its complete archive into place (atomically: a concurrent
    session sees no archive or the whole of it; the first of two recordings wins). Returns whether it was
    published; otherwise the recording is removed."""
    try:
        code = jvm.wait(timeout=wait_s)
    except subprocess.TimeoutExpired:
        code = None
    try:
        if code == 0 and recording.is_file() and recording.stat().st_size > 0 and not archive.exists():
            installation = archive.name.split("-")[2]  # archives of other jars in the same place: never used again
            for other in archive.parent.glob(f"spark-classes-{installation}-*.jsa"):
                other.unlink(missing_ok=True)
            os.replace(recording, archive)
            return True
        if code is not None:  # still writing after the wait: left for a later session to clear once it is gone
            recording.unlink(missing_ok=True)
    except OSError:
        pass
    return False


def publish_at_exit(recording: Path, archive: Path) -> None:
    """At interpreter exit, stop a running SparkContext and end its JVM (as PySpark does: its stdin closes), then
    `publish`."""
    from pyspark import SparkContext

    gateway = SparkContext._gateway
    jvm = getattr(gateway, "proc", None)
    if jvm is None:
        return

    def close_and_publish():
        active = SparkContext._active_spark_context
        if active is not None:  # stopped first: its accumulator server would report the JVM's going as an error
            active.stop()
        if jvm.stdin is not None:
            jvm.stdin.close()
        publish(jvm, recording, archive)

    atexit.register(close_and_publish)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
