"""mmcurate vs NeMo Curator on NeMo's interleaved filters: speed and an exact output comparison.

    python bench/vs_nemo.py --nemo-python /tmp/nemo-venv/bin/python --samples 5000 --shards 8

Input: the WebDataset shards of bench/ingest.py (`write_shards`: the packaged demo documents
copied under fresh sample ids), read by both sides.

NeMo side (bench/_nemo_side.py, run with --nemo-python, an interpreter with nemo-curator 1.4):
InterleavedWebdatasetReader(materialize_on_read=True, sample_id_field="sample_id") -> Blur(100)
-> QRCode(0.05) -> ImageToTextRatio(min, max) -> InterleavedWebdatasetWriterStage, on
RayDataExecutor with a local Ray of 2 CPUs. Its interpreter start/imports and `ray.init` are
reported apart from the pipeline run.

Our side (in this process, local[2]; the JVM start is reported apart): steps.ingest ->
steps.annotate(image_scores) -> steps.select(recipe) -> steps.export, with the recipe `nemo_default`
(decodable, blur >= 100, qr_area_ratio < 0.05, then kept_image_text_ratio in [min, max]: the ratio
over the images the image rules kept, NeMo's stage order in one select; the bounds are read from
that recipe and passed to NeMo).

Comparison: every output tar of each side is read with tarfile; per sample the ordered content
(modality, text or sha256 of the image member's bytes) is compared. Prints samples/s, the speed
ratio and the match, with the first differing samples if any.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))
from ingest import write_shards  # noqa: E402
from _common import ratio_bounds, run, work_dir  # noqa: E402
from _data import add_member, compare, read_output  # noqa: E402

HERE = Path(__file__).resolve().parent


def make_images_unique(in_dir: Path) -> None:
    """Append the member name after each image's end (after JPEG EOI / PNG IEND / GIF trailer): decoders
    ignore it, so pixels and scores are unchanged, but every copy gets its own sha256 and mmcurate can no
    longer score a repeated image once."""
    for path in sorted(in_dir.glob("*.tar")):
        with tarfile.open(path) as tar:
            members = [(m.name, tar.extractfile(m).read()) for m in tar if m.isfile()]
        with tarfile.open(path, "w") as tar:
            for name, data in members:
                if not name.endswith(".json"):
                    data = data + b"\0" + name.encode()
                add_member(tar, name, data)


def run_nemo(python: str, in_dir: Path, out_dir: Path, lo: float, hi: float, executor: str, log: Path) -> dict:
    cmd = [python, str(HERE / "_nemo_side.py"), str(in_dir), str(out_dir), "--min-ratio", repr(lo),
           "--max-ratio", repr(hi), "--num-cpus", "2", "--executor", executor]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYSPARK_PYTHON", "VIRTUAL_ENV")}
    started = time.perf_counter()
    with open(log, "w") as fh:
        proc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env)
    wall = time.perf_counter() - started
    text = log.read_text(errors="replace")
    line = next((l for l in text.splitlines() if l.startswith("NEMO_RESULT ")), None)
    if proc.returncode != 0 or line is None:
        raise SystemExit(f"NeMo side failed (rc={proc.returncode}); last lines of {log}:\n" + "\n".join(text.splitlines()[-30:]))
    return {**json.loads(line[len("NEMO_RESULT "):]), "process_wall_s": wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nemo-python", required=True, help="interpreter with nemo-curator installed")
    parser.add_argument("--samples", type=int, default=5000)
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--nemo-executor", choices=("ray_data", "xenna"), default="ray_data")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("--unique-images", action="store_true",
                        help="give every image copy distinct bytes (trailing data), so no image repeats")
    parser.add_argument("--ratio-bounds", type=float, nargs=2, metavar=("LO", "HI"),
                        help="replace nemo_default's image_text_ratio bounds on both sides (e.g. 0.004 0.1 makes "
                             "the demo data exercise the ratio-after-image-rules difference)")
    args = parser.parse_args()

    from mmcurate import steps
    from mmcurate.lakehouse import Lakehouse
    from mmcurate.select import Recipe
    from mmcurate.spark import get_spark

    recipe = Recipe.from_yaml("nemo_default")
    if args.ratio_bounds:
        lo, hi = args.ratio_bounds
        recipe = replace(recipe, rules=tuple(
            replace(r, predicate=f"kept_image_text_ratio BETWEEN {lo!r} AND {hi!r}") if r.name == "image_text_ratio"
            else r for r in recipe.rules))
    assert [r.name for r in recipe.rules] == ["decodable", "blur", "qrcode", "image_text_ratio"], recipe.rules
    lo, hi = ratio_bounds(recipe)

    with work_dir("mmcurate-vs-nemo-", keep=args.keep) as work:
        in_dir = work / "in"
        in_dir.mkdir()
        write_shards(in_dir, args.samples, args.shards)
        if args.unique_images:
            make_images_unique(in_dir)
        size_mb = sum(p.stat().st_size for p in in_dir.glob("*.tar")) / 2**20
        print(f"input: {args.samples} samples in {args.shards} shards ({size_mb:.0f} MiB); "
              f"load average before: {os.getloadavg()[0]:.2f}", flush=True)

        # NeMo first, alone on the machine (our JVM is not started yet).
        nemo_out = work / "nemo_out"
        nemo = run_nemo(args.nemo_python, in_dir, nemo_out, lo, hi, args.nemo_executor, work / "nemo.log")
        print(f"NeMo done: {nemo}", flush=True)

        started = time.perf_counter()
        spark = get_spark(master="local[2]")
        spark.range(10).count()
        jvm_s = time.perf_counter() - started

        lake = Lakehouse.open(spark, str(work / "lake"), backend="embedded")
        ours_out = work / "ours_out"
        t0 = time.perf_counter()
        summary = steps.ingest(lake, str(in_dir), "webdataset")
        t1 = time.perf_counter()
        steps.annotate(lake, steps.stages_for(recipe), recipes=[recipe])
        t2 = time.perf_counter()
        steps.select(lake, recipe)
        t3 = time.perf_counter()
        steps.export(lake, str(ours_out))
        t4 = time.perf_counter()
        ours_times = {"ingest_s": t1 - t0, "annotate_s": t2 - t1, "select_s": t3 - t2, "export_s": t4 - t3,
                      "total_s": t4 - t0}
        print(f"ours done: {ours_times}; ingest summary {summary}", flush=True)
        one = compare(read_output(nemo_out), read_output(ours_out))

        n = args.samples
        nemo_rate = n / nemo["pipeline_s"]
        ours_rate = n / ours_times["total_s"]
        print("\n=== results ===")
        print(f"machine: {os.cpu_count()} cores, load average now {os.getloadavg()[0]:.2f}")
        print(f"input: {n} samples, {args.shards} shards, {size_mb:.0f} MiB; ratio bounds [{lo}, {hi}]; "
              f"image items {summary['image_items']}, unique images {summary['unique_images']}")
        print(f"NeMo Curator ({nemo['executor']}, 2 CPUs): imports {nemo['import_s']:.1f} s, ray.init "
              f"{nemo['ray_init_s']:.1f} s, pipeline.run {nemo['pipeline_s']:.1f} s -> {nemo_rate:.1f} samples/s "
              f"(whole process {nemo['process_wall_s']:.1f} s)")
        print(f"mmcurate (local[2]): JVM start {jvm_s:.1f} s, ingest {ours_times['ingest_s']:.1f} s + annotate "
              f"{ours_times['annotate_s']:.1f} s + select {ours_times['select_s']:.1f} s + export "
              f"{ours_times['export_s']:.1f} s = {ours_times['total_s']:.1f} s -> {ours_rate:.1f} samples/s")
        print(f"speed ours/NeMo: {ours_rate / nemo_rate:.2f}x")
        for label, res in (("nemo_default, one select", one),):
            print(f"\nmatch, {label}: NeMo {res['expected_samples']} samples, ours {res['actual_samples']}; "
                  f"identical={res['identical']}; only NeMo {len(res['only_expected'])}, only ours "
                  f"{len(res['only_actual'])}, same id different content {len(res['differing'])}")
            if res["only_expected"]:
                print(f"  only NeMo (first): {res['only_expected'][:5]}")
            if res["only_actual"]:
                print(f"  only ours (first): {res['only_actual'][:5]}")
            for sid, a, b in res["examples"]:
                print(f"  {sid}:\n    NeMo {a}\n    ours {b}")
        print("RESULT " + json.dumps({
            "samples": n, "unique_images": summary["unique_images"], "nemo_pipeline_s": round(nemo["pipeline_s"], 2), "ours_total_s": round(ours_times["total_s"], 2),
            "nemo_samples_per_s": round(nemo_rate, 1), "ours_samples_per_s": round(ours_rate, 1),
            "speed_ratio": round(ours_rate / nemo_rate, 2), "identical": one["identical"],
            "diffs": len(one["only_expected"]) + len(one["only_actual"]) + len(one["differing"]),
        }))


if __name__ == "__main__":
    run(main)
