"""Safety and aesthetics heads on the stored CLIP image embeddings: no image is decoded or embedded again.

Both heads load the weight files in their published layouts (state-dict keys as released), from
safetensors or a weights-only PyTorch file, with the input width read from the weights (768 for
ViT-L/14 embeddings, 512 for ViT-B/32):

- `aesthetic_scores`: the LAION improved aesthetic predictor (`sac+logos+ava1-l14-linearMSE.pth`),
  an MLP 768-1024-128-64-16-1 (`layers.0/2/4/6/7`), scoring the unit embedding on a 1-10 scale.
- `nsfw_scores`: LAION's CLIP-based NSFW detector as ported to PyTorch (`norm.mean`,
  `norm.variance`, `linear_1..4`), a probability that the image is NSFW; MMC4 drops images above
  0.1, OBELICS and MINT-1T drop the whole document when one image is flagged.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import types as T

from mmcurate.models.encoders import require_path
from mmcurate.models.runner import Batches, load_once, task_device
from mmcurate.models.stage import ModelStage
from mmcurate.stage import IMAGE_KEY


def aesthetic_mlp(width: int):
    """The LAION aesthetic predictor's MLP (dropout layers keep the released state-dict indices)."""
    from torch import nn

    class Aesthetic(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = nn.Sequential(nn.Linear(width, 1024), nn.Dropout(0.2), nn.Linear(1024, 128), nn.Dropout(0.2),
                                        nn.Linear(128, 64), nn.Dropout(0.1), nn.Linear(64, 16), nn.Linear(16, 1))

        def forward(self, x):
            return self.layers(x)

    return Aesthetic()


def nsfw_mlp(width: int):
    """LAION's CLIP NSFW detector: standardise with stored mean/variance, three ReLU layers, a sigmoid."""
    import torch
    from torch import nn

    class Normalization(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("mean", torch.zeros(width))
            self.register_buffer("variance", torch.ones(width))

        def forward(self, x):
            return (x - self.mean) / self.variance.sqrt()

    class NSFW(nn.Module):
        def __init__(self):
            super().__init__()
            self.norm = Normalization()
            self.linear_1, self.linear_2 = nn.Linear(width, 64), nn.Linear(64, 512)
            self.linear_3, self.linear_4 = nn.Linear(512, 256), nn.Linear(256, 1)

        def forward(self, x):
            x = torch.relu(self.linear_1(self.norm(x)))
            x = torch.relu(self.linear_3(torch.relu(self.linear_2(x))))
            return torch.sigmoid(self.linear_4(x))

    return NSFW()


HEADS = {"aesthetic": (aesthetic_mlp, "layers.0.weight"), "nsfw": (nsfw_mlp, "linear_1.weight")}


def load_head(kind: str, path: str, device: str):
    """A head of `kind` with the weights at `path` (width from the first layer), in eval mode on `device`."""
    from mmcurate.models.weights import load_state_dict

    build, first = HEADS[kind]
    state = load_state_dict(require_path(path, f"{kind} head weights"))
    if first not in state:
        raise ValueError(f"{path}: not a {kind} head in the published layout (no {first!r}; keys: {sorted(state)[:6]})")
    head = build(state[first].shape[1])
    head.load_state_dict(state)
    return head.to(device).eval()


def _head_schema(column: str) -> T.StructType:
    return T.StructType([T.StructField("image_id", T.StringType(), False),
                         T.StructField("model", T.StringType(), False),
                         T.StructField(column, T.DoubleType(), True)])


@dataclass(frozen=True)
class HeadStage(ModelStage):
    """`image_embeddings` -> a score per image from a small head on its (unit) CLIP embedding."""

    head = ""
    column = ""
    input = "image_embeddings"
    key = IMAGE_KEY
    version = "1"
    reads = {"image_id": "string", "embedding": "array<float>"}

    def compute(self, embeddings: DataFrame) -> DataFrame:
        return self.map_batches(embeddings.select("image_id", "embedding"), self.score_partition, self.schema)

    def score_partition(self, frames: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        import torch

        device = task_device(self.device)
        head = load_once((self.head, self.model_path), device, lambda: load_head(self.head, self.model_path, device))
        batches = Batches(self.batch_size)

        def forward(vectors):
            with torch.inference_mode():
                return list(head(torch.from_numpy(np.stack(vectors)).float().to(device)).squeeze(-1).cpu().numpy())

        for frame in frames:
            vectors = [None if v is None else np.asarray(v, dtype=np.float32) for v in frame["embedding"]]
            scores = batches.run_where(vectors, [v is not None for v in vectors], forward)
            yield pd.DataFrame({"image_id": frame["image_id"], "model": self.model_name,
                                self.column: [None if s is None else float(s) for s in scores]})


@dataclass(frozen=True)
class AestheticScores(HeadStage):
    """`image_embeddings` -> `aesthetic_scores`: the LAION aesthetic predictor's score (1-10)."""

    name = table = "aesthetic_scores"
    head, column = "aesthetic", "aesthetic_score"
    schema = _head_schema("aesthetic_score")


@dataclass(frozen=True)
class NsfwScores(HeadStage):
    """`image_embeddings` -> `nsfw_scores`: LAION's CLIP NSFW probability (0 safe .. 1 NSFW)."""

    name = table = "nsfw_scores"
    head, column = "nsfw", "nsfw_score"
    schema = _head_schema("nsfw_score")

