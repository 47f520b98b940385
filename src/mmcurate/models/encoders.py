"""Image and text encoders from local model files: open_clip checkpoints and Hugging Face directories.

`load_encoder(backend, path, ...)` gives an `Encoder` whose `image_tensor` preprocesses one image's
bytes on the CPU (thread-safe, run on the decode pool) and whose `embed_images` / `embed_texts`
run batched forward passes on the encoder's device. Embeddings are L2-normalised float32, so a dot
product is the cosine similarity. Everything is read from `path` (a local disk, `/dbfs/...` or a
Unity Catalog volume); nothing is downloaded, and weights load only from safe formats.

Formats:
- `open_clip`: an hf-hub-style directory (`open_clip_config.json` + `open_clip_model.safetensors`
  or `open_clip_pytorch_model.bin`), or a weights file with `architecture` naming the built-in
  config (`ViT-B-32`), loaded with `mmcurate.models.weights.load_state_dict`.
- `transformers`: a `save_pretrained` directory. CLIP and SigLIP give image and text embeddings
  (`get_image_features` / `get_text_features`); image backbones such as DINOv2 give their pooled
  output; text encoders, including sentence-transformers directories (`modules.json`,
  `1_Pooling/config.json`), give the pooling their config names (mean by default).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from mmcurate.images import MAX_PIXELS, decode_pil_rgb
from mmcurate.models.runner import ModelNotFoundError, torch_dtype

BACKENDS = ("open_clip", "transformers")
_OPEN_CLIP_CONFIG = "open_clip_config.json"


def _unit_rows(tensor) -> list[np.ndarray]:
    import torch

    vectors = torch.nn.functional.normalize(tensor.float(), dim=-1).cpu().numpy()
    return list(vectors)


def _features(output):
    """transformers returns a tensor (4.x) or an output object with `pooler_output` (5.x) from get_*_features."""
    return output if not hasattr(output, "pooler_output") else output.pooler_output


@dataclass
class Encoder:
    """A loaded model with its preprocessing; `kind` says what it embeds: "image", "text" or "both"."""

    model_id: str
    kind: str
    device: str
    model: Any
    preprocess: Any = None
    tokenizer: Any = None
    family: str = "open_clip"
    pooling: str = "mean"
    max_length: Optional[int] = None
    pad_to_max: bool = False
    max_pixels: int = MAX_PIXELS

    @property
    def dtype(self):
        return next(self.model.parameters()).dtype

    def image_tensor(self, data: bytes):
        """One image's bytes decoded and preprocessed to the model's CHW float tensor (CPU); ImageDecodeError if bad."""
        image = decode_pil_rgb(data, self.max_pixels)
        if self.family == "open_clip":
            return self.preprocess(image)
        return self.preprocess(images=image, return_tensors="pt")["pixel_values"][0]

    def embed_images(self, tensors: list) -> list[np.ndarray]:
        import torch

        self._require("image")
        with torch.inference_mode():
            pixels = torch.stack(tensors).to(self.device, self.dtype, non_blocking=True)
            if self.family == "open_clip":
                return _unit_rows(self.model.encode_image(pixels))
            if hasattr(self.model, "get_image_features"):
                return _unit_rows(_features(self.model.get_image_features(pixel_values=pixels)))
            return _unit_rows(self.model(pixel_values=pixels).pooler_output)

    def embed_texts(self, texts: list[str]) -> list[np.ndarray]:
        import torch

        self._require("text")
        with torch.inference_mode():
            if self.family == "open_clip":
                return _unit_rows(self.model.encode_text(self.tokenizer(texts).to(self.device)))
            # SigLIP pools the last position: it was trained on max_length padding, so pad the same way
            padding = "max_length" if self.pad_to_max else True
            tokens = self.tokenizer(texts, padding=padding, truncation=True, max_length=self.max_length,
                                    return_tensors="pt").to(self.device)
            if hasattr(self.model, "get_text_features"):
                return _unit_rows(_features(self.model.get_text_features(**tokens)))
            hidden = self.model(**tokens).last_hidden_state
            if self.pooling == "cls":
                return _unit_rows(hidden[:, 0])
            mask = tokens["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            return _unit_rows((hidden * mask).sum(1) / mask.sum(1).clamp(min=1))

    def _require(self, kind: str) -> None:
        if self.kind not in (kind, "both"):
            raise ValueError(f"model {self.model_id!r} embeds {self.kind}s only, not {kind}s")


def require_path(path: str, what: str = "model") -> str:
    """`path` if it exists, else ModelNotFoundError naming it (models are never downloaded at run time)."""
    if not path or not os.path.exists(path):
        raise ModelNotFoundError(f"{what} not found at {path!r}: give a local path, /dbfs/... or a volume "
                                 f"path that every executor can read (nothing is downloaded)")
    return path


def load_encoder(backend: str, path: str, device: str = "cpu", precision: str = "fp32",
                 architecture: Optional[str] = None, max_pixels: int = MAX_PIXELS) -> Encoder:
    """The encoder stored at `path` on `device`, in `precision` (see module docstring for the formats)."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    require_path(path)
    dtype = torch_dtype(precision, device)
    if backend == "open_clip":
        encoder = _load_open_clip(path, architecture, device)
    else:
        encoder = _load_transformers(path, device)
    encoder.model.to(device=device, dtype=dtype).eval()
    encoder.max_pixels = max_pixels
    return encoder


def _load_open_clip(path: str, architecture: Optional[str], device: str) -> Encoder:
    import open_clip

    from mmcurate.models.weights import load_state_dict

    if os.path.isdir(path):
        if not os.path.isfile(os.path.join(path, _OPEN_CLIP_CONFIG)):
            raise ModelNotFoundError(f"{path}: an open_clip model directory needs {_OPEN_CLIP_CONFIG} and its weights")
        name = "local-dir:" + path
        model, _, preprocess = open_clip.create_model_and_transforms(name, device="cpu", weights_only=True)
        tokenizer = open_clip.get_tokenizer(name)
    else:
        if not architecture:
            raise ValueError(f"{path} is a weights file: give `architecture` (an open_clip model name, e.g. ViT-B-32)")
        model, _, preprocess = open_clip.create_model_and_transforms(architecture, pretrained=None, device="cpu")
        model.load_state_dict(load_state_dict(path))
        tokenizer = open_clip.get_tokenizer(architecture)
    return Encoder(model_id=os.path.basename(os.path.normpath(path)), kind="both", device=device, model=model,
                   preprocess=preprocess, tokenizer=tokenizer, family="open_clip")


def _text_length(model_dir: str, config, tokenizer) -> Optional[int]:
    """The most tokens a text keeps: sentence-transformers' max_seq_length, else the tokenizer's limit, never more
    than the model's positions (RoBERTa-style models count 2 positions of padding offset)."""
    positions = getattr(getattr(config, "text_config", config), "max_position_embeddings", None)
    if positions and getattr(config, "model_type", "") in ("roberta", "xlm-roberta", "mpnet", "camembert"):
        positions -= 2
    limits = [positions]
    st_config = os.path.join(model_dir, "sentence_bert_config.json")
    if os.path.isfile(st_config):
        with open(st_config, encoding="utf-8") as f:
            limits.append(json.load(f).get("max_seq_length"))
    elif tokenizer is not None and 0 < getattr(tokenizer, "model_max_length", 0) < 1_000_000:
        limits.append(tokenizer.model_max_length)
    limits = [n for n in limits if n]
    return min(limits) if limits else None


def _sentence_transformers_layout(path: str) -> tuple[str, str]:
    """(directory of the transformer, pooling mode) of a sentence-transformers directory; (path, mean) otherwise."""
    modules_file = os.path.join(path, "modules.json")
    if not os.path.isfile(modules_file):
        return path, "mean"
    with open(modules_file, encoding="utf-8") as f:
        modules = json.load(f)
    model_dir, pooling = path, "mean"
    for module in modules:
        kind, where = module.get("type", ""), os.path.join(path, module.get("path", ""))
        if kind.endswith("Transformer"):
            model_dir = where
        elif kind.endswith("Pooling"):
            with open(os.path.join(where, "config.json"), encoding="utf-8") as f:
                config = json.load(f)
            pooling = "cls" if config.get("pooling_mode_cls_token") else "mean"
    return model_dir, pooling


def _load_transformers(path: str, device: str) -> Encoder:
    from transformers import AutoConfig, AutoImageProcessor, AutoModel, AutoTokenizer

    model_dir, pooling = _sentence_transformers_layout(path)
    config = AutoConfig.from_pretrained(model_dir, local_files_only=True)
    model = AutoModel.from_pretrained(model_dir, local_files_only=True, use_safetensors=True)
    has_image = hasattr(model, "get_image_features") or getattr(config, "model_type", "") in (
        "dinov2", "dinov3", "vit", "siglip_vision_model", "clip_vision_model")
    has_text = hasattr(model, "get_text_features") or not has_image
    preprocess = AutoImageProcessor.from_pretrained(model_dir, local_files_only=True) if has_image else None
    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True) if has_text else None
    max_length = _text_length(path, config, tokenizer) if has_text else None
    kind = "both" if has_image and has_text else ("image" if has_image else "text")
    return Encoder(model_id=os.path.basename(os.path.normpath(path)), kind=kind, device=device, model=model,
                   preprocess=preprocess, tokenizer=tokenizer, family="transformers", pooling=pooling,
                   max_length=max_length, pad_to_max=getattr(config, "model_type", "").startswith("siglip"))
