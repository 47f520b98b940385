"""The pipeline through Spark Connect (what Databricks serverless, Databricks Connect and shared clusters use)
gives what a local session gives.

The test starts the Spark Connect server that pyspark ships (no Delta on it) on a free port of 127.0.0.1
and runs ingest -> annotate -> select -> export in a child Python process, this file run as a script:
PySpark cannot hold a classic and a Connect session in one process (a Connect session switches
`pyspark.sql.functions` to Connect columns for the whole process). This process runs the same steps on
the suite's local session and compares the lakehouses and the shards.
"""
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SERVER_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"
SERVER_CONF = {
    "spark.connect.grpc.binding.address": "127.0.0.1",
    "spark.ui.enabled": "false",
    "spark.sql.shuffle.partitions": "4",  # as the suite's local session
    "spark.hadoop.mapreduce.fileoutputcommitter.marksuccessfuljobs": "false",
}
STARTUP_S = 120


def curate(spark, out: str) -> dict:
    """ingest -> annotate (what nemo_default reads) -> select -> WebDataset export of the packaged demo shards,
    into `out/lake` and `out/wds`; returns the steps' reports."""
    from mmcurate import steps
    from mmcurate.demo import demo_shards
    from mmcurate.lakehouse import Lakehouse

    lake = Lakehouse.open(spark, os.path.join(out, "lake"))
    ingested = steps.ingest(lake, demo_shards(), "webdataset", app_id="connect-test", app_version=1)
    annotated = steps.annotate(lake, steps.stages_for("nemo_default"), recipes=["nemo_default"])
    selection = steps.select(lake, "nemo_default")
    manifest = steps.export(lake, os.path.join(out, "wds"), samples_per_shard=25, seed=0)
    return {
        "backend": lake.backend.name,
        "ingested": ingested,
        "annotated": [a.as_dict() for a in annotated],
        "selection": [row.asDict() for row in selection.summary.collect()],
        "shards": [row.sha256 for row in manifest.orderBy("shard").collect()],
    }


def connect_client(out: str) -> dict:
    """What the child process checks and runs through the Connect session `$SPARK_REMOTE` gives."""
    from pyspark.sql import functions as F

    from mmcurate.io.webdataset_writer import write_webdataset
    from mmcurate.lakehouse import BackendUnavailableError, Lakehouse
    from mmcurate.lakehouse.native import delta_log_folders, has_delta_connector
    from mmcurate.spark import get_spark, is_connect

    spark = get_spark()  # $SPARK_REMOTE: a Connect client, as on Databricks Connect
    report = {"is_connect": is_connect(spark), "has_delta_connector": has_delta_connector(spark)}
    try:
        Lakehouse.open(spark, os.path.join(out, "native"), backend="native")
        report["native_error"] = None
    except BackendUnavailableError as e:
        report["native_error"] = str(e)
    report.update(curate(spark, out))
    lake = Lakehouse.open(spark, os.path.join(out, "lake"), backend="embedded")
    report["tables"] = lake.tables()
    report["delta_log_folders"] = delta_log_folders(spark, lake.location("items").rsplit("/", 1)[0])
    bad = lake.read("curated_items").withColumn(
        "modality", F.when(F.col("position") == 0, F.lit("audio")).otherwise(F.col("modality")))
    try:
        write_webdataset(bad, lake.read("images"), os.path.join(out, "bad_wds"))
        report["bad_modality_error"] = None
    except ValueError as e:
        report["bad_modality_error"] = str(e)
    return report


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(port: int, timeout_s: float, process=None) -> bool:
    """Whether 127.0.0.1:port accepts connections within timeout_s (False at once if `process` has exited)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and (process is None or process.poll() is None):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(0.5)
    return False


def child_env(**extra: str) -> dict:
    """This environment with the tree's src first on PYTHONPATH and this interpreter for Python workers."""
    env = dict(os.environ, PYSPARK_PYTHON=sys.executable, PYSPARK_DRIVER_PYTHON=sys.executable, **extra)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO / "src"), env.get("PYTHONPATH")) if p)
    return env


class ConnectServer:
    """pyspark's own Spark Connect server (`local[2]`, no Delta) as a subprocess of this test."""

    def __init__(self, log: Path):
        import pyspark

        self.port, self.log = free_port(), log
        submit = Path(pyspark.__file__).parent / "bin" / "spark-submit"
        conf = {**SERVER_CONF, "spark.connect.grpc.binding.port": str(self.port)}
        command = [str(submit), "--class", SERVER_CLASS, "--master", "local[2]", "--driver-memory", "2g",
                   *[arg for key, value in conf.items() for arg in ("--conf", f"{key}={value}")]]
        with open(log, "wb") as sink:  # its own process group: stopping it stops its Python workers too
            self.process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=child_env(),
                                            start_new_session=True)

    @property
    def url(self) -> str:
        return f"sc://127.0.0.1:{self.port}"

    def wait_ready(self) -> None:
        if not listening(self.port, STARTUP_S, self.process):
            pytest.fail(f"Spark Connect server did not start (exit code {self.process.poll()}):\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


@pytest.fixture(scope="module")
def connect_server(tmp_path_factory):
    server = ConnectServer(tmp_path_factory.mktemp("connect") / "server.log")
    yield server
    server.stop()


def start_client(server: ConnectServer, out: Path) -> subprocess.Popen:
    """This file as a script in a fresh interpreter (a Connect session only); it waits for the server."""
    with open(out.parent / f"{out.name}-client.log", "w") as log:  # the child keeps its own handle
        return subprocess.Popen([sys.executable, __file__, str(out), str(server.port)], stdout=log,
                                stderr=subprocess.STDOUT, env=child_env(SPARK_REMOTE=server.url))


def client_report(client: subprocess.Popen, server: ConnectServer, out: Path) -> dict:
    """The client's report, once it is done; its log and the server's in the failure otherwise."""
    try:
        code = client.wait(timeout=300)
    except subprocess.TimeoutExpired:
        client.kill()
        code = client.wait()
    if code != 0:
        log = (out.parent / f"{out.name}-client.log").read_text(errors="replace")
        pytest.fail(f"Connect client failed ({code}):\n{log[-6000:]}\nserver log:\n{server.log_tail()}")
    return json.loads((out / "report.json").read_text())


def tables(spark, root: Path, name: str):
    from mmcurate.lakehouse import Lakehouse

    return Lakehouse.open(spark, str(root / "lake"), backend="embedded").read(name)


@pytest.mark.slow
def test_pipeline_through_spark_connect_equals_a_local_run(spark, connect_server, tmp_path):
    from chispa import assert_df_equality

    client = start_client(connect_server, tmp_path / "connect")  # runs while the local session works
    try:
        local = json.loads(json.dumps(curate(spark, str(tmp_path / "local")), default=str))
        connect_server.wait_ready()
        remote = client_report(client, connect_server, tmp_path / "connect")
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()

    # the probe asked the server: no Delta there, so auto picked embedded and native is refused, naming why
    assert remote["is_connect"] and not remote["has_delta_connector"]
    assert "backend='native' needs Delta on the Spark server" in remote["native_error"]
    assert "format('delta') does not resolve" in remote["native_error"]
    assert remote["backend"] == local["backend"] == "embedded"
    # the same reports, tables and shards
    for key in ("ingested", "annotated", "selection", "shards"):
        assert remote[key] == local[key], key
    assert local["selection"][-1]["dropped"] > 0 and local["ingested"]["quarantined"] > 0  # the ledger is not empty
    for name in ("items", "images", "quarantine", "image_scores", "image_qr", "curated_items", "drops"):
        assert_df_equality(tables(spark, tmp_path / "connect", name), tables(spark, tmp_path / "local", name),
                           ignore_row_order=True, ignore_nullable=True)
    shards = sorted(p.name for p in (tmp_path / "local" / "wds").glob("*.tar"))
    assert shards and shards == sorted(p.name for p in (tmp_path / "connect" / "wds").glob("*.tar"))
    for name in shards:
        assert (tmp_path / "connect" / "wds" / name).read_bytes() == (tmp_path / "local" / "wds" / name).read_bytes()
    lineage = [spark.read.parquet(str(tmp_path / side / "wds" / "lineage")) for side in ("connect", "local")]
    assert_df_equality(*lineage, ignore_row_order=True)
    # JVM-free paths: the server lists the table folders; a writer task's ValueError comes back as one
    assert remote["delta_log_folders"] == remote["tables"] == sorted(remote["tables"]) and "drops" in remote["tables"]
    assert "unsupported modality 'audio' at position 0" in remote["bad_modality_error"]


if __name__ == "__main__":  # the Connect client of the test above: out_dir, server port
    if not listening(int(sys.argv[2]), STARTUP_S):
        sys.exit(f"no Spark Connect server on port {sys.argv[2]}")
    target = Path(sys.argv[1])
    target.mkdir(parents=True, exist_ok=True)
    result = connect_client(str(target))
    (target / "report.json").write_text(json.dumps(result, default=str))
