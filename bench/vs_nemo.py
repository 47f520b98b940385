"""mmcurate vs NeMo Curator on NeMo's interleaved filters: speed and an exact output comparison.

    python bench/vs_nemo.py --nemo-python /tmp/nemo-venv/bin/python --samples 5000 --shards 8

Input: the WebDataset shards of bench/ingest.py (`write_shards`: the packaged demo documents
copied under fresh sample ids), read by both sides.

NeMo side (bench/_nemo_side.py, run with --nemo-python, an interpreter with nemo-curator 1.4):
InterleavedWebdatasetReader(materialize_on_read=True, sample_id_field="sample_id") -> Blur(100)
-> QRCode(0.05) -> ImageToTextRatio(min, max) -> InterleavedWebdatasetWriterStage, on
RayDataExecutor with a local Ray of 2 CPUs. Its interpreter start/imports and `ray.init` are
reported apart from the pipeline run.

Our side (in this process, local[2]; the JVM start is reported apart): ingest_to_lakehouse ->
run_select(recipe) -> write_webdataset, with the recipe `nemo_default` (decodable, blur >= 100,
qr_area_ratio < 0.05, image_text_ratio in [min, max]; the bounds are read from that recipe and
passed to NeMo). Also a "two-pass" variant, which reproduces NeMo's stage order: the three image
rules first, then the ratio rule on the surviving items (Recipe.apply on curated_items with
SampleScores recomputed on them), timed as the extra work on top of the one-pass run.

Comparison: every output tar of each side is read with tarfile; per sample the ordered content
(modality, text or sha256 of the image member's bytes) is compared. Prints samples/s, the speed
ratio and the match; differences of the one-pass recipe are classified (is the ratio the only
cause: do the input ratio and the survivors' ratio fall on different sides of the bounds?).
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))
from ingest import write_shards  # noqa: E402
from _common import run  # noqa: E402

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
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))


def read_output(out_dir: Path) -> dict[str, tuple]:
    """{sample_id: ((modality, text | sha256 | "missing:<name>" | None), ...)} from every tar under out_dir."""
    samples: dict[str, tuple] = {}
    for path in sorted(out_dir.glob("*.tar")):
        with tarfile.open(path) as tar:
            members = {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}
        for name, data in members.items():
            if not name.endswith(".json"):
                continue
            record = json.loads(data)
            content = []
            for text, image in zip(record["texts"], record["images"]):
                if text is not None:
                    content.append(("text", text))
                if image is not None:
                    blob = members.get(image)
                    content.append(("image", hashlib.sha256(blob).hexdigest() if blob is not None else f"missing:{image}"))
                if text is None and image is None:
                    content.append(("gap", None))
            sid = record.get("sample_id", name[:-5])
            if sid in samples:
                raise AssertionError(f"sample {sid!r} written twice under {out_dir}")
            samples[sid] = tuple(content)
    return samples


def compare(nemo: dict, ours: dict, limit: int = 5) -> dict:
    only_nemo = sorted(set(nemo) - set(ours))
    only_ours = sorted(set(ours) - set(nemo))
    differing = sorted(s for s in set(nemo) & set(ours) if nemo[s] != ours[s])
    return {
        "nemo_samples": len(nemo), "our_samples": len(ours), "only_nemo": only_nemo, "only_ours": only_ours,
        "differing": differing, "identical": not (only_nemo or only_ours or differing),
        "examples": [(s, _short(nemo[s]), _short(ours[s])) for s in differing[:limit]],
    }


def _short(content: tuple) -> list:
    return [(m, (v[:40] + "...") if isinstance(v, str) and len(v) > 43 else v) for m, v in content]


def input_counts(in_dir: Path) -> dict[str, tuple[int, int]]:
    """{sample_id: (#images with a member, #whitespace words)} of the input shards (NeMo's ratio inputs)."""
    counts = {}
    for path in sorted(in_dir.glob("*.tar")):
        with tarfile.open(path) as tar:
            members = {m.name: m for m in tar if m.isfile()}
            for name in (n for n in members if n.endswith(".json")):
                record = json.loads(tar.extractfile(members[name]).read())
                words = sum(len(str(t).split()) for t in record["texts"] if t is not None)
                images = sum(1 for i in record["images"] if i is not None and i in members)
                counts[record["sample_id"]] = (images, words)
    return counts


def explain(result: dict, inputs: dict, nemo: dict, ours: dict, lo: float, hi: float) -> dict:
    """How many one-pass differences the ratio timing explains: the sample's input ratio and its ratio over
    the images kept by the image rules fall on different sides of [lo, hi]."""
    def inside(images, words):
        return lo <= images / max(words, 1) <= hi

    explained, unexplained = 0, []
    for sid in result["only_ours"] + result["only_nemo"] + result["differing"]:
        images_in, words = inputs[sid]
        kept = ours.get(sid) if sid in ours else nemo.get(sid)
        kept_images = sum(1 for m, _ in kept if m == "image")
        kept_words = sum(len(v.split()) for m, v in kept if m == "text")
        by_input, by_survivors = inside(images_in, words), inside(kept_images, kept_words)
        if sid in result["only_ours"] and by_input and not by_survivors:
            explained += 1
        elif sid in result["only_nemo"] and by_survivors and not by_input:
            explained += 1
        else:
            unexplained.append(sid)
    return {"explained_by_ratio_order": explained, "unexplained": unexplained[:10], "n_unexplained": len(unexplained)}


def ratio_bounds(recipe) -> tuple[float, float]:
    rule = next(r for r in recipe.rules if r.name == "image_text_ratio")
    match = re.fullmatch(r"\s*image_text_ratio\s+BETWEEN\s+([0-9.eE+-]+)\s+AND\s+([0-9.eE+-]+)\s*", rule.predicate, re.I)
    if not match:
        raise SystemExit(f"cannot read the bounds of {rule.predicate!r}")
    return float(match.group(1)), float(match.group(2))


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

    from mmcurate.annotate.text_scores import SampleScores
    from mmcurate.io.ingest import ingest_to_lakehouse
    from mmcurate.io.webdataset_writer import write_webdataset
    from mmcurate.lakehouse import Lakehouse
    from mmcurate.pipeline import run_select
    from mmcurate.select import Recipe
    from mmcurate.spark import get_spark

    recipe = Recipe.from_yaml("nemo_default")
    if args.ratio_bounds:
        lo, hi = args.ratio_bounds
        recipe = Recipe(recipe.name, recipe.version, tuple(
            replace(r, predicate=f"image_text_ratio BETWEEN {lo!r} AND {hi!r}") if r.name == "image_text_ratio" else r
            for r in recipe.rules), recipe.description)
    assert [r.name for r in recipe.rules] == ["decodable", "blur", "qrcode", "image_text_ratio"], recipe.rules
    lo, hi = ratio_bounds(recipe)
    image_rules = Recipe("nemo_default_image_rules", recipe.version,
                         tuple(r for r in recipe.rules if r.level == "image"))
    ratio_rule = Recipe("nemo_default_ratio_after", recipe.version,
                        tuple(r for r in recipe.rules if r.level == "sample"))

    work = Path(tempfile.mkdtemp(prefix="mmcurate-vs-nemo-"))
    print(f"work dir {work}")
    try:
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
        ours_out, twopass_out = work / "ours_out", work / "ours_2pass_out"
        t0 = time.perf_counter()
        summary = ingest_to_lakehouse(lake, str(in_dir), "webdataset")
        t1 = time.perf_counter()
        selection = run_select(lake, recipe)
        t2 = time.perf_counter()
        write_webdataset(selection.curated, lake.read("images"), str(ours_out))
        t3 = time.perf_counter()
        ours_times = {"ingest_s": t1 - t0, "select_s": t2 - t1, "export_s": t3 - t2, "total_s": t3 - t0}
        print(f"ours done: {ours_times}; ingest summary {summary}", flush=True)

        # Two-pass: image rules, then the ratio rule on what they kept (NeMo's stage order).
        t4 = time.perf_counter()
        first = run_select(lake, image_rules, rescore=False)  # image scores reused from the run above
        survivors = first.curated
        second = ratio_rule.apply(survivors, sample_scores=survivors.transform(SampleScores(text_signals=False))
                                  .select("sample_id", "image_text_ratio"))
        lake.write(second.curated, "curated_items_2pass", mode="overwrite")
        write_webdataset(lake.read("curated_items_2pass"), lake.read("images"), str(twopass_out))
        t5 = time.perf_counter()
        twopass_extra = t5 - t4
        print(f"two-pass extra (rescore=False select + ratio pass + export): {twopass_extra:.1f} s", flush=True)

        nemo_samples, our_samples, two_samples = read_output(nemo_out), read_output(ours_out), read_output(twopass_out)
        one = compare(nemo_samples, our_samples)
        two = compare(nemo_samples, two_samples)
        why = explain(one, input_counts(in_dir), nemo_samples, our_samples, lo, hi)

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
        print(f"mmcurate (local[2]): JVM start {jvm_s:.1f} s, ingest {ours_times['ingest_s']:.1f} s + select "
              f"{ours_times['select_s']:.1f} s + export {ours_times['export_s']:.1f} s = {ours_times['total_s']:.1f} s "
              f"-> {ours_rate:.1f} samples/s")
        print(f"speed ours/NeMo: {ours_rate / nemo_rate:.2f}x")
        print(f"two-pass variant: +{twopass_extra:.1f} s on top of the one-pass run")
        for label, res in (("one-pass nemo_default", one), ("two-pass (image rules, then ratio)", two)):
            print(f"\nmatch, {label}: NeMo {res['nemo_samples']} samples, ours {res['our_samples']}; "
                  f"identical={res['identical']}; only NeMo {len(res['only_nemo'])}, only ours "
                  f"{len(res['only_ours'])}, same id different content {len(res['differing'])}")
            if res["only_nemo"]:
                print(f"  only NeMo (first): {res['only_nemo'][:5]}")
            if res["only_ours"]:
                print(f"  only ours (first): {res['only_ours'][:5]}")
            for sid, a, b in res["examples"]:
                print(f"  {sid}:\n    NeMo {a}\n    ours {b}")
        print(f"\none-pass differences explained by the ratio being computed before the image rules: "
              f"{why['explained_by_ratio_order']}; unexplained {why['n_unexplained']} {why['unexplained']}")
        print("RESULT " + json.dumps({
            "samples": n, "unique_images": summary["unique_images"], "nemo_pipeline_s": round(nemo["pipeline_s"], 2), "ours_total_s": round(ours_times["total_s"], 2),
            "nemo_samples_per_s": round(nemo_rate, 1), "ours_samples_per_s": round(ours_rate, 1),
            "speed_ratio": round(ours_rate / nemo_rate, 2), "onepass_identical": one["identical"],
            "twopass_identical": two["identical"], "onepass_diffs": len(one["only_nemo"]) + len(one["only_ours"]) + len(one["differing"]),
            "explained_by_ratio_order": why["explained_by_ratio_order"],
        }))
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    run(main)
