"""The one evaluation set every gate, calibration and bench row measures on: real images only.

With the dataset on disk, the requested split; without it, the sample of the test split that zoo ships
(1,000 stratified images), and the set says so. Never padded with generated images: a gate that
measured accuracy on noise would prove nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from zoo.core.shipped import eval_sample
from zoo.data.datasets import DataOptions, DatasetMissing, load_split
from zoo.data.specs import DatasetSpec

ORIGINS = ("test split", "train split", "shipped sample", "held-out and training images", "none")


@dataclass(frozen=True)
class EvalSet:
    dataset: str
    images: torch.Tensor | None  # uint8 [N, C, H, W]; None when nothing real is available
    labels: torch.Tensor | None  # int64 [N]
    origin: str  # one of ORIGINS
    why: str = ""  # when not the requested split: why not (the loader's message)

    def __len__(self) -> int:
        return 0 if self.labels is None else len(self.labels)

    @property
    def full_split(self) -> bool:
        return self.origin in ("test split", "train split")

    @property
    def label(self) -> str:
        """e.g. "test split (10000)", "shipped sample (1000)", "not measured: mnist not found in ..."."""
        return f"{self.origin} ({len(self)})" if self.images is not None else f"not measured: {self.why}"

    def take(self, n: int, seed: int | None = None) -> EvalSet:
        """The first n images, or n drawn with a fixed seed (a training subset for calibration)."""
        if self.images is None or n >= len(self):
            return self
        idx = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))[:n] if seed is not None \
            else slice(0, n)
        return EvalSet(self.dataset, self.images[idx], self.labels[idx], self.origin, self.why)

    def topped_up(self, spec: DatasetSpec, need: int, data: DataOptions | None = None) -> EvalSet:
        """A folder dataset whose held-out images are fewer than `need`: the training images added after them
        (parity between two runtimes needs real images, not unseen ones), up to `need`."""
        if spec.source is None or self.images is None or len(self) >= need:
            return self
        x, y = load_split(spec.name, "train", data)
        extra = min(need - len(self), len(y))
        return EvalSet(self.dataset, torch.cat([self.images, x[:extra]]), torch.cat([self.labels, y[:extra]]),
                       "held-out and training images", f"{len(self)} held out + {extra} training images")

    def normalized(self, spec: DatasetSpec) -> np.ndarray:
        return normalize(self.images, spec)


def normalize(images_u8: torch.Tensor, spec: DatasetSpec) -> np.ndarray:
    """uint8 [N, C, H, W] -> float32 normalized, the exported model's input contract."""
    mean = torch.tensor(spec.mean).view(1, -1, 1, 1)
    std = torch.tensor(spec.std).view(1, -1, 1, 1)
    return ((images_u8.float() / 255 - mean) / std).numpy().astype(np.float32)


def load_eval_set(spec: DatasetSpec, data: DataOptions | None = None, split: str = "test") -> EvalSet:
    """The split when the dataset is there, else the shipped test sample, else an empty set saying why.
    Files that are there but damaged raise (a gate must not quietly measure something else)."""
    try:
        x, y = load_split(spec.name, split, data)
        return EvalSet(spec.name, x, y, f"{split} split")
    except DatasetMissing as e:  # absent: the shipped sample, said so; damaged files stay an error
        why = str(e)
    sample = eval_sample(spec.name)
    if sample is None:
        return EvalSet(spec.name, None, None, "none", why)
    return EvalSet(spec.name, *sample, "shipped sample", why)
