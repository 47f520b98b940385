"""NeMo's interleaved filters end to end in mmcurate and its peers: wall seconds with start-up, and an exact
output check against a bare Python loop, in one run.

    python bench/pipeline_peers.py --samples 5000
    python bench/pipeline_peers.py --samples 1000 --systems bare,mmcurate --keep --workdir /tmp/peers
    python bench/pipeline_peers.py --scaling 5000,20000          # only bare and mmcurate, several sizes

Input (not timed): `--samples` MINT-1T-style documents (default 5,000) in `--shards` NeMo-layout WebDataset tars
(`_data.write_samples`: `{id}.json` with parallel `texts`/`images` lists, image members `{id}.{position}.{ext}`):
a paragraph, 1 to 3 images (2 on average), a closing paragraph; 3 to 120 random words each. Every image's bytes
are distinct (the sample key follows the image's end), drawn from 12 sharp 256x192 noise JPEGs, 2 blurred ones, a
PNG QR code and undecodable bytes, so each rule of the recipe drops something; the 3-word samples with 2 or 3
images kept exceed the ratio's upper bound and samples with no image kept fall below its lower bound.

Pipeline: mmcurate's packaged recipe `nemo_default`, checked before anything runs: decodable, sharpness >= 100,
qr_area_ratio < 0.05, then kept images / max(words, 1) within the recipe's bounds ([0.001, 0.1], NeMo's
"balanced" preset) over the items the image rules kept (NeMo's stage order); positions renumbered; out to
WebDataset shards. Each system runs in a fresh process timed from here, so start-up (interpreter, JVM, Ray,
Daft's workers) is counted, and writes WebDataset tars:

- bare: the ceiling. `multiprocessing.Pool(2)` over the shards, OpenCV single-threaded; each image decoded once
  (cv2.imdecode, BGR->RGB as mmcurate decodes), mmcurate's own `sharpness`, then `qr_area_ratio` only on blur
  survivors (both from src/mmcurate/annotate/image_signals.py); the ratio rule; tars written with tarfile.
- mmcurate: `mmcurate run --config` (ingest -> annotate image_scores -> select nemo_default -> export webdataset)
  on local[2], embedded lakehouse, about as many output shards as input ones; its per-step seconds come from the
  run's report. It does more per image than the loop: a header probe at ingest, QR and pHash on every image, Delta
  commits, the drops ledger and export lineage.
- daft: Daft's native runner from a venv (`--daft-venv`, created with `python -m venv` and
  `pip install daft opencv-python-headless numpy pillow` when it does not import daft; the install is not timed;
  when it fails the system is skipped saying why). A Daft function reads each tar into rows, a class UDF with one
  process per core decodes each image once and applies blur then QR (the loop's code), window sums per sample
  give the ratio; the kept rows are collected and written as tars. QR detection changes between OpenCV releases:
  a venv with another opencv than ours can differ in the check for that reason alone.
- nemo: NeMo Curator through bench/_nemo_side.py (its reader, blur, QR and ratio stages, its writer, Ray Data on
  2 CPUs) when `--nemo-python` imports nemo_curator; otherwise reported absent.

Check: each system's tars are read back (`_data.read_output`: per sample its items in position order, images by
sha256) and compared sample by sample with the bare loop's; the number of differing samples must be 0.

Printed per system: wall seconds, samples/s, speed vs the loop (bare_s / system_s), differing samples; for
mmcurate each step's line and seconds, and the rest (JVM start, imports, exit). A failed system prints its
exit code and stderr tail and the others still run. Other load on the machine shows in every figure: the load
average is printed before and after.

`--scaling N1,N2,...` runs only bare and mmcurate, at a tiny size (16 samples: its time t0 is the fixed cost,
start-up included) and at each N; it prints seconds, time per sample beyond t0, and the exponent k of
t - t0 = b * N^k, the least-squares slope of log(t - t0) against log(N): k near 1 is linear, above 1 is a
cost that grows faster than the data. The slope of log t itself is printed too: below 1 while the fixed cost
still dominates. One run per size: on a loaded machine t0 can come out above a larger size's time, and k is then
not given.
"""
from __future__ import annotations

import argparse
import functools
import importlib.util
import itertools
import json
import math
import os
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from multiprocessing import Pool
from pathlib import Path
from typing import Callable, Optional

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
sys.path.insert(0, str(HERE))
from _common import ratio_bounds, run, work_dir, write_nemo_default_config  # noqa: E402
from _data import add_member, compare, noise_jpeg, read_output, write_samples  # noqa: E402

SYSTEMS = ("bare", "mmcurate", "daft", "nemo")
WORKERS = 2  # the cores every system gets: Pool(2), local[2], Daft's UDF processes, Ray's CPUs
WORD_COUNTS = (60, 3, 120, 30)
TINY_SAMPLES = 16
DAFT_PACKAGES = ("daft", "opencv-python-headless", "numpy", "pillow")
RECIPE_RULES = {"decodable": "decode_ok", "blur": "sharpness >= 100", "qrcode": "qr_area_ratio < 0.05"}
"""nemo_default's image rules as the loop and Daft apply them (the thresholds of image_signals.py)."""


# --- input -------------------------------------------------------------------------------------------------

def image_bases() -> list[bytes]:
    """write_samples' 16 bases: 12 sharp noise JPEGs, 2 blurred ones (sharpness about 8), a PNG QR code
    (qr_area_ratio 0.22), and bytes that start like a JPEG but do not decode."""
    import cv2
    import numpy as np

    sharp = [noise_jpeg(seed, 192, 256, 80) for seed in range(14)]
    blurred = [cv2.imencode(".jpg", cv2.GaussianBlur(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR),
                                                     (0, 0), 3))[1].tobytes() for data in sharp[12:]]
    code = cv2.resize(cv2.QRCodeEncoder.create().encode("mmcurate peers"), None, fx=5, fy=5,
                      interpolation=cv2.INTER_NEAREST)
    canvas = np.full((192, 256), 255, np.uint8)
    top, left = (192 - code.shape[0]) // 2, (256 - code.shape[1]) // 2
    canvas[top:top + code.shape[0], left:left + code.shape[1]] = code
    qr = cv2.imencode(".png", cv2.cvtColor(canvas, cv2.COLOR_GRAY2BGR))[1].tobytes()
    undecodable = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4
    return sharp[:12] + blurred + [qr, undecodable]


def build_input(folder: Path, n_samples: int, shards: int) -> dict:
    """Write the input tars; their sizes for the report."""
    folder.mkdir(parents=True)
    images = write_samples(folder, n_samples, per_shard=math.ceil(n_samples / shards), bases=image_bases(),
                           max_images=3, word_counts=WORD_COUNTS)
    mib = sum(p.stat().st_size for p in folder.glob("*.tar")) / 2**20
    return {"samples": n_samples, "images": images, "shards": len(list(folder.glob("*.tar"))), "mib": mib}


def recipe_bounds() -> tuple[float, float]:
    """The ratio bounds of the packaged nemo_default, after checking its image rules are the ones the loop and
    Daft apply (a changed recipe must not make the comparison silently unfair)."""
    from mmcurate.select import Recipe

    recipe = Recipe.from_yaml("nemo_default")
    found = {r.name: r.predicate.strip() for r in recipe.rules if r.level == "image"}
    if found != RECIPE_RULES:
        raise SystemExit(f"nemo_default's image rules are {found}, the peers here apply {RECIPE_RULES}")
    return ratio_bounds(recipe)


# --- what the bare loop and Daft run (in their own processes) ----------------------------------------------

def load_image_signals():
    """mmcurate's annotate/image_signals.py loaded by path: importing the package `mmcurate.annotate` would import
    every Spark stage, a start-up neither the loop nor Daft's venv (no pyspark) should pay."""
    sys.path.insert(0, str(SRC))
    spec = importlib.util.spec_from_file_location("image_signals", SRC / "mmcurate" / "annotate" / "image_signals.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class ImageRule:
    """nemo_default's image rules on one image's bytes in NeMo's order: one decode, blur, then QR only on blur
    survivors; OpenCV on one thread (each process is one core)."""

    def __init__(self):
        import cv2

        cv2.setNumThreads(1)
        self.signals = load_image_signals()

    def __call__(self, data: Optional[bytes]) -> bool:
        import cv2
        import numpy as np

        signals = self.signals
        try:
            bgr = cv2.imdecode(np.frombuffer(data or b"\0", np.uint8), cv2.IMREAD_COLOR)
        except cv2.error:
            return False
        if bgr is None:
            return False
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        return (signals.sharpness(rgb) >= signals.DEFAULT_MIN_SHARPNESS
                and signals.qr_area_ratio(rgb) < signals.DEFAULT_MAX_QR_AREA_RATIO)


def read_shard(path: str) -> list[tuple[str, list[tuple]]]:
    """(sample_id, [(modality, text, extension, bytes), ...] in position order) per sample of one NeMo-layout tar."""
    with tarfile.open(path) as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}
    samples = []
    for name, data in members.items():
        if name.endswith(".json"):
            record = json.loads(data)
            items = [("text", text, None, None) if text is not None
                     else ("image", None, image.rsplit(".", 1)[-1], members.get(image))
                     for text, image in zip(record["texts"], record["images"])]
            samples.append((record["sample_id"], items))
    return samples


def write_shard(path: Path, samples: list[tuple[str, list[tuple]]]) -> None:
    """NeMo layout as mmcurate's export writes it: per sample its images `{id}.{position}.{ext}` (positions
    renumbered gap-free over the kept items), then `{id}.json` with `sample_id`, `texts`, `images`."""
    with tarfile.open(path, "w") as tar:
        for sample_id, items in samples:
            texts, images = [], []
            for position, (modality, text, ext, data) in enumerate(items):
                member = f"{sample_id}.{position}.{ext}" if modality == "image" else None
                if member:
                    add_member(tar, member, data)
                texts.append(text)
                images.append(member)
            add_member(tar, f"{sample_id}.json",
                       json.dumps({"sample_id": sample_id, "texts": texts, "images": images}).encode())


def within_ratio(items: list[tuple], lo: float, hi: float) -> bool:
    """NeMo's image-to-text ratio rule: images / max(whitespace words, 1) within [lo, hi]; an empty sample fails."""
    images = sum(modality == "image" for modality, *_ in items)
    words = sum(len(text.split()) for modality, text, *_ in items if modality == "text")
    return bool(items) and lo <= images / max(words, 1) <= hi


@functools.cache
def image_rule() -> ImageRule:
    """One ImageRule per loop worker process."""
    return ImageRule()


def bare_shard(job: tuple[str, str, float, float]) -> None:
    """The loop's work for one input tar: image rules, ratio over the kept items, one output tar."""
    path, out, lo, hi = job
    kept = []
    for sample_id, items in read_shard(path):
        items = [item for item in items if item[0] == "text" or image_rule()(item[3])]
        if within_ratio(items, lo, hi):
            kept.append((sample_id, items))
    write_shard(Path(out), kept)


def bare_side(in_dir: Path, out_dir: Path, lo: float, hi: float) -> None:
    """The ceiling: a Pool of WORKERS processes over the input tars."""
    with Pool(WORKERS) as pool:
        pool.map(bare_shard, [(str(p), str(out_dir / p.name), lo, hi) for p in sorted(in_dir.glob("*.tar"))])


def daft_side(in_dir: Path, out_dir: Path, lo: float, hi: float) -> None:
    """The pipeline on Daft's native runner: tar rows from a Daft function, the image rules in a class UDF (one
    process per core), the ratio from window sums over each sample; kept rows collected and written per shard."""
    import daft
    from daft import DataType, Window, col

    item = DataType.struct({"sample_id": DataType.string(), "position": DataType.int64(),
                            "modality": DataType.string(), "text": DataType.string(), "ext": DataType.string(),
                            "data": DataType.binary(), "words": DataType.int64()})

    @daft.func(return_dtype=DataType.list(item))
    def shard_items(path: str) -> list:
        return [{"sample_id": sample_id, "position": position, "modality": modality, "text": text, "ext": ext,
                 "data": data, "words": len(text.split()) if text is not None else 0}
                for sample_id, items in read_shard(path) for position, (modality, text, ext, data) in enumerate(items)]

    keep_image = daft.cls(max_concurrency=WORKERS, use_process=True)(ImageRule)()
    shards = [str(p) for p in sorted(in_dir.glob("*.tar"))]
    items = (daft.from_pydict({"shard": shards}).with_column("item", shard_items(col("shard")))
             .explode("item").select("shard", col("item").unnest()))
    images = (items.where(col("modality") == "image").with_column("keep", keep_image(col("data")))
              .where(col("keep")).exclude("keep"))
    sample = Window().partition_by("sample_id")
    kept = images.concat(items.where(col("modality") == "text")).with_columns({
        "n_images": (col("modality") == "image").cast(DataType.int64()).sum().over(sample),
        "n_words": col("words").sum().over(sample)})
    ratio = col("n_images").cast(DataType.float64()) / col("n_words").clip(1)
    rows = (kept.where((ratio >= lo) & (ratio <= hi)).sort(["shard", "sample_id", "position"])
            .select("shard", "sample_id", "modality", "text", "ext", "data").to_pylist())
    for shard, shard_rows in itertools.groupby(rows, key=lambda r: r["shard"]):
        samples = [(sample_id, [(r["modality"], r["text"], r["ext"], r["data"]) for r in sample_rows])
                   for sample_id, sample_rows in itertools.groupby(shard_rows, key=lambda r: r["sample_id"])]
        write_shard(out_dir / Path(shard).name, samples)


SIDES: dict[str, Callable[[Path, Path, float, float], None]] = {"bare": bare_side, "daft": daft_side}


# --- running the systems from here -------------------------------------------------------------------------

@dataclass
class Outcome:
    """One system's run: wall seconds (None when it did not run), why it was skipped or failed, its output folder,
    mmcurate's report steps, and the check against the loop."""

    name: str
    wall_s: Optional[float] = None
    problem: Optional[str] = None
    out: Optional[Path] = None
    steps: list = field(default_factory=list)
    check: Optional[dict] = None


def run_child(name: str, cmd: list[str], env: dict, logs: Path, timeout: float) -> tuple[float, Optional[str]]:
    """Wall seconds of cmd in a fresh process (its own session, all killed on timeout), timed from here, and None
    or why it failed (exit code and the tail of its stderr); its stdout and stderr are kept in logs/<name>.out/.err."""
    out, err = logs / f"{name}.out", logs / f"{name}.err"
    started = time.perf_counter()
    with open(out, "w") as stdout, open(err, "w") as stderr, \
            subprocess.Popen(cmd, env=env, stdout=stdout, stderr=stderr, start_new_session=True) as child:
        try:
            code = child.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)  # its whole session: pool workers, the JVM
            code = f"timeout after {timeout:.0f} s"
    wall = time.perf_counter() - started
    if code == 0:
        return wall, None
    tail = "\n".join("    " + line for line in err.read_text(errors="replace").splitlines()[-15:])
    return wall, f"failed (exit {code}); stderr tail ({err}):\n{tail}"


def imports(python: str, module: str) -> bool:
    """Whether that interpreter imports the module."""
    try:
        return subprocess.run([python, "-c", f"import {module}"], capture_output=True, timeout=300).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def daft_python(venv: Path) -> tuple[Optional[str], str]:
    """(the venv's interpreter, its Daft version) once it imports daft, creating the venv and installing
    DAFT_PACKAGES from PyPI if it does not; (None, why not) when that fails."""
    python = str(venv / "bin" / "python")
    if not imports(python, "daft"):
        print(f"creating {venv} with {', '.join(DAFT_PACKAGES)} (not timed) ...", flush=True)
        for cmd in ([sys.executable, "-m", "venv", str(venv)], [python, "-m", "pip", "install", "-q", *DAFT_PACKAGES]):
            try:
                done = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
            except (OSError, subprocess.TimeoutExpired) as e:
                return None, f"`{' '.join(cmd)}`: {e}"
            if done.returncode:
                return None, f"`{' '.join(cmd)}` exit {done.returncode}: " + " | ".join(done.stderr.splitlines()[-3:])
    version = subprocess.run([python, "-c", "import daft; print(daft.__version__)"], capture_output=True, text=True)
    return python, f"daft {version.stdout.strip()}"


def clean_env(**extra: str) -> dict:
    """This environment without what points at our interpreter (PYTHONPATH, PYSPARK_PYTHON, VIRTUAL_ENV), plus extra."""
    keep = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYSPARK_PYTHON", "VIRTUAL_ENV")}
    return {**keep, **extra}


def side_command(python: str, side: str, in_dir: Path, out: Path, bounds: tuple[float, float]) -> list[str]:
    return [python, str(Path(__file__).resolve()), "--side", side, "--input", str(in_dir), "--output", str(out),
            "--bounds", repr(bounds[0]), repr(bounds[1])]


def run_system(name: str, in_dir: Path, n_samples: int, work: Path, bounds: tuple[float, float], args) -> Outcome:
    """Prepare and run one system under work/<name>; never raises for the system's own failure. mmcurate's export
    gets as many samples per shard as the input has, so it writes (and parallelises over) about as many shards."""
    base = work / name
    out = base / "wds"
    out.mkdir(parents=True)
    ours = clean_env(PYTHONPATH=os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")])))
    if name == "bare":
        cmd, env = side_command(sys.executable, "bare", in_dir, out, bounds), ours
    elif name == "mmcurate":
        config = write_nemo_default_config(base, in_dir, "peers", math.ceil(n_samples / args.shards))
        cmd = [sys.executable, "-m", "mmcurate.cli", "run", "--config", str(config),
               "--report", str(base / "report.json")]
        env = {**ours, "PYSPARK_PYTHON": sys.executable, "MMCURATE_SPARK_MASTER": f"local[{WORKERS}]"}
    elif name == "daft":
        python, note = daft_python(Path(args.daft_venv))
        if python is None:
            return Outcome(name, problem=f"skipped: Daft could not be installed: {note}")
        print(f"daft: {note} in {args.daft_venv}", flush=True)
        cmd, env = side_command(python, "daft", in_dir, out, bounds), clean_env()
    else:
        if not imports(args.nemo_python, "nemo_curator"):
            return Outcome(name, problem=f"absent: {args.nemo_python} does not import nemo_curator (--nemo-python)")
        cmd = [args.nemo_python, str(HERE / "_nemo_side.py"), str(in_dir), str(out), "--min-ratio", repr(bounds[0]),
               "--max-ratio", repr(bounds[1]), "--num-cpus", str(WORKERS)]
        env = clean_env()
    print(f"running {name} ...", flush=True)
    wall, problem = run_child(name, cmd, env, work, args.timeout)
    report = base / "report.json"
    steps = json.loads(report.read_text())["steps"] if report.exists() else []
    return Outcome(name, wall, problem, out, steps)


# --- reporting ---------------------------------------------------------------------------------------------

def check_outputs(outcomes: list[Outcome]) -> None:
    """Compare every system that ran with the loop's output, sample by sample."""
    reference = next((o for o in outcomes if o.name == "bare" and o.problem is None), None)
    if reference is None:
        return
    expected = read_output(reference.out)
    for outcome in outcomes:
        if outcome.problem is None and outcome is not reference:
            outcome.check = compare(expected, read_output(outcome.out))
    reference.check = {"expected_samples": len(expected)}


def print_results(outcomes: list[Outcome], n_samples: int) -> None:
    """One line per system, then mmcurate's steps and any differing samples or failures."""
    bare = next((o.wall_s for o in outcomes if o.name == "bare" and o.problem is None), None)
    print(f"\n{'system':<10} {'wall s':>8} {'samples/s':>10} {'vs bare':>8}  differing samples")
    for o in outcomes:
        if o.problem is not None:
            print(f"{o.name:<10} {o.problem}")
            continue
        speed = f"{bare / o.wall_s:7.2f}x" if bare else "      - "
        if o.name == "bare":
            diff = f"reference ({o.check['expected_samples']} samples kept)"
        else:
            diff = "not checked" if o.check is None else _differing(o.check)
        print(f"{o.name:<10} {o.wall_s:8.1f} {n_samples / o.wall_s:10.1f} {speed}  {diff}")
    for o in outcomes:
        if o.steps:
            _print_steps(o)
        if o.check and o.check.get("examples"):
            print(f"\n{o.name}: first differing samples (bare, then {o.name}):")
            for sample_id, expected, actual in o.check["examples"]:
                print(f"  {sample_id}:\n    bare  {expected}\n    {o.name:<5} {actual}")


def _differing(check: dict) -> str:
    count = len(check["only_expected"]) + len(check["only_actual"]) + len(check["differing"])
    detail = (f" (only in bare {len(check['only_expected'])}, only here {len(check['only_actual'])}, "
              f"other content {len(check['differing'])})" if count else "")
    return f"{count}{detail}"


def _print_steps(outcome: Outcome) -> None:
    from mmcurate.runner import describe

    print(f"\n{outcome.name} per step:")
    for step in outcome.steps:
        print(f"  {describe(step)}")
    rest = outcome.wall_s - sum(step["seconds"] for step in outcome.steps)
    print(f"  start-up (interpreter, JVM, Spark session), reports and exit: {rest:.1f} s")


def fitted_exponent(sizes: list[int], times: list[float], t0: float) -> Optional[float]:
    """Least-squares slope of log(t - t0) against log(N) (see the module docstring; t0 = 0 gives the exponent with
    the fixed cost included); None without two points where t > t0."""
    points = [(math.log(n), math.log(t - t0)) for n, t in zip(sizes, times) if t > t0]
    if len(points) < 2:
        return None
    mx = sum(x for x, _ in points) / len(points)
    my = sum(y for _, y in points) / len(points)
    spread = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / spread if spread else None


def scaling(sizes: list[int], work: Path, bounds: tuple[float, float], args) -> None:
    """Bare and mmcurate at TINY_SAMPLES (the fixed cost t0) and at each size; seconds, time per sample beyond t0,
    and the fitted exponent."""
    systems = [s for s in ("bare", "mmcurate") if s in args.systems]
    times: dict[str, list[float]] = {s: [] for s in systems}
    for n in [TINY_SAMPLES, *sizes]:
        in_dir = work / f"n{n}" / "input"
        build_input(in_dir, n, args.shards)
        for name in systems:
            outcome = run_system(name, in_dir, n, work / f"n{n}", bounds, args)
            if outcome.problem:
                print(f"{name} at {n} samples {outcome.problem}")
                return
            times[name].append(outcome.wall_s)
        print(f"  {n} samples: " + ", ".join(f"{s} {times[s][-1]:.1f} s" for s in systems), flush=True)
    print(f"\n{'system':<10} {'samples':>8} {'wall s':>8} {'ms/sample':>10} {'ms/sample beyond t0':>20}")
    for name in systems:
        t0, rest = times[name][0], times[name][1:]
        print(f"{name:<10} {TINY_SAMPLES:>8} {t0:8.1f} {'(t0: fixed cost)':>31}")
        for n, t in zip(sizes, rest):
            print(f"{name:<10} {n:>8} {t:8.1f} {1000 * t / n:10.2f} {1000 * (t - t0) / n:20.2f}")
        raw, k = fitted_exponent(sizes, rest, 0.0), fitted_exponent(sizes, rest, t0)
        beyond = "needs two sizes slower than t0 (a noisy machine? rerun)" if k is None else f"{k:.2f}"
        print(f"{name:<10} exponent vs N of t: {raw:.2f} (fixed cost included); of t - t0: {beyond}")


def compare_systems(work: Path, bounds: tuple[float, float], args) -> None:
    """The one-size run: input, every asked system in turn, the check and the table."""
    facts = build_input(work / "input", args.samples, args.shards)
    print(f"input: {facts['samples']} samples, {facts['images']} images (all bytes distinct), {facts['shards']} "
          f"shards, {facts['mib']:.1f} MiB; ratio bounds {list(bounds)}; {WORKERS} workers per system; "
          f"load average {os.getloadavg()[0]:.2f}", flush=True)
    outcomes = [run_system(name, work / "input", args.samples, work, bounds, args) for name in args.systems]
    check_outputs(outcomes)
    print_results(outcomes, args.samples)
    print(f"\nload average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=5000)
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--systems", default=",".join(SYSTEMS), help=f"comma list of {', '.join(SYSTEMS)}")
    parser.add_argument("--workdir", default=None, help="where input and outputs go (default: a fresh temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the work dir (input, outputs, logs)")
    parser.add_argument("--daft-venv", default=os.path.join(tempfile.gettempdir(), "mmcurate-bench-daft-venv"))
    parser.add_argument("--nemo-python", default=sys.executable, help="an interpreter with nemo-curator")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per system run")
    parser.add_argument("--scaling", default=None, help="comma list of sizes: only bare and mmcurate, time vs N")
    parser.add_argument("--side", choices=sorted(SIDES), help=argparse.SUPPRESS)
    parser.add_argument("--input", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--output", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--bounds", type=float, nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.systems = [s for s in args.systems.split(",") if s]
    unknown = sorted(set(args.systems) - set(SYSTEMS))
    if unknown:
        parser.error(f"unknown systems {unknown}; known: {list(SYSTEMS)}")
    return args


def main() -> None:
    args = parse_args()
    with work_dir("mmcurate-bench-peers-", args.workdir, args.keep) as work:
        bounds = recipe_bounds()
        if args.scaling:
            scaling([int(n) for n in args.scaling.split(",")], work, bounds, args)
        else:
            compare_systems(work, bounds, args)

if __name__ == "__main__":
    side_args = parse_args() if "--side" in sys.argv else None
    if side_args:
        SIDES[side_args.side](side_args.input, side_args.output, *side_args.bounds)
    else:
        run(main)
