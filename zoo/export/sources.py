"""Where export's weights come from: a run folder, a .safetensors file (+ card), shipped weights, or none."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

from zoo.errors import ZooError


@dataclass
class Source:
    state: dict[str, torch.Tensor] | None  # None: random initialization
    card: dict = field(default_factory=dict)  # model, dataset, sha256, metrics, recipe (when known)
    origin: str = "random init"


def _read_safetensors(path: Path, expect_sha: str | None) -> dict[str, torch.Tensor]:
    from safetensors.torch import load

    from zoo.weights import sha256_bytes

    try:
        blob = path.read_bytes()
    except OSError as e:
        raise ZooError(f"cannot read weights {path}: {e.strerror}") from None
    if expect_sha and sha256_bytes(blob) != expect_sha:
        raise ZooError(f"{path} does not match the sha256 in its card (truncated or corrupt); "
                       f"re-copy it or export another checkpoint")
    try:
        return load(blob)
    except Exception as e:  # safetensors raises SafetensorError, OSError or others on garbage
        raise ZooError(f"{path} is not a valid safetensors file ({str(e).splitlines()[0][:80]}); "
                       f"is it truncated?") from None


def from_path(path: str | Path) -> Source:
    """A run folder (its best.safetensors + best.json), a checkpoint folder, or a .safetensors file."""
    p = Path(path)
    if p.is_dir():
        for weights, card in (("best.safetensors", "best.json"), ("model.safetensors", "card.json")):
            if (p / weights).is_file():
                return from_path(p / weights) if not (p / card).is_file() else _with_card(p / weights, p / card)
        raise ZooError(f"{p} holds no best.safetensors or model.safetensors; point --weights at a run folder "
                       f"written by zoo train or at a .safetensors file")
    if not p.is_file():
        raise ZooError(f"weights {p} not found")
    for card in (p.with_suffix(".json"), p.parent / "card.json"):
        if card.is_file():
            return _with_card(p, card)
    return Source(_read_safetensors(p, None), {}, str(p))


def _with_card(weights: Path, card_path: Path) -> Source:
    card = json.loads(card_path.read_text())
    return Source(_read_safetensors(weights, card.get("sha256")), card, str(weights))


def from_pretrained(arch: str, dataset: str) -> Source:
    from dataclasses import asdict

    from zoo.weights import pretrained_path

    path, card = pretrained_path(arch, dataset)
    meta = asdict(card)
    return Source(_read_safetensors(path, card.sha256), {**meta, "model": arch}, f"shipped {path.name}")


def check_card(source: Source, arch: str, dataset: str) -> None:
    """A checkpoint from another architecture or dataset is refused before shapes are even compared."""
    got = (source.card.get("model") or source.card.get("arch"), source.card.get("dataset"))
    if got[0] and (got[0], got[1]) != (arch, dataset):
        raise ZooError(f"{source.origin} was trained as {got[0]}.{got[1]}, not {arch}.{dataset}; "
                       f"run `zoo export {got[0]} {got[1]}` or pick the matching checkpoint")
