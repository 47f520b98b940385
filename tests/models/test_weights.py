"""Weights load from safe formats only; a crafted pickle payload is refused and never runs."""
import os
import pickle

import pytest
import torch
from safetensors.torch import save_file

from mmcurate.models.weights import UnsafeWeightsError, load_state_dict

pytestmark = pytest.mark.reliability


class Payload:
    """Unpickling this calls os.system: what a malicious checkpoint does."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def small_model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))


def test_safetensors_and_weights_only_checkpoints_load(tmp_path):
    model = small_model()
    save_file(model.state_dict(), str(tmp_path / "model.safetensors"))
    torch.save(model.state_dict(), tmp_path / "model.pt")
    for name in ("model.safetensors", "model.pt"):
        fresh = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
        fresh.load_state_dict(load_state_dict(str(tmp_path / name)))
        x = torch.ones(1, 4)
        assert torch.equal(fresh(x), model(x))


def test_a_pickle_payload_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    with open(tmp_path / "evil.pt", "wb") as f:
        pickle.dump({"weight": Payload(marker)}, f)
    with pytest.raises(UnsafeWeightsError, match="refused.*safetensors"):
        load_state_dict(str(tmp_path / "evil.pt"))
    assert not marker.exists()


@pytest.mark.parametrize("name", ["model.pkl", "model.pickle", "weights.npy"])
def test_other_formats_are_refused_without_reading(tmp_path, name):
    marker = tmp_path / "pwned"
    with open(tmp_path / name, "wb") as f:
        pickle.dump(Payload(marker), f)
    with pytest.raises(UnsafeWeightsError, match="unknown weights format"):
        load_state_dict(str(tmp_path / name))
    assert not marker.exists()


def test_a_checkpoint_of_non_tensors_is_refused(tmp_path):
    torch.save({"weight": [1, 2, 3]}, tmp_path / "odd.pt")
    with pytest.raises(UnsafeWeightsError, match="not a state dict of tensors"):
        load_state_dict(str(tmp_path / "odd.pt"))
