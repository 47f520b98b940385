"""Shared helpers of the benchmark scripts: timing and ratio reporting in one run."""
from __future__ import annotations

import shutil
import statistics
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator


def timed(fn: Callable[[], object]) -> float:
    """Wall seconds of one call."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def median_times(cases: dict[str, Callable[[], object]], repeat: int) -> dict[str, float]:
    """Median wall time per case; cases run interleaved so machine noise hits them alike."""
    samples: dict[str, list[float]] = {name: [] for name in cases}
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
        print(f"  {name:<34} {seconds:8.2f} s   {ratio:5.2f}x")
    if goal is not None:
        print(f"  goal <= {goal:.2f}x: {'met' if worst <= goal else 'NOT met'}")
    return worst


@contextmanager
def scratch(prefix: str) -> Iterator[Path]:
    """A fresh temporary folder for a benchmark's inputs and outputs, removed afterwards."""
    work = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


def load_average() -> str:
    """The 1-minute load average: how shared the machine was while a benchmark ran."""
    loadavg = Path("/proc/loadavg")
    return loadavg.read_text().split()[0] if loadavg.exists() else "?"


def run(main: Callable[[], None]) -> None:
    """Run a benchmark's main and say how long the whole script took."""
    started = time.perf_counter()
    main()
    print(f"(bench took {time.perf_counter() - started:.0f} s)")
