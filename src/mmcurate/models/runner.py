"""The model runner every model stage shares: load once per Python worker, pick the task's device, keep it busy.

A model stage is a `mapInPandas` over its input rows. In each Spark Python worker the model is
loaded once (`load_once`, keyed by what identifies the weights and the device) and reused by every
batch and every later task of that worker. Inputs are decoded and preprocessed on a small thread
pool one batch ahead of the forward pass (`prefetch`), forward passes run in fixed-size batches
that halve on a CUDA out-of-memory error (`Batches`), and the device is the GPU Spark assigned to
the task, else CUDA if present, else the CPU (`task_device`). GPU stages run under their own
`ResourceProfile` when the cluster schedules GPUs, so CPU stages never hold one.

>>> model = load_once(("clip", path), device, lambda: load_clip(path, device))
>>> for batch, pixels in prefetch(batches, decode_all, threads=4): embeddings = model.run(pixels)
"""
from __future__ import annotations

import threading
from collections import Counter, deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Optional, TypeVar

from mmcurate.stage import Resources

T = TypeVar("T")
U = TypeVar("U")

_MODELS: dict[tuple, tuple[str, Any]] = {}
_LOCK = threading.Lock()
LOADS: Counter = Counter()
"""How many times this process loaded each (model key, device) (1 per worker when the cache works)."""

PRECISIONS = ("auto", "fp32", "fp16", "bf16")
DEVICES = ("auto", "cpu", "cuda")


class ModelNotFoundError(FileNotFoundError):
    """A model path that does not exist or lacks the files its format needs; nothing is downloaded."""


def load_once(key: tuple, device: str, load: Callable[[], T]) -> T:
    """The object `load()` returns for `key` (what identifies the weights and their settings) on `device`,
    loaded at most once per process. A worker that runs a task on another GPU drops its copy on the
    old one first, so a worker never holds a model twice."""
    with _LOCK:
        cached = _MODELS.get(key)
        if cached is not None and cached[0] == device:
            return cached[1]
        if cached is not None:
            del _MODELS[key], cached
            _free_cuda_cache()
        model = load()
        _MODELS[key] = (device, model)
        LOADS[(key, device)] += 1
        return model


def _free_cuda_cache() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def task_device(requested: str = "auto") -> str:
    """The GPU Spark assigned to this task for "auto" and "cuda"; without one, `cuda` if present else `cpu` for
    "auto"; any other request as given (`cpu`, `cuda:N`)."""
    if requested not in DEVICES and not requested.startswith("cuda:"):
        raise ValueError(f"device must be one of {DEVICES} or cuda:N, got {requested!r}")
    if requested not in ("auto", "cuda"):
        return requested
    from pyspark import TaskContext

    context = TaskContext.get()
    if context is not None:
        gpu = context.resources().get("gpu")
        if gpu is not None and gpu.addresses:
            return f"cuda:{gpu.addresses[0]}"
    if requested == "cuda":
        return requested
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def torch_dtype(precision: str, device: str):
    """The compute dtype: fp32 on CPU; on GPU fp16 or bf16 ("auto": bf16 where supported, else fp16)."""
    import torch

    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if not device.startswith("cuda") or precision == "fp32":
        return torch.float32
    if precision == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"fp16": torch.float16, "bf16": torch.bfloat16}[precision]


@dataclass
class Batches:
    """Forward passes in batches of `size`, halving the size (and remembering it) on CUDA out-of-memory."""

    size: int

    def __post_init__(self):
        if self.size < 1:
            raise ValueError(f"batch size must be >= 1, got {self.size}")

    def run(self, inputs: list, forward: Callable[[list], list]) -> list:
        """forward(chunk) -> one output per input, over `inputs` in order; outputs concatenated."""
        import torch

        out: list = []
        start = 0
        while start < len(inputs):
            chunk = inputs[start:start + self.size]
            try:
                out.extend(forward(chunk))
            except torch.cuda.OutOfMemoryError:
                if self.size == 1:
                    raise
                self.size = max(1, self.size // 2)
                torch.cuda.empty_cache()
                continue
            start += len(chunk)
        return out

    def run_where(self, inputs: list, usable: list[bool], forward: Callable[[list], list]) -> list:
        """`run` over the inputs whose `usable` flag is set; None in the other places, outputs in input order."""
        picked = [i for i, ok in enumerate(usable) if ok]
        out: list = [None] * len(inputs)
        for i, value in zip(picked, self.run([inputs[i] for i in picked], forward)):
            out[i] = value
        return out


def prefetch(batches: Iterable[T], prepare: Callable[[T], U], depth: int = 2) -> Iterator[tuple[T, U]]:
    """(batch, prepare(batch)) in order, with up to `depth` batches prepared ahead on a background thread,
    so decoding the next batch overlaps the forward pass on this one."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="mmcurate-prefetch") as pool:
        pending: deque = deque()
        for batch in batches:
            pending.append((batch, pool.submit(prepare, batch)))
            if len(pending) > depth:
                ready, future = pending.popleft()
                yield ready, future.result()
        while pending:
            ready, future = pending.popleft()
            yield ready, future.result()


def parallel_map(fn: Callable[[T], U], values: list[T], pool: Optional[ThreadPoolExecutor]) -> list[U]:
    """fn over values on `pool` (decode threads) or inline when there is none."""
    return list(pool.map(fn, values)) if pool is not None else [fn(v) for v in values]


def gpu_scheduling(spark) -> bool:
    """Whether the cluster schedules GPUs (executors declare a gpu resource): then GPU stages get a profile."""
    try:
        amount = spark.conf.get("spark.executor.resource.gpu.amount", None)
    except Exception:  # a Spark Connect server that refuses to show static confs
        return False
    return bool(amount) and float(amount) > 0


def resource_profile(resources: Resources):
    """The stage-level `ResourceProfile` for a model stage: its task CPUs and (fractional) GPU."""
    from pyspark.resource import ResourceProfileBuilder, TaskResourceRequests

    requests = TaskResourceRequests().cpus(max(1, int(resources.cpus)))
    if resources.gpus:
        requests = requests.resource("gpu", resources.gpus)
    return ResourceProfileBuilder().require(requests).build


def map_profile(spark, resources: Resources):
    """The profile `mapInPandas` runs a stage under: only on clusters that schedule GPUs and for GPU stages."""
    return resource_profile(resources) if resources.gpus and gpu_scheduling(spark) else None
