"""The one way model weights are read: safe formats only, never arbitrary pickle.

A checkpoint is data, but a pickled one can run code when it is loaded. Weights load from
safetensors, or from a PyTorch file through `torch.load(weights_only=True)`, which unpickles
tensors and containers only; anything else is refused with `UnsafeWeightsError`.

>>> state = load_state_dict("/models/clip/model.safetensors")
>>> model.load_state_dict(state)
"""
from __future__ import annotations

import os
import pickle

SAFETENSORS = (".safetensors",)
TORCH = (".pt", ".pth", ".bin", ".ckpt")


class UnsafeWeightsError(ValueError):
    """A weights file in a format that could execute code, or one whose content is not plain tensors."""


def load_state_dict(path: str, device: str = "cpu") -> dict:
    """Tensors by name from a safetensors file or a weights-only PyTorch checkpoint on `device`."""
    import torch

    name = os.path.basename(path).lower()
    if name.endswith(SAFETENSORS):
        from safetensors.torch import load_file

        return load_file(path, device=device)
    if name.endswith(TORCH):
        try:
            loaded = torch.load(path, map_location=device, weights_only=True)
        except pickle.UnpicklingError as e:
            raise UnsafeWeightsError(
                f"{path}: refused, the checkpoint holds objects other than tensors (a pickle that could run "
                f"code); convert it to safetensors. Loader said: {str(e).splitlines()[0]}"
            ) from e
        state = loaded.get("state_dict", loaded) if isinstance(loaded, dict) else None
        if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise UnsafeWeightsError(f"{path}: not a state dict of tensors")
        return state
    raise UnsafeWeightsError(
        f"{path}: unknown weights format; use {', '.join(SAFETENSORS + TORCH)} (pickle files are never loaded)"
    )
