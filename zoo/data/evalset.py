"""The one evaluation set every gate, calibration and bench row measures on: real images only.

With the dataset on disk, the requested split; without it, the sample of the test split that zoo ships
(1,000 stratified images), and the set says so. Never padded with generated images: a gate that
measured accuracy on noise would prove nothing. numpy arrays, no torch: `zoo bench --onnx` measures on it in
the light install (which reads the shipped sample: the datasets' readers need torchvision's file tables).
"""

from __future__ import annotations

import dataclasses
import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from zoo.core.bounded import KEPT_BYTES, npz_arrays
from zoo.core.errors import ZooError
from zoo.core.io import atomic_write_bytes
from zoo.core.shipped import eval_sample
from zoo.data.resolve import KEPT_SAMPLE
from zoo.data.options import DataOptions
from zoo.data.specs import DatasetMissing, DatasetSpec

ORIGINS = ("test split", "train split", "shipped sample", "held-out and training images", "kept sample", "none")
KEPT_IMAGES = 1000  # at most, and at most KEPT_BYTES (zoo.core.bounded) before compression


@dataclass(frozen=True)
class EvalSet:
    dataset: str
    images: np.ndarray | None  # uint8 [N, C, H, W]; None when nothing real is available
    labels: np.ndarray | None  # int64 [N]
    origin: str  # one of ORIGINS
    why: str = ""  # when not the requested split: why not (the loader's message)
    what: str = ""  # when not the requested split nor zoo's shipped sample: which images these are

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
        if seed is None:
            idx = slice(0, n)
        else:  # torch's draw, as calibration has always taken it (export needs torch)
            import torch

            idx = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))[:n].numpy()
        return dataclasses.replace(self, images=self.images[idx], labels=self.labels[idx])

    def topped_up(self, spec: DatasetSpec, need: int, data: DataOptions | None = None) -> EvalSet:
        """A folder dataset whose held-out images are fewer than `need`: the training images added after them
        (parity between two runtimes needs real images, not unseen ones), up to `need`."""
        if spec.source is None or self.origin != "test split" or len(self) >= need:
            return self
        x, y = _split(spec.name, "train", data)
        extra = min(need - len(self), len(y))
        return EvalSet(self.dataset, np.concatenate([self.images, x[:extra]]), np.concatenate([self.labels, y[:extra]]),
                       "held-out and training images", what=f"{len(self)} held out + {extra} training images")

    def normalized(self, spec: DatasetSpec) -> np.ndarray:
        return normalize(self.images, spec)


def normalize(images_u8, spec: DatasetSpec) -> np.ndarray:
    """uint8 [N, C, H, W] (numpy, or a CPU tensor) -> float32 normalized, the exported model's input contract."""
    mean = np.asarray(spec.mean, np.float32).reshape(1, -1, 1, 1)
    std = np.asarray(spec.std, np.float32).reshape(1, -1, 1, 1)
    return ((np.asarray(images_u8).astype(np.float32) / 255 - mean) / std).astype(np.float32)


def _split(name: str, split: str, data: DataOptions | None) -> tuple[np.ndarray, np.ndarray]:
    """A split of a dataset as numpy arrays (zoo.data.datasets reads it: with torch and torchvision installed)."""
    try:
        from zoo.data.datasets import load_split

        x, y = load_split(name, split, data)
    except ImportError as e:  # the light install: no torch, no torchvision
        raise DatasetMissing(f"reading {name}'s files needs the train extra ({e.name} is not installed: pip "
                             f"install 'zoo-classifiers[train]')") from None
    return x.numpy(), y.numpy()


def load_eval_set(spec: DatasetSpec, data: DataOptions | None = None, split: str = "test") -> EvalSet:
    """The split when the dataset is there, else the shipped test sample, else an empty set saying why.
    Files that are there but damaged raise (a gate must not quietly measure something else)."""
    try:
        x, y = _split(spec.name, split, data)
        return EvalSet(spec.name, x, y, f"{split} split")
    except DatasetMissing as e:  # absent: the shipped sample, said so; damaged files stay an error
        why = str(e)
    if spec.source is not None:  # a folder that is gone: the images its run folder keeps
        sample = kept_sample(spec)
        if sample is None:
            return EvalSet(spec.name, None, None, "none", why)
        x, y, held = sample
        return EvalSet(spec.name, x, y, "kept sample", why,
                       f"the {len(y)} images the run folder keeps ({held} held out, {len(y) - held} training)")
    sample = eval_sample(spec.name)
    if sample is None:
        return EvalSet(spec.name, None, None, "none", why)
    return EvalSet(spec.name, *sample, "shipped sample", why)


def keep_sample(out: str | os.PathLike, splits: tuple) -> Path:
    """A run trained on a folder of images keeps up to 1,000 of them (held-out first, then training images, as
    the gate tops up; at most 16 MB) in OUT/heldout.npz, so that it can still be exported, gated and predicted
    with after the folder is moved or deleted. Kept once: a resumed run finds it."""
    path = Path(out) / KEPT_SAMPLE
    if path.is_file():
        return path
    (train_x, train_y), (held_x, held_y) = splits
    n = max(1, min(KEPT_IMAGES, KEPT_BYTES // max(1, int(np.prod(held_x.shape[1:] or train_x.shape[1:])))))
    x = np.concatenate([np.asarray(held_x[:n]), np.asarray(train_x[:max(0, n - len(held_y))])]).astype(np.uint8)
    y = np.concatenate([np.asarray(held_y[:n]), np.asarray(train_y[:max(0, n - len(held_y))])]).astype(np.int64)
    buf = io.BytesIO()
    np.savez_compressed(buf, images=x, labels=y, held_out=np.int64(min(n, len(held_y))))
    atomic_write_bytes(path, buf.getvalue())
    return path


def kept_sample(spec: DatasetSpec) -> tuple[np.ndarray, np.ndarray, int] | None:
    """(uint8 [N, C, H, W], int64 [N], how many of them are held-out images) of the sample the run folder keeps,
    when it matches the spec; else None."""
    if not spec.source.kept:
        return None
    try:  # its arrays' sizes read from their headers first (a small file can claim gigabytes of zeros)
        z = npz_arrays(spec.source.kept, {"images": KEPT_BYTES, "labels": 8 * KEPT_IMAGES, "held_out": 8},
                       "kept sample")
        x, y, held = z["images"], z["labels"], int(z["held_out"])
    except (ZooError, TypeError, ValueError):  # damaged or over the limits: measured on nothing, not on something
        return None  # wrong
    if x.ndim != 4 or x.shape[1:] != (spec.channels, spec.size, spec.size) or len(x) != len(y) or \
            not ((0 <= y) & (y < spec.num_classes)).all():
        return None
    return x, y.astype(np.int64), held
