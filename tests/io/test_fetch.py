"""The image fetch stage against a local HTTP server (127.0.0.1, a free port): every status, one request per
distinct URL, content addressing, opt-outs never requested, and a resumable step."""
import hashlib
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from mmcurate import steps
from mmcurate.io.fetch import FetchOptions, fetch_images, needs_fetch
from mmcurate.lakehouse import Lakehouse

ITEMS_DDL = ("sample_id string, position int, modality string, content_type string, text_content string, "
             "image_id string, image_url string, source_ref string, materialize_error string")
MAX_BYTES = 1_000_000
OPTIONS = dict(concurrency=4, timeout=1.0, retries=1, backoff=0.05, max_bytes=MAX_BYTES)


class Server:
    """A local image host counting requests per path; routes: path -> (status, headers, body, delay s)."""

    def __init__(self, routes: dict):
        self.routes, self.requests, self.lock = routes, Counter(), threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                with server.lock:
                    server.requests[self.path] += 1
                    seen = server.requests[self.path]
                route = server.routes.get(self.path, (404, {}, b"not found", 0))
                if callable(route):
                    route = route(seen)
                status, headers, body, delay = route
                time.sleep(delay)
                try:
                    self.send_response(status)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.handle_error = lambda *a: None
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"


@pytest.fixture(scope="module")
def photos(photo_jpg, shared_data):
    return {"baboon": photo_jpg, "flower": (shared_data / "images/pillow_tests/flower.jpg").read_bytes(),
            "hopper": (shared_data / "images/pillow_tests/hopper.jpg").read_bytes()}


@pytest.fixture(scope="module")
def server(photos):
    jpeg = {"Content-Type": "image/jpeg"}
    routes = {
        "/photo.jpg": (200, jpeg, photos["baboon"], 0),
        "/same.jpg": (200, {"Content-Type": "application/octet-stream"}, photos["baboon"], 0),
        "/slow.jpg": (200, jpeg, photos["flower"], 2.5),
        "/redirect": (302, {"Location": "/flower.jpg"}, b"", 0),
        "/flower.jpg": (200, jpeg, photos["flower"], 0),
        "/huge.jpg": (200, jpeg, photos["baboon"] + b"\0" * (2 * MAX_BYTES), 0),  # no Content-Length: read is cut
        "/page.html": (200, {"Content-Type": "text/html"}, b"<html>an image was here</html>", 0),
        "/noai.jpg": (200, {**jpeg, "X-Robots-Tag": "noindex, noai"}, photos["baboon"], 0),
        "/flaky.jpg": lambda seen: (503, {}, b"busy", 0) if seen == 1 else (200, jpeg, photos["hopper"], 0),
        "/to-denied": (302, {"Location": None}, b"", 0),  # Location set below: the denied host
    }
    host = Server(routes)
    routes["/to-denied"] = (302, {"Location": host.url("/secret2.jpg", "localhost")}, b"", 0)
    yield host
    host.httpd.shutdown()


def items_frame(spark, server):
    """Image items with URLs (photo.jpg on 3 samples), a text item, and an item that already has bytes."""
    urls = ["/photo.jpg", "/same.jpg", "/slow.jpg", "/missing.jpg", "/redirect", "/huge.jpg", "/page.html",
            "/noai.jpg", "/flaky.jpg", "/to-denied"]
    rows = [("a", i, "image", None, None, None, server.url(u), None, None) for i, u in enumerate(urls)]
    rows += [("b", 0, "image", None, None, None, server.url("/photo.jpg"), None, None),
             ("c", 0, "image", None, None, None, server.url("/photo.jpg"), None, None),
             ("c", 1, "image", None, None, None, server.url("/secret.jpg", "localhost"), None, None),
             ("c", 2, "text", None, "words", None, None, None, None),
             ("c", 3, "image", None, None, "0" * 64, server.url("/photo.jpg"), None, None)]
    return spark.createDataFrame(rows, ITEMS_DDL)


def by_position(rows):
    return {(r.sample_id, r.position): (r.image_id, r.materialize_error) for r in rows}


def test_fetch_images_statuses_and_requests(spark, server, photos, tmp_path):
    server.requests.clear()
    items = items_frame(spark, server)
    with fetch_images(items, FetchOptions(deny=("localhost",), **OPTIONS), staging=str(tmp_path)) as done:
        assert sum(server.requests.values()) > 0               # staged: downloaded here, before Spark lists the parts
        got = by_position(done.items.collect())
        counts = done.counts()
        images = {r.image_id: r for r in done.images.collect()}
        assert [p.name for p in tmp_path.glob("*/part-*.parquet")]
    assert list(tmp_path.iterdir()) == []                      # the staged bytes go with the result
    digest = {k: hashlib.sha256(v).hexdigest() for k, v in photos.items()}
    status = {k: (v[1] or "").split(":")[0] for k, v in got.items()}
    assert got[("a", 0)] == (digest["baboon"], None) == got[("a", 1)] == got[("b", 0)] == got[("c", 0)]
    assert got[("a", 4)] == (digest["flower"], None)          # redirect followed
    assert got[("a", 8)] == (digest["hopper"], None)          # 503 retried
    assert [status[("a", i)] for i in (2, 3, 5, 6, 7, 9)] == [
        "timeout", "http_404", "too_big", "not_an_image", "denied", "denied"]
    assert status[("c", 1)] == "denied" and "deny list 'localhost'" in got[("c", 1)][1]
    assert "X-Robots-Tag" in got[("a", 7)][1] and "redirect to" in got[("a", 9)][1]
    assert got[("c", 2)] == (None, None) and got[("c", 3)] == ("0" * 64, None)  # not tried: unchanged
    assert sorted(images) == sorted(digest.values())          # two URLs serving the same bytes: stored once
    assert (images[digest["baboon"]].width, images[digest["baboon"]].content_type) == (512, "image/jpeg")
    assert counts["tried"] == 13 and counts["urls"] == 11 and counts["materialized"] == 6
    assert counts["failed"] == {"timeout": 1, "http_404": 1, "too_big": 1, "not_an_image": 1, "denied": 3}
    assert server.requests["/photo.jpg"] == 1                 # one URL on 3 items: requested once
    assert server.requests["/flaky.jpg"] == 2 and server.requests["/slow.jpg"] == 2  # retries=1
    assert server.requests["/secret.jpg"] == server.requests["/secret2.jpg"] == 0  # denied: never requested
    assert server.requests["/redirect"] == server.requests["/flower.jpg"] == 1


def test_noai_can_be_ignored(spark, server, photos):
    items = spark.createDataFrame([("s", 0, "image", None, None, None, server.url("/noai.jpg"), None, None)], ITEMS_DDL)
    with fetch_images(items, FetchOptions(honour_noai=False, **OPTIONS)) as done:  # no staging: Spark caches the bytes
        assert done.items.first().image_id == hashlib.sha256(photos["baboon"]).hexdigest()
        assert [r.width for r in done.images.collect()] == [512]


def test_step_commits_and_resumes(spark, server, tmp_path, photos):
    lake = Lakehouse.open(spark, str(tmp_path / "lake"), backend="embedded")
    lake.write(items_frame(spark, server), "items")
    options = FetchOptions(deny=("localhost",), **OPTIONS)
    server.requests.clear()
    first = steps.fetch(lake, options=options)
    assert first["new_images"] == 3 and first["failed"]["denied"] == 3
    assert lake.read("images").count() == 3
    assert lake.read("items").where("image_id IS NOT NULL").count() == 7  # 6 fetched + the one that had bytes
    assert list((tmp_path / "lake" / "_scratch" / "fetch").iterdir()) == [] and lake.tables() == ["images", "items"]
    requested = sum(server.requests.values())

    again = steps.fetch(lake, options=options)                # fetched or failed: nothing new is requested
    assert again["tried"] == 0 and sum(server.requests.values()) == requested
    assert again["version"] == first["version"]

    retried = steps.fetch(lake, options=options, retry_errors=True)  # only the transient failure (the timeout)
    assert retried["tried"] == 1 and retried["failed"] == {"timeout": 1}
    assert lake.read("images").count() == 3
    errors = lake.read("items").where("materialize_error IS NOT NULL")
    assert errors.count() == 7 and errors.where(needs_fetch("all")).count() == 7
    assert errors.where(needs_fetch(True)).count() == 1


def test_options_checked():
    with pytest.raises(ValueError, match="concurrency"):
        FetchOptions(concurrency=0)
    assert FetchOptions(deny="a.com, example.org/private").deny == ("a.com", "example.org/private")
    with pytest.raises(ValueError, match="retry_errors"):
        needs_fetch("sometimes")


def test_cli_and_pipeline_config(spark, server, tmp_path, capsys, photos):
    import json

    from mmcurate.cli import main
    from mmcurate.pipeline import Pipeline
    from mmcurate.runner import STEPS

    rows = [("s", 0, "image", None, None, None, server.url("/flower.jpg"), None, None),
            ("s", 1, "image", None, None, None, server.url("/secret.jpg", "localhost"), None, None)]
    lake = Lakehouse.open(spark, str(tmp_path / "lake"), backend="embedded")
    lake.write(spark.createDataFrame(rows, ITEMS_DDL), "items")
    server.requests.clear()
    assert main(["fetch", "--lakehouse", str(tmp_path / "lake"), "--deny", "localhost,example.org",
                 "--timeout", "5", "--retries", "0", "--concurrency", "2"]) == 0
    counts = json.loads(capsys.readouterr().out)
    assert (counts["tried"], counts["materialized"], counts["failed"], counts["new_images"]) == (2, 1, {"denied": 1}, 1)
    assert server.requests["/secret.jpg"] == 0

    assert STEPS.index("fetch") == STEPS.index("materialize") + 1
    config = Pipeline.from_dict({"name": "f", "lakehouse": str(tmp_path / "lake"),
                                 "fetch": {"deny": ["localhost"], "timeout": 5, "retry_errors": "all"}})
    assert config.fetch["options"].deny == ("localhost",) and config.fetch["retry_errors"] == "all"
