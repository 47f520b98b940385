"""Image fetch throughput: `fetch_images` (Spark, one task, the bytes staged as `steps.fetch` does) vs a bare
concurrent.futures loop with the same client (`fetch_row`: urllib, probe, sha256) and concurrency, from a local
server, as a ratio in one run.

    python bench/fetch.py --urls 1000 --latency-ms 20 --concurrency 16

The server (127.0.0.1, a free port, in a process of its own so that neither client shares its interpreter lock)
answers every /img/<n>.jpg with the same photo after `latency-ms`, so the numbers measure the fetch machinery
and the Spark overhead, not a network.
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))
from _common import load_average, median_times, report, run, work_dir  # noqa: E402

from mmcurate.io.fetch import FetchOptions, build_opener, fetch_images, fetch_row  # noqa: E402
from mmcurate.spark import get_spark  # noqa: E402

PHOTO = Path(__file__).resolve().parent.parent / "tests" / "data" / "images" / "baboon.jpg"


def serve(body: bytes, latency: float) -> ThreadingHTTPServer:
    """A threaded local server answering any GET with `body` (image/jpeg) after `latency` seconds."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            time.sleep(latency)
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.request_queue_size = 256
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def serve_apart(body: bytes, latency: float) -> tuple[multiprocessing.Process, int]:
    """`serve` in a child process; returns it and the port it listens on."""
    receive, send = multiprocessing.Pipe(duplex=False)

    def child():
        server = serve(body, latency)
        send.send(server.server_address[1])
        threading.Event().wait()

    process = multiprocessing.get_context("fork").Process(target=child, daemon=True)
    process.start()
    return process, receive.recv()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--urls", type=int, default=1000)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()

    with work_dir("mmcurate-bench-fetch-") as scratch:  # the staged bytes
        server, port = serve_apart(PHOTO.read_bytes(), args.latency_ms / 1000)  # before Spark: a clean fork
        urls = [f"http://127.0.0.1:{port}/img/{n}.jpg" for n in range(args.urls)]
        options = FetchOptions(concurrency=args.concurrency, timeout=30.0)
        spark = get_spark(master="local[2]", app_name="bench-fetch", conf={"spark.sql.shuffle.partitions": "1"})
        items = spark.createDataFrame(
            [(f"s{n}", 0, "image", None, None, None, url, None, None) for n, url in enumerate(urls)],
            "sample_id string, position int, modality string, content_type string, text_content string, "
            "image_id string, image_url string, source_ref string, materialize_error string").cache()
        items.count()

        def spark_fetch():
            with fetch_images(items, options, staging=str(scratch)) as done:
                counts = done.counts()
            assert counts["materialized"] == args.urls, counts

        def bare_loop():
            opener = build_opener(options)
            with ThreadPoolExecutor(args.concurrency) as pool:
                rows = list(pool.map(lambda url: fetch_row(url, options, opener), urls))
            assert all(r["image_id"] for r in rows)

        with fetch_images(items.limit(20), options, staging=str(scratch)) as warm:  # workers started before timing
            warm.counts()
        times = median_times({"bare concurrent.futures loop": bare_loop, "fetch_images (Spark, 1 task)": spark_fetch},
                             args.repeat)
        report(f"fetch {args.urls} URLs, {args.latency_ms:g} ms latency, concurrency {args.concurrency}", times,
               "bare concurrent.futures loop")
        for name, seconds in times.items():
            print(f"  {name:<34} {args.urls / seconds:8.0f} images/s")
        print(f"  load average {load_average()}")
    server.terminate()


if __name__ == "__main__":
    run(main)
