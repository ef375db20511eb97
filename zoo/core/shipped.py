"""Shipped pretrained weights: the manifest in the zoo._weights data package (the repo's weights/ folder).

Each card names a safetensors file whose sha256 is checked before anything is loaded; files hold
state dicts only, so nothing is ever unpickled.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from importlib import resources
from pathlib import Path

from zoo.core.cards import WeightsCard, sealed
from zoo.core.errors import ZooError, close_matches
from zoo.core.io import atomic_write_json, read_json
from zoo.core.names import DATASETS

MANIFEST_FORMAT = 1
OFFLINE_UNAVAILABLE = {"kmnist"}  # datasets whose images cannot be had offline in our workplace


def weights_dir() -> Path:
    return Path(str(resources.files("zoo._weights")))


def read_manifest(folder: Path) -> dict[str, WeightsCard]:
    """The cards of `folder`/manifest.json by name ({} when there is none)."""
    path = Path(folder) / "manifest.json"
    if not path.is_file():
        return {}
    data = read_json(path, "weights manifest")
    if not isinstance(data, dict) or not isinstance(data.get("weights"), list):
        raise ZooError(f"weights manifest {path} has no 'weights' list; it is damaged: reinstall zoo")
    cards = [WeightsCard.from_json(c, f"a card in {path}") for c in data["weights"]]
    return {c.name: c for c in cards}


def write_manifest(folder: Path, cards: dict[str, WeightsCard]) -> None:
    """`folder`/manifest.json, every card sealed with its checksum (a flipped byte in any card is refused on
    read, not shown as another figure), sorted by dataset then architecture; written atomically."""
    atomic_write_json(Path(folder) / "manifest.json", {"format": MANIFEST_FORMAT, "weights": [
        sealed(c.to_json()) for c in sorted(cards.values(), key=lambda c: (c.dataset, c.arch))]})


@lru_cache(maxsize=1)
def manifest() -> dict[str, WeightsCard]:
    return read_manifest(weights_dir())


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
        if dataset not in DATASETS:  # a typo, or a folder: advice to train "mnistt" would be wrong
            close = close_matches(dataset, DATASETS)
            raise ZooError(f"no pretrained weights for {arch}.{dataset}: zoo ships weights for "
                           f"{', '.join(DATASETS)} only{close if close.startswith('; did you mean') else ''}")
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


def sample_images(dataset: str | None) -> Path | None:
    """The folder of real test images shipped for `dataset` (what zoo predict classifies when given none), or
    None when there is none."""
    folder = weights_dir() / "samples" / str(dataset)
    return folder if dataset and folder.is_dir() else None


def eval_sample(dataset: str):
    """The shipped evaluation sample of a test split as (uint8 [N, C, H, W], int64 [N]), or None."""
    import numpy as np

    path = weights_dir() / f"eval_{dataset}.npz"
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as z:
        return z["images"], z["labels"].astype(np.int64)
