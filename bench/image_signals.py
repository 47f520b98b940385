"""Image signals (decode, size, sharpness, QR area ratio, pHash) through Spark vs a bare loop, one run.

    python bench/image_signals.py --images 2000

Both sides score the same images (the real photos, screenshots and figures of the packaged demo
shards, each re-encoded once with a distinct pixel so every image is unique) with the same
`image_signals` function: Spark runs the `ImageScores` stage (iterator pandas UDF on local[2]) over
an `images` Delta table; the bare loop is 2 processes (as many as Spark's cores) reading the same
bytes from a local Parquet copy. Prints seconds and the ratio (goal <= 1.3x).
"""
from __future__ import annotations

import argparse
import io
import os
import shutil
import sys
import tarfile
import tempfile
from multiprocessing import Pool
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))
from _common import report, timed, run  # noqa: E402

import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
from PIL import Image  # noqa: E402

from mmcurate.annotate.image_signals import image_signals  # noqa: E402
from mmcurate.images import sha256_hex  # noqa: E402

DEMO = Path(__file__).resolve().parents[1] / "src" / "mmcurate" / "demo_data" / "wds"


def demo_images() -> list[Image.Image]:
    out = []
    for shard in sorted(DEMO.glob("*.tar")):
        with tarfile.open(shard) as tar:
            for member in tar:
                if member.isfile() and member.name.endswith((".png", ".jpg", ".jpeg")):
                    try:
                        image = Image.open(io.BytesIO(tar.extractfile(member).read()))
                        image.load()
                        out.append(image.convert("RGB"))
                    except OSError:
                        continue
    return out


def unique_jpegs(n: int) -> list[bytes]:
    """n distinct JPEGs: demo images cycled, each with one pixel changed so the bytes differ."""
    base = demo_images()
    out = []
    for i in range(n):
        image = base[i % len(base)].copy()
        image.putpixel((0, 0), (i % 256, (i // 256) % 256, 7))
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=90)
        out.append(buffer.getvalue())
    return out


def bare_chunk(path_and_range: tuple[str, int, int]) -> int:
    path, start, stop = path_and_range
    blobs = pq.read_table(path, columns=["binary_content"]).column(0).to_pylist()[start:stop]
    return sum(1 for data in blobs if image_signals(data)["decode_ok"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=2000)
    args = parser.parse_args()

    from mmcurate.annotate.image_scores import ImageScores
    from mmcurate.lakehouse import Lakehouse
    from mmcurate.spark import get_spark

    work = Path(tempfile.mkdtemp(prefix="mmcurate-bench-signals-"))
    try:
        blobs = unique_jpegs(args.images)
        table = pa.table({"image_id": [sha256_hex(b) for b in blobs], "binary_content": blobs})
        local = str(work / "images.parquet")
        pq.write_table(table, local)
        stage = ImageScores()
        spark = get_spark(master="local[2]", conf=stage.spark_conf)
        lake = Lakehouse.open(spark, str(work / "lake"), backend="embedded")
        lake.write(spark.read.parquet(local).repartition(8), "images")
        spark.range(4).count()

        def bare():
            half = args.images // 2
            with Pool(2) as pool:
                pool.map(bare_chunk, [(local, 0, half), (local, half, args.images)])

        def ours():
            scored = lake.read("images").transform(stage)
            assert scored.where("decode_ok").count() == args.images

        times = {"bare loop, 2 processes": timed(bare), "ImageScores on Spark": timed(ours)}
        mb = sum(len(b) for b in blobs) / 2**20
        print(f"{args.images} unique JPEGs ({mb:.0f} MiB), local[2]")
        ratio = report("decode + size + sharpness + QR + pHash", times, "bare loop, 2 processes", goal=1.3)
        print(f"\nRESULT image_signals_ratio={ratio:.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    run(main)
