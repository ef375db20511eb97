"""Shipped pretrained weights: the manifest in the zoo._weights data package (the repo's weights/ folder).

Each card names a safetensors file whose sha256 is checked before anything is loaded; files hold
state dicts only, so nothing is ever unpickled.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path

from zoo.errors import ZooError

OFFLINE_UNAVAILABLE = {"kmnist"}  # datasets whose images cannot be had offline in our workplace


@dataclass(frozen=True)
class WeightsCard:
    arch: str
    dataset: str
    file: str  # file name inside weights/, "<arch>.<dataset>-<sha256[:8]>.safetensors"
    sha256: str
    num_params: int
    size_mb: float
    metrics: dict = field(default_factory=dict)  # e.g. {"top1": 91.3, "eval_set": "test (10000)"}
    recipe: dict = field(default_factory=dict)
    meta: dict = field(default_factory=dict)  # wall time, machine, torch version, date, ...

    @property
    def name(self) -> str:
        return f"{self.arch}.{self.dataset}"


def weights_dir() -> Path:
    return Path(str(resources.files("zoo._weights")))


@lru_cache(maxsize=1)
def manifest() -> dict[str, WeightsCard]:
    path = weights_dir() / "manifest.json"
    if not path.is_file():
        return {}
    data = json.loads(path.read_text())
    cards = [WeightsCard(**c) for c in data.get("weights", [])]
    return {c.name: c for c in cards}


def get_card(arch: str, dataset: str) -> WeightsCard | None:
    return manifest().get(f"{arch}.{dataset}")


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def no_weights_reason(arch: str, dataset: str) -> str:
    if dataset in OFFLINE_UNAVAILABLE:
        return "no weights: dataset not offline"
    return "no weights yet"


def pretrained_path(arch: str, dataset: str) -> tuple[Path, WeightsCard]:
    card = get_card(arch, dataset)
    if card is None:
        have = ", ".join(sorted(manifest())) or "none"
        raise ZooError(f"no pretrained weights for {arch}.{dataset} ({no_weights_reason(arch, dataset)}); "
                       f"shipped: {have}; train them with `zoo train {arch} {dataset}`")
    path = weights_dir() / card.file
    if not path.is_file():
        raise ZooError(f"weights file {card.file} for {card.name} is missing from {weights_dir()}; reinstall zoo")
    digest = sha256_file(path)
    if digest != card.sha256:
        raise ZooError(f"weights file {path} has sha256 {digest[:12]}..., manifest says {card.sha256[:12]}...; "
                       f"the file is corrupt: reinstall zoo")
    return path, card


def load_pretrained_into(model, arch: str, dataset: str) -> None:
    from safetensors.torch import load_file

    from zoo.checkpoint import load_state_dict_checked

    path, _ = pretrained_path(arch, dataset)
    load_state_dict_checked(model, load_file(str(path)), source=str(path))


def eval_sample(dataset: str):
    """The shipped evaluation sample of a test split as (uint8 [N, C, H, W], int64 [N]), or None."""
    import numpy as np
    import torch

    path = weights_dir() / f"eval_{dataset}.npz"
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as z:
        return torch.from_numpy(z["images"]), torch.from_numpy(z["labels"]).long()
