"""In-memory batch loader: uint8 split in RAM, augmentation and normalization as batched tensor ops.

Replaces torchvision's per-sample PIL transforms in the hot loop (docs/measurements.md, Loader, gives the
measured speed-up).
Deterministic: the shuffle and the augmentation of epoch e depend only on (seed, e), so a resumed run
sees the same batches as an uninterrupted one. With world_size > 1 each rank reads its own shard.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from zoo.data.datasets import load_split
from zoo.data.options import DataOptions
from zoo.data.resolve import get_dataset_spec

AUGMENTATIONS = ("crop", "flip", "rotate", "translate", "altflip")
TRANSLATE = 2  # px of `translate`'s shift


def augment_batch(x: torch.Tensor, ops: tuple[str, ...], g: torch.Generator, *, pad: int = 4,
                  degrees: float = 10.0, flipped: torch.Tensor | None = None) -> torch.Tensor:
    """Random crop (zero padding `pad` px), horizontal flip and rotation (±degrees) per image; `translate`
    shifts by up to TRANSLATE px with the border mirrored; `altflip` mirrors the images `flipped` (bool [B])
    marks, which the loader alternates from epoch to epoch (Jordan 2024: every image is seen both ways every two
    epochs, where a coin flip repeats one side for a quarter of them).

    All are one affine warp per image (one grid_sample over the batch): integer shifts and flips land exactly
    on pixel centres, so without rotation the output is an exact crop/flip.
    x: float [B, C, H, W] on [0, 1].
    """
    unknown = set(ops) - set(AUGMENTATIONS)
    if unknown:
        raise ValueError(f"unknown augmentation {sorted(unknown)}; choose from {AUGMENTATIONS}")
    if not ops:
        return x
    b, _, h, w = x.shape
    sx = torch.ones(b)
    angle = torch.zeros(b)
    tx = torch.zeros(b)
    ty = torch.zeros(b)
    if "flip" in ops:
        sx = torch.where(torch.rand(b, generator=g) < 0.5, -1.0, 1.0)
    if "altflip" in ops and flipped is not None:
        sx = torch.where(flipped, -1.0, 1.0)
    if "rotate" in ops:
        angle = (torch.rand(b, generator=g) * 2 - 1) * math.radians(degrees)
    shift = pad if "crop" in ops else TRANSLATE if "translate" in ops else 0
    if shift:  # shift by an integer number of pixels in [-shift, shift]; 2/W per pixel in grid units
        tx = torch.randint(-shift, shift + 1, (b,), generator=g).float() * (2.0 / w)
        ty = torch.randint(-shift, shift + 1, (b,), generator=g).float() * (2.0 / h)
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.stack([torch.stack([cos * sx, -sin, tx], 1), torch.stack([sin * sx, cos, ty], 1)], 1)
    grid = F.affine_grid(theta.to(x.device, x.dtype), list(x.shape), align_corners=False)
    mode = "bilinear" if "rotate" in ops else "nearest"
    border = "reflection" if "translate" in ops and "crop" not in ops else "zeros"
    return F.grid_sample(x, grid, mode=mode, padding_mode=border, align_corners=False)


class BatchLoader:
    """Iterate (images float [B, C, H, W] normalized, labels int64 [B]) over an in-memory split."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, batch_size: int, *,
                 mean: tuple[float, ...], std: tuple[float, ...], shuffle: bool = False,
                 augment: tuple[str, ...] = (), seed: int = 0, drop_last: bool = False,
                 rank: int = 0, world_size: int = 1, device: str | torch.device = "cpu",
                 channels_last: bool = False):
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise ValueError(f"images must be uint8 [N, C, H, W], got {images.dtype} {tuple(images.shape)}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.images, self.labels = images, labels
        self.batch_size, self.shuffle, self.augment = batch_size, shuffle, tuple(augment)
        self.seed, self.drop_last, self.rank, self.world_size = seed, drop_last, rank, world_size
        self.device = torch.device(device)
        self.channels_last = channels_last
        c = images.shape[1]
        self.mean = torch.tensor(mean, dtype=torch.float32, device=self.device).view(1, c, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32, device=self.device).view(1, c, 1, 1)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _indices(self) -> tuple[torch.Tensor, torch.Generator]:
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        n = len(self.labels)
        idx = torch.randperm(n, generator=g) if self.shuffle else torch.arange(n)
        if self.world_size > 1:
            if self.shuffle or self.drop_last:  # equal shards, so every rank takes the same number of steps
                idx = idx[: (n // self.world_size) * self.world_size]
            idx = idx[self.rank:: self.world_size]  # evaluation: every image on exactly one rank
        return idx, g

    @property
    def num_samples(self) -> int:
        """Images this rank sees per epoch."""
        n, w = len(self.labels), self.world_size
        per_rank = n // w if (w > 1 and (self.shuffle or self.drop_last)) else len(range(self.rank, n, w))
        return (per_rank // self.batch_size) * self.batch_size if self.drop_last else per_rank

    def __len__(self) -> int:
        return math.ceil(self.num_samples / self.batch_size)

    def __iter__(self):
        return self.iterate()

    def _flipped(self, sel: torch.Tensor) -> torch.Tensor:
        """`altflip`'s mirror per image: a coin per image drawn once from the seed, inverted every other epoch."""
        if getattr(self, "_flip_coins", None) is None:
            g = torch.Generator().manual_seed(self.seed * 100_003 + 99_991)
            self._flip_coins = torch.rand(len(self.labels), generator=g) < 0.5
        return self._flip_coins[sel] ^ bool(self.epoch % 2)

    def iterate(self, start_step: int = 0, generator_state: torch.Tensor | None = None):
        """Batches from `start_step` on; with the generator state saved at that step, the rest of the
        epoch is bit-identical to an uninterrupted one (used to resume mid-epoch)."""
        idx, g = self._indices()
        if generator_state is not None:
            g.set_state(generator_state)
        self.generator = g  # its state after a batch is produced is what a mid-epoch checkpoint saves
        for i in range(start_step, len(self)):
            sel = idx[i * self.batch_size:(i + 1) * self.batch_size]
            x = self.images[sel].to(self.device, non_blocking=True).float().div_(255)
            x = augment_batch(x, self.augment, g, flipped=self._flipped(sel) if "altflip" in self.augment else None)
            x = (x - self.mean) / self.std
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, self.labels[sel].to(self.device, non_blocking=True)


def make_loader(dataset: str, split: str, batch_size: int, *, data: DataOptions | None = None,
                train: bool | None = None, augment: tuple[str, ...] | None = None, **kwargs) -> BatchLoader:
    """A BatchLoader for a registered dataset; train=True shuffles and applies the spec's augmentations."""
    spec = get_dataset_spec(dataset)
    train = (split == "train") if train is None else train
    images, labels = load_split(dataset, split, data)
    aug = (spec.augment if train else ()) if augment is None else augment
    return BatchLoader(images, labels, batch_size, mean=spec.mean, std=spec.std, shuffle=train,
                       augment=aug, **kwargs)
