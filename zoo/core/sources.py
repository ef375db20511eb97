"""Where weights come from: shipped (`pretrained`), a run folder, a checkpoint folder, a .safetensors file
(+ its card), `--init` for fine-tuning, or none (random initialization). Every file is sha256-checked
against its card before its tensors are used; safetensors only, nothing is unpickled.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from zoo.core.cards import RunCard, WeightsCard
from zoo.core.errors import ZooError, has_flag, read_advice
from zoo.core.io import read_json
from zoo.core.names import pretrained_dataset
from zoo.core.shipped import pretrained_path, sha256_bytes

if TYPE_CHECKING:
    import torch

Card = RunCard | WeightsCard


@dataclass(frozen=True)
class Source:
    state: dict[str, torch.Tensor] | None  # None: random initialization
    card: Card | None = None  # arch, dataset, sha256, recipe, top1 (when known)
    origin: str = "random init"  # where the tensors came from, for messages and metadata
    sha256: str | None = None  # of the weights file's bytes; None for random init

    @property
    def arch(self) -> str | None:
        return self.card.arch if self.card else None


@dataclass(frozen=True)
class Target:
    """A model to export or bench: the pair, and where its weights come from."""
    arch: str
    dataset: str
    weights: str | None = None  # run folder / checkpoint folder / .safetensors file
    pretrained: bool = False  # zoo's shipped weights; neither this nor `weights`: random init
    onnx: str | None = None  # an already exported file (zoo export), used as it is

    @property
    def name(self) -> str:
        return f"{self.arch}.{self.dataset}"

    def describe(self) -> str:
        """Which weights, in words, for the first line a command prints: the user sees what is measured."""
        if self.onnx:
            return f"{self.name}: the exported file {self.onnx}"
        if self.weights:
            return f"{self.name}: the weights in {self.weights}"
        if self.pretrained:
            from zoo.core.shipped import get_card

            card = get_card(self.arch, self.dataset)
            acc = f", top-1 {card.top1:.2f}% on its card" if card and card.top1 is not None else ""
            return f"{self.name}: the weights shipped with zoo{acc}"
        return f"{self.name}: random weights"


RANDOM = Source(None)


def _read_safetensors(path: Path, expect_sha: str | None) -> tuple[dict[str, torch.Tensor], str]:
    import torch  # here, not at import: a card is read (and a cached export found) without torch
    from safetensors.torch import load

    try:
        blob = path.read_bytes()
    except OSError as e:
        raise ZooError(f"cannot read weights {path}: {e.strerror}; {read_advice(e)}") from None
    sha = sha256_bytes(blob)
    if expect_sha and sha != expect_sha:
        raise ZooError(f"{path} does not match the sha256 in its card (truncated or corrupt); "
                       f"re-copy it or export another checkpoint")
    try:
        state = load(blob)
    except Exception as e:  # safetensors raises SafetensorError, OSError or others on garbage
        raise ZooError(f"{path} is not a valid safetensors file ({str(e).splitlines()[0][:80]}); "
                       f"it is truncated or another format: re-copy it, or give a run folder written by zoo "
                       f"train") from None
    bad = next((k for k, t in state.items() if t.is_floating_point() and not torch.isfinite(t).all()), None)
    if bad is not None:
        raise ZooError(f"{path} holds NaN or infinite values (tensor {bad}); these weights are broken: use an "
                       f"earlier checkpoint")
    return state, sha


def read_card(path: Path) -> Card:
    """A run card (best.json, card.json) or a weights card (an entry of a manifest, saved beside its file)."""
    data = read_json(path, "card")
    if isinstance(data, dict) and "file" in data and "size_mb" in data:
        return WeightsCard.from_json(data, str(path))
    return RunCard.from_json(data, str(path))


def _with_card(weights: Path, card_path: Path) -> Source:
    card = read_card(card_path)
    state, sha = _read_safetensors(weights, card.sha256)
    return Source(state, card, str(weights), sha)


def _files_at(path: str | Path) -> tuple[Path, Path | None]:
    """(the weights file, its card or None) that a run folder, checkpoint folder or .safetensors path names."""
    p = Path(path)
    if p.is_dir():
        for weights, card in (("best.safetensors", "best.json"), ("model.safetensors", "card.json")):
            if (p / weights).is_file():
                return p / weights, (p / card if (p / card).is_file() else None)
        raise ZooError(f"{p} holds no best.safetensors or model.safetensors; "
                       f"{'point --weights at' if has_flag('--weights') else 'give'} a run folder written by zoo "
                       f"train or a .safetensors file")
    if not p.is_file():
        raise ZooError(f"weights {p} not found; give a run folder written by zoo train or a .safetensors file")
    return p, next((c for c in (p.with_suffix(".json"), p.parent / "card.json") if c.is_file()), None)


def from_path(path: str | Path) -> Source:
    """A run folder (its best.safetensors + best.json), a checkpoint folder, or a .safetensors file."""
    weights, card = _files_at(path)
    if card is not None:
        return _with_card(weights, card)
    state, sha = _read_safetensors(weights, None)
    return Source(state, None, str(weights), sha)


def weights_file(path: str | Path) -> Path:
    """The weights file a run folder, checkpoint folder or .safetensors path names (not read)."""
    return _files_at(path)[0]


def card_at(path: str | Path) -> Card | None:
    """The card of the weights at `path` (read without loading the tensors); None when it has none."""
    card = _files_at(path)[1]
    return read_card(card) if card is not None else None


def from_pretrained(arch: str, dataset: str) -> Source:
    path, card = pretrained_path(arch, dataset)
    state, sha = _read_safetensors(path, card.sha256)
    return Source(state, card, f"shipped {path.name}", sha)


def check_card(source: Source, arch: str, dataset: str) -> None:
    """A checkpoint from another architecture or dataset is refused before shapes are even compared."""
    card = source.card
    if card is not None and (card.arch, card.dataset) != (arch, dataset):
        raise ZooError(f"{source.origin} was trained as {card.arch}.{card.dataset}, not {arch}.{dataset}; "
                       f"run `zoo export {card.arch} {card.dataset}` or pick the matching checkpoint")


def resolve(target: Target) -> Source:
    """The weights a Target names: shipped, a path (checked against the pair), or random init."""
    if target.weights and target.pretrained:
        raise ZooError("give either --weights or --pretrained, not both")
    if target.pretrained:
        return from_pretrained(target.arch, target.dataset)
    if target.weights:
        src = from_path(target.weights)
        check_card(src, target.arch, target.dataset)
        return src
    return RANDOM


def init_source(init: str, arch: str, dataset: str) -> tuple[dict[str, torch.Tensor], dict]:
    """`--init`: "pretrained" (this pair's shipped weights), "pretrained:DATASET" (this architecture's for
    another dataset) or a run folder / checkpoint / .safetensors file of the same architecture.
    Returns the tensors and the record every card of the run carries."""
    if pretrained_dataset(init, dataset) is not None:
        src = from_pretrained(arch, pretrained_dataset(init, dataset))
    else:
        src = from_path(init)
        if src.arch and src.arch != arch:
            raise ZooError(f"--init {init} holds {src.arch} weights, not {arch}; pick a run of {arch}")
    classes = (getattr(src.card, "dataset_spec", None) or {}).get("class_names")  # a folder's, when recorded
    return src.state, {"arg": init, "source": src.origin, "model": arch,
                       "dataset": src.card.dataset if src.card else None, "sha256": src.sha256,
                       **({"classes": list(classes)} if classes else {})}
