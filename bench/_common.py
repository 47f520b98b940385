"""Shared helpers of the benchmark scripts: timing and ratio reporting in one run."""
from __future__ import annotations

import contextlib
import json
import re
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterator, Optional


def timed(fn: Callable[[], object]) -> float:
    """Wall seconds of one call."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def median_times(cases: dict[str, Callable[[], object]], repeat: int,
                 samples: Optional[dict[str, list[float]]] = None) -> dict[str, float]:
    """Median wall time per case; cases run interleaved so machine noise hits them alike. `samples`, when given,
    receives every run's time per case."""
    samples = {} if samples is None else samples
    samples.update({name: [] for name in cases})
    for _ in range(repeat):
        for name, fn in cases.items():
            samples[name].append(timed(fn))
    return {name: statistics.median(values) for name, values in samples.items()}


def report(title: str, times: dict[str, float], baseline: str, goal: float | None = None) -> float:
    """Print each case's seconds and its ratio to `baseline`; return the worst non-baseline ratio."""
    print(f"\n{title}")
    worst = 0.0
    for name, seconds in times.items():
        ratio = seconds / times[baseline]
        if name != baseline:
            worst = max(worst, ratio)
        print(f"  {name:<34} {seconds:9.3f} s   {ratio:5.2f}x")
    if goal is not None:
        print(f"  goal <= {goal:.2f}x: {'met' if worst <= goal else 'NOT met'}")
    return worst


def load_average() -> str:
    """The 1-minute load average: how shared the machine was while a benchmark ran."""
    loadavg = Path("/proc/loadavg")
    return loadavg.read_text().split()[0] if loadavg.exists() else "?"


def run(main: Callable[[], None]) -> None:
    """Run a benchmark's main and say how long the whole script took."""
    started = time.perf_counter()
    main()
    print(f"(bench took {time.perf_counter() - started:.0f} s)")


def ratio_bounds(recipe) -> tuple[float, float]:
    """(min, max) of a recipe's `kept_image_text_ratio BETWEEN min AND max` rule (nemo_default's), for the peers
    that are handed the bounds rather than the recipe."""
    rule = next(r for r in recipe.rules if r.name == "image_text_ratio")
    match = re.fullmatch(r"\s*kept_image_text_ratio\s+BETWEEN\s+([0-9.eE+-]+)\s+AND\s+([0-9.eE+-]+)\s*", rule.predicate, re.I)
    if not match:
        raise SystemExit(f"cannot read the bounds of {rule.predicate!r}")
    return float(match.group(1)), float(match.group(2))


def write_nemo_default_config(work: Path, shards: Path, name: str, samples_per_shard: int = 5000) -> Path:
    """work/run.yaml, a pipeline config for `mmcurate run`: ingest the WebDataset shards, annotate and select
    `nemo_default`, export WebDataset to work/wds; an embedded lakehouse at work/lake, no MLflow."""
    config = work / "run.yaml"
    config.write_text(json.dumps({  # JSON is YAML
        "name": name, "lakehouse": str(work / "lake"), "backend": "embedded",
        "ingest": [{"format": "webdataset", "paths": [str(shards)]}],
        "select": [{"recipe": "nemo_default"}],
        "export": [{"out": str(work / "wds"), "options": {"samples_per_shard": samples_per_shard}}],
        "mlflow": {"enabled": False}}))
    return config


@contextlib.contextmanager
def work_dir(prefix: str, path: Optional[str] = None, keep: bool = False) -> Iterator[Path]:
    """The benchmark's folder for input, outputs and logs: path (absent or empty) or a fresh temp dir; removed at the
    end unless keep, so a failed run can be looked at with --keep."""
    work = Path(path or tempfile.mkdtemp(prefix=prefix))
    if work.exists() and any(work.iterdir()):
        raise SystemExit(f"{work} is not empty")
    print(f"work dir {work}")
    try:
        yield work
    finally:
        if keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
