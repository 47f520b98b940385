"""One session-scoped local SparkSession for the whole suite, plus shared paths."""
import json
import os
import sys
from pathlib import Path

import pytest

os.environ["PYSPARK_PYTHON"] = sys.executable
os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable

REPO = Path(__file__).resolve().parent
SHARED_DATA = REPO.parent / "shared" / "data"
TEST_DATA = REPO / "tests" / "data"


@pytest.fixture(scope="session")
def spark():
    from mmcurate.spark import get_spark

    session = get_spark(master="local[2]", app_name="mmcurate-tests", conf={"spark.sql.shuffle.partitions": "4"})
    yield session
    session.stop()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared sample data next to the repository; its absence fails the test (never a silent skip)."""
    if not SHARED_DATA.is_dir():
        pytest.fail(f"shared sample data not found at {SHARED_DATA} (see README: Test)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def test_data() -> Path:
    return TEST_DATA


@pytest.fixture(scope="session")
def photo_jpg(test_data) -> bytes:
    """A real 512x512 photograph (OpenCV's baboon.jpg): sharp, no QR code."""
    return (test_data / "images" / "baboon.jpg").read_bytes()


@pytest.fixture(scope="session")
def truncated_jpg(test_data) -> bytes:
    """Pillow's truncated JPEG test file: the header reads, the pixels do not decode."""
    return (test_data / "images" / "truncated_jpeg.jpg").read_bytes()


@pytest.fixture(scope="session")
def solid_png():
    """Factory: PNG bytes of a solid-colour RGB image (sharpness exactly 0)."""
    import io

    from PIL import Image

    def make(width: int, height: int, colour=(90, 140, 200)) -> bytes:
        buffer = io.BytesIO()
        Image.new("RGB", (width, height), colour).save(buffer, "PNG")
        return buffer.getvalue()

    return make


@pytest.fixture(scope="session")
def qr_png() -> bytes:
    """A real QR code (segno) filling its PNG frame."""
    import io

    import segno

    buffer = io.BytesIO()
    segno.make("https://example.com/mmcurate", error="m").save(buffer, kind="png", scale=10)
    return buffer.getvalue()


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory, spark) -> dict:
    """Small random-initialised models of the real architectures, saved to disk in the formats users have
    (mmcurate.models.tiny) plus a fastText classifier trained here: name -> path."""
    from mmcurate.annotate.quality import train_quality_classifier
    from mmcurate.models import tiny

    root = tmp_path_factory.mktemp("models")
    paths = {
        "clip": tiny.save_open_clip(str(root / "clip")),
        "gpt2": tiny.save_gpt2(str(root / "gpt2")),
        "sentence_bert": tiny.save_sentence_bert(str(root / "sentence_bert")),
        "dinov2": tiny.save_dinov2(str(root / "dinov2")),
        "aesthetic": tiny.save_head("aesthetic", str(root / "aesthetic.safetensors"), width=16),
        "nsfw": tiny.save_head("nsfw", str(root / "nsfw.safetensors"), width=16),
    }
    good = "the history of science and the river city in a document with a figure and a table".split()
    bad = "buy cheap now click free win casino offer deal prize".split()
    rows = [(" ".join(good[i % 7:] + good[:i % 7]), True) for i in range(60)]
    rows += [(" ".join(bad[i % 5:] + bad[:i % 5]), False) for i in range(60)]
    labelled = spark.createDataFrame(rows, "document string, label boolean")
    paths["fasttext"] = train_quality_classifier(labelled, str(root / "quality.bin"), lr=0.5, epoch=10, dim=16)["path"]
    return paths


@pytest.fixture(scope="session")
def model_stage_params(tiny_models) -> dict:
    """The parameters each model stage of the catalogue runs with on the tiny models (CPU)."""
    clip = {"model_path": tiny_models["clip"], "device": "cpu", "batch_size": 8}
    gpt2 = {"model_path": tiny_models["gpt2"], "device": "cpu"}
    return {
        "image_embeddings": clip, "text_embeddings": clip,
        "aesthetic_scores": {"model_path": tiny_models["aesthetic"], "device": "cpu"},
        "nsfw_scores": {"model_path": tiny_models["nsfw"], "device": "cpu"},
        "text_perplexity": gpt2, "rewritten_texts": {**gpt2, "max_new_tokens": 4},
        "quality_scores": {"model_path": tiny_models["fasttext"]},
        "text_tokens": {"model_path": tiny_models["gpt2"]},
    }


@pytest.fixture(scope="session")
def item_files():
    """Where each file of a lakehouse's `items` came from, by its name: `items` for parts a step's tasks staged
    and adopted as they are (Lakehouse.adopt), `part` for files Spark wrote."""
    import deltalake
    import pyarrow as pa

    def kinds(lake) -> set:
        actions = pa.table(deltalake.DeltaTable(lake.location("items")).get_add_actions(flatten=True))
        return {path.rsplit("/", 1)[-1].split("-")[0] for path in actions.column("path").to_pylist()}

    return kinds


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def standalone_cluster(tmp_path_factory):
    """A Spark standalone master and two one-core workers on 127.0.0.1 (pyspark's own `bin/spark-class`):
    executors are separate JVMs and Python workers, so driver-only state shows up. Yields
    {"master": spark://..., "spark_home", "env", "workers": [Popen, ...]}; stopped at the end."""
    import signal
    import subprocess
    import time
    import urllib.request

    import pyspark

    home = os.path.dirname(pyspark.__file__)
    root = tmp_path_factory.mktemp("cluster")
    env = {**os.environ, "SPARK_HOME": home, "SPARK_LOCAL_IP": "127.0.0.1", "PYSPARK_PYTHON": sys.executable,
           "PYSPARK_DRIVER_PYTHON": sys.executable, "SPARK_LOG_DIR": str(root / "logs"),
           "SPARK_WORKER_DIR": str(root / "work")}
    port, ui = free_port(), free_port()
    master = f"spark://127.0.0.1:{port}"
    spark_class = os.path.join(home, "bin", "spark-class")
    logs = []

    def start(name: str, *args: str) -> subprocess.Popen:
        log = open(root / f"{name}.log", "wb")
        logs.append(log)
        return subprocess.Popen([spark_class, *args], env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)

    processes = [start("master", "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                       "--port", str(port), "--webui-port", str(ui))]
    try:
        for i in range(2):
            processes.append(start(f"worker{i}", "org.apache.spark.deploy.worker.Worker", master, "--host", "127.0.0.1",
                                   "--cores", "1", "--memory", "2g", "--webui-port", str(free_port()),
                                   "--work-dir", str(root / f"work{i}")))
        deadline = time.time() + 120
        while True:  # the master's JSON status lists the workers once they registered
            try:
                status = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{ui}/json/", timeout=5).read())
                if sum(w["state"] == "ALIVE" for w in status.get("workers", [])) == 2:
                    break
            except OSError:
                pass
            if time.time() > deadline:
                raise RuntimeError(f"standalone cluster did not start; logs in {root}")
            time.sleep(1)
        yield {"master": master, "spark_home": home, "env": env, "workers": processes[1:], "root": root}
    finally:
        for process in processes:
            try:
                os.killpg(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        for log in logs:
            log.close()


@pytest.fixture(scope="session")
def demo_run(spark, tmp_path_factory):
    """The packaged demo pipeline run once for the session (`mmcurate demo`, local[2]): (output folder, what it
    printed). Tests that need a curated lakehouse read `out / "lake"` instead of running a pipeline again."""
    import contextlib
    import io

    from mmcurate.cli import main

    out = tmp_path_factory.mktemp("demo")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["demo", "--out", str(out)]) == 0
    return out, printed.getvalue()


@pytest.fixture
def demo_copy(demo_run, tmp_path):
    """A copy of the session's demo lakehouse under `tmp_path / "lake"`, so a test's writes stay its own."""
    import shutil

    out, _ = demo_run
    shutil.copytree(out / "lake", tmp_path / "lake")
    return tmp_path
