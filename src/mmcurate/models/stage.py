"""`ModelStage`: the parameters and the Spark plumbing every model-scoring stage shares.

A model stage names its weights (`model_path`, read on the executors), the id its rows carry
(`model_id`, default the path's last component), where it runs (`device`, `precision`) and its
`batch_size` (rows per Arrow batch and per forward pass). `map_batches` runs a per-partition
function through `mapInPandas`, under a GPU `ResourceProfile` when the cluster schedules GPUs.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Iterator, Optional

import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import types as T

from mmcurate.models.runner import DEVICES, PRECISIONS, map_profile
from mmcurate.stage import Resources, Stage, batch_size_conf


@dataclass(frozen=True)
class ModelStage(Stage):
    """Base of the model stages; `model_path` has no default, so these stages run only when configured."""

    model_path: str
    model_id: Optional[str] = None
    device: str = "auto"
    precision: str = "auto"
    batch_size: int = 256
    gpus: float = 1.0

    operational = ("device", "batch_size", "gpus")

    def __post_init__(self):
        super().__post_init__()
        if self.device not in DEVICES and not self.device.startswith("cuda:"):
            raise ValueError(f"device must be one of {DEVICES} or cuda:N, got {self.device!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if not 0 <= self.gpus <= 64:
            raise ValueError(f"gpus (per task; a fraction shares a GPU) must be in [0, 64], got {self.gpus}")

    @property
    def model_name(self) -> str:
        """The model id every row records: `model_id`, else the weights path's last component."""
        return self.model_id or os.path.basename(os.path.normpath(self.model_path))

    @property
    def resources(self) -> Resources:  # type: ignore[override]
        return Resources(cpus=1.0, gpus=self.gpus if self.device != "cpu" else 0.0)

    @property
    def spark_conf(self) -> dict[str, str]:
        return batch_size_conf(self.batch_size)

    def map_batches(self, df: DataFrame, run: Callable[[Iterator[pd.DataFrame]], Iterator[pd.DataFrame]],
                    schema: T.StructType) -> DataFrame:
        """`run` over each partition's Arrow batches (a bound method: it pickles with the stage)."""
        return df.mapInPandas(run, schema, profile=map_profile(df.sparkSession, self.resources))
