"""Peak memory of ingest on a 1 GB shard and a 10,000-image document, with a 2 GB Spark JVM; or of a whole
pipeline (ingest, image scoring, select, WebDataset export) over a generated input of N samples.

    python bench/memory.py --shard-mb 1024
    python bench/memory.py --pipeline-samples 100000

Writes one WebDataset shard of about `--shard-mb` MiB (documents of 10 distinct ~400 KB JPEGs each)
plus a shard holding one document with 10,000 images, then runs `mmcurate ingest` on them in a child
process with `spark.driver.memory=2g` (local mode: the driver JVM is the executor) and samples the
resident memory of that whole process tree (JVM + Python workers) every 100 ms from /proc.
Memory is bounded by batch size (512 rows / 32 MiB per Arrow batch) and one document, not by the
shard: the figure to read is the peak, next to the input size.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from PIL import Image

sys.path.insert(0, os.path.dirname(__file__))
from _common import write_nemo_default_config  # noqa: E402
from _data import add_member, noise_jpeg, write_samples  # noqa: E402


def write_big_shard(path: Path, target_bytes: int) -> int:
    """Documents of 10 images until the shard reaches target_bytes; bytes differ per image (a
    distinct trailer after the JPEG end marker), so nothing is deduplicated away."""
    bases = [noise_jpeg(seed) for seed in range(8)]
    written, n = 0, 0
    with tarfile.open(path, "w") as tar:
        while written < target_bytes:
            key = f"big{n:06d}"
            images = []
            for i in range(10):
                data = bases[(n + i) % len(bases)] + f"{key}-{i}".encode()
                member = f"{key}.{2 * i + 1}.jpg"
                add_member(tar, member, data)
                images.append(member)
                written += len(data)
            texts = [f"paragraph {i} of {key}" for i in range(10)]
            record = {"sample_id": key, "texts": [t for pair in zip(texts, [None] * 10) for t in pair],
                      "images": [m for pair in zip([None] * 10, images) for m in pair]}
            add_member(tar, f"{key}.json", json.dumps(record).encode())
            n += 1
    return n


def write_many_images_doc(path: Path, n_images: int = 10_000) -> None:
    with tarfile.open(path, "w") as tar:
        members = []
        for i in range(n_images):
            buffer = io.BytesIO()
            Image.new("RGB", (8, 8), (i % 256, (i // 256) % 256, 3)).save(buffer, "PNG")
            name = f"many.{i}.png"
            add_member(tar, name, buffer.getvalue())
            members.append(name)
        record = {"sample_id": "many", "texts": [None] * n_images + ["one caption"], "images": members + [None]}
        add_member(tar, "many.json", json.dumps(record).encode())


def watch(command: list[str], env: dict) -> tuple[int, str, float, int, list[int]]:
    """Run command, sampling the resident memory of its process tree every 100 ms: (exit code, stdout, seconds,
    peak KiB of the tree, the three largest per-process peaks)."""
    started = time.time()
    child = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    peak_total, peak_each = 0, {}
    while child.poll() is None:
        rss = tree_rss_kib(child.pid)
        peak_total = max(peak_total, sum(rss.values()))
        for pid, kib in rss.items():
            peak_each[pid] = max(peak_each.get(pid, 0), kib)
        time.sleep(0.1)
    return child.returncode, child.stdout.read(), time.time() - started, peak_total, \
        sorted(peak_each.values(), reverse=True)[:3]


def pipeline_run(work: Path, n_samples: int, driver_memory: str) -> None:
    """Generate the input, then `mmcurate run` a config (ingest, image_scores, nemo_default, export) on it."""
    shards = work / "shards"
    shards.mkdir()
    started = time.time()
    n_images = write_samples(shards, n_samples)
    size = sum(p.stat().st_size for p in shards.glob("*.tar")) / 2**20
    print(f"input: {n_samples} samples, {n_images} distinct images, {size:.0f} MiB in "
          f"{len(list(shards.glob('*.tar')))} shards (generated in {time.time() - started:.0f} s)")
    config = write_nemo_default_config(work, shards, "memory")
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "MMCURATE_SPARK_MASTER": "local[2]",
           "MMCURATE_DRIVER_MEMORY": driver_memory}
    code, output, seconds, peak, largest = watch(
        [sys.executable, "-m", "mmcurate.cli", "run", "--config", str(config), "--report", str(work / "report.json")],
        env)
    if code != 0:
        raise SystemExit(f"the pipeline failed with exit code {code}")
    report = json.loads((work / "report.json").read_text())
    for step in report["steps"]:
        print(f"  {step['step']:<22} {step['seconds']:7.1f} s")
    exported = next(s for s in report["steps"] if s["step"].startswith("export"))
    print(f"{n_samples} samples in, {exported['samples']} exported in {seconds:.0f} s "
          f"({n_samples / seconds:.0f} samples/s, JVM start included)")
    print(f"peak resident memory of the whole tree: {peak / 2**20:.2f} GiB "
          f"(largest processes: {', '.join(f'{k / 2**10:.0f} MiB' for k in largest)}); JVM heap cap {driver_memory}")
    print(f"\nRESULT samples={n_samples} seconds={seconds:.0f} peak_rss_gib={peak / 2**20:.2f} input_mib={size:.0f}")


def tree_rss_kib(root: int) -> dict[int, int]:
    """Current resident KiB of `root` and all its descendants, from /proc."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parents[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
    tree, frontier = {root}, [root]
    while frontier:
        pid = frontier.pop()
        children = [c for c, p in parents.items() if p == pid]
        tree.update(children)
        frontier.extend(children)
    out = {}
    for pid in tree:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        out[pid] = int(line.split()[1])
        except OSError:
            continue
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shard-mb", type=int, default=1024)
    parser.add_argument("--driver-memory", default="2g")
    parser.add_argument("--pipeline-samples", type=int, default=None,
                        help="instead: a whole pipeline over this many generated samples")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="mmcurate-bench-memory-"))
    try:
        if args.pipeline_samples:
            pipeline_run(work, args.pipeline_samples, args.driver_memory)
            return
        shards = work / "shards"
        shards.mkdir()
        docs = write_big_shard(shards / "big-000000.tar", args.shard_mb * 2**20)
        write_many_images_doc(shards / "many-000000.tar")
        sizes = {p.name: p.stat().st_size / 2**20 for p in shards.glob("*.tar")}
        print(f"input: {', '.join(f'{k} {v:.0f} MiB' for k, v in sizes.items())} ({docs} documents in the big shard)")

        env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "MMCURATE_SPARK_MASTER": "local[2]",
               "MMCURATE_DRIVER_MEMORY": args.driver_memory}
        command = [sys.executable, "-m", "mmcurate.cli", "ingest", str(shards), "--format", "webdataset",
                   "--lakehouse", str(work / "lake")]
        code, output, seconds, peak_total, largest = watch(command, env)
        if code != 0:
            raise SystemExit(f"ingest failed with exit code {code}")
        summary = json.loads(output[output.index("{"):])
        print(f"ingested {summary['documents']} documents, {summary['image_items']} image items, "
              f"quarantined {summary['quarantined']} in {seconds:.0f} s")
        print(f"peak resident memory of the whole tree: {peak_total / 2**20:.2f} GiB "
              f"(largest processes: {', '.join(f'{k / 2**10:.0f} MiB' for k in largest)}); "
              f"input {sum(sizes.values()) / 1024:.2f} GiB, JVM heap cap {args.driver_memory}")
        print(f"\nRESULT peak_rss_gib={peak_total / 2**20:.2f} input_gib={sum(sizes.values()) / 1024:.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
