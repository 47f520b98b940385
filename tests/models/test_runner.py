"""The model runner: one load per Python worker, the task's device, batches that halve on OOM, decode ahead."""
import threading
import time

import pandas as pd
import pytest
import torch

from mmcurate.annotate.embeddings import ImageEmbeddings
from mmcurate.models.runner import Batches, map_profile, prefetch, resource_profile, task_device
from mmcurate.stage import Resources


def test_a_model_loads_once_per_python_worker_across_tasks_and_batches(spark, tiny_models):
    stage = ImageEmbeddings(model_path=tiny_models["clip"], device="cpu")

    def probe(frames):
        from mmcurate.models.runner import LOADS

        for frame in frames:
            stage.encoder()  # what every batch of the stage calls
            stage.encoder()
            import os

            yield pd.DataFrame({"pid": [os.getpid()], "loads": [max(LOADS.values())], "rows": [len(frame)]})

    rows = (spark.range(0, 64, numPartitions=16)
            .mapInPandas(probe, "pid long, loads long, rows long").collect())
    assert sum(r.rows for r in rows) == 64
    assert {r.loads for r in rows} == {1}  # never loaded twice in one worker
    assert len({r.pid for r in rows}) < 16  # 16 tasks shared fewer workers: the cache was reused across tasks


def test_device_is_the_request_else_cuda_if_present_else_cpu():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert task_device("auto") == expected
    assert task_device("cpu") == "cpu" and task_device("cuda:1") == "cuda:1"
    with pytest.raises(ValueError, match="device"):
        task_device("tpu")


def test_batches_halve_on_cuda_out_of_memory_and_keep_every_output_in_order():
    seen = []

    def forward(chunk):
        seen.append(len(chunk))
        if len(chunk) > 3:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        return [x * 10 for x in chunk]

    batches = Batches(16)
    assert batches.run(list(range(11)), forward) == [x * 10 for x in range(11)]
    assert batches.size == 2 and seen[:4] == [11, 8, 4, 2]
    with pytest.raises(ValueError):
        Batches(0)


def test_prefetch_prepares_the_next_batch_while_the_current_one_is_used():
    events, lock = [], threading.Lock()

    def prepare(batch):
        with lock:
            events.append(("prepared", batch))
        return batch * 2

    out = []
    for batch, prepared in prefetch(range(5), prepare, depth=2):
        time.sleep(0.02)  # the forward pass
        with lock:
            events.append(("used", batch))
        out.append(prepared)
    assert out == [0, 2, 4, 6, 8]
    first_use = events.index(("used", 0))
    assert ("prepared", 1) in events[:first_use] and ("prepared", 2) in events[:first_use]


def test_gpu_stages_get_a_resource_profile_only_where_the_cluster_schedules_gpus(spark):
    assert map_profile(spark, Resources(gpus=1.0)) is None  # local session: no executor GPU resource
    profile = resource_profile(Resources(cpus=2, gpus=0.5))
    assert profile.taskResources["gpu"].amount == 0.5 and profile.taskResources["cpus"].amount == 2


def test_a_worker_moving_to_another_gpu_frees_its_copy_on_the_old_one():
    from mmcurate.models.runner import LOADS, load_once

    key = ("test-model", "/models/x")
    first = load_once(key, "cuda:0", lambda: object())
    assert load_once(key, "cuda:0", lambda: object()) is first
    second = load_once(key, "cuda:1", lambda: object())
    assert second is not first and load_once(key, "cuda:1", lambda: object()) is second
    assert (LOADS[(key, "cuda:0")], LOADS[(key, "cuda:1")]) == (1, 1)
    from mmcurate.models.runner import _MODELS

    assert _MODELS[key][0] == "cuda:1"  # one copy per worker
