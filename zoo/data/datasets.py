"""Read the real on-disk datasets through torchvision's own classes into uint8 tensors."""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from zoo.core.errors import ZooError
from zoo.core.io import cache_dir
from zoo.data.specs import DatasetSpec, get_dataset_spec

SPLITS = ("train", "test")


@dataclass(frozen=True)
class DataOptions:
    """Where datasets are read from; every stage that reads data takes one."""
    root: str | os.PathLike | None = None  # None: $ZOO_DATA, else ~/.cache/zoo/data
    download: bool = False  # fetch missing files (needs internet)
    verify: bool | None = None  # torchvision's md5 check of CIFAR files; None: on unless ZOO_VERIFY=0


def default_data_root() -> Path:
    """$ZOO_DATA, else the per-user cache folder ($XDG_CACHE_HOME/zoo/data or ~/.cache/zoo/data)."""
    if os.environ.get("ZOO_DATA"):
        return Path(os.environ["ZOO_DATA"]).expanduser()
    return cache_dir("data")


def resolve_root(root: str | os.PathLike | None) -> Path:
    return Path(root).expanduser() if root else default_data_root()


def verify_default() -> bool:
    """md5 checks of CIFAR files are on unless ZOO_VERIFY=0 (for known-good re-encodings)."""
    return os.environ.get("ZOO_VERIFY", "1").lower() not in ("0", "false", "no")


def tv_dataset_class(spec: DatasetSpec, verify: bool):
    import torchvision.datasets as tvd

    cls = getattr(tvd, spec.tv_class)
    if verify or not hasattr(cls, "_check_integrity"):
        return cls

    # Same reader; md5=None makes torchvision's check_integrity a file-presence check.
    Unverified = type(f"Unverified{cls.__name__}", (cls,), {
        "train_list": [[f, None] for f, _ in cls.train_list],
        "test_list": [[f, None] for f, _ in cls.test_list],
        "meta": {**cls.meta, "md5": None}})
    return Unverified


def _missing_message(spec: DatasetSpec, root: Path, verify: bool) -> str:
    where = root / spec.folder
    present = where.is_dir() and any(where.iterdir())
    if present and verify and spec.family == "cifar":
        return (f"{spec.name}: files in {where} fail torchvision's md5 check; re-download with --download, "
                f"or pass --no-verify (ZOO_VERIFY=0) if they are a known-good re-encoding")
    return (f"{spec.name} not found in {where}; get it with --download (needs internet), "
            f"or point --data-dir / ZOO_DATA at a folder that holds {spec.folder}/")


def load_split(name: str, split: str = "train", data: DataOptions | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """A whole split as (images uint8 [N, C, H, W], labels int64 [N]), decoded once per process."""
    if split not in SPLITS:
        raise ZooError(f"unknown split {split!r}; choose from {', '.join(SPLITS)}")
    data = data or DataOptions()
    spec = get_dataset_spec(name)
    verify = verify_default() if data.verify is None else data.verify
    return _load_cached(spec.name, split, str(resolve_root(data.root)), data.download, verify)


@functools.lru_cache(maxsize=4)
def _load_cached(name: str, split: str, root: str, download: bool, verify: bool):
    spec = get_dataset_spec(name)
    cls = tv_dataset_class(spec, verify)
    try:
        ds = cls(root, train=(split == "train"), download=download)
    except RuntimeError as e:
        if "not found" in str(e).lower() or "corrupted" in str(e).lower():
            raise ZooError(_missing_message(spec, Path(root), verify)) from None
        raise
    except OSError as e:  # no network while --download
        raise ZooError(f"{spec.name}: download failed ({e.__class__.__name__}: {e}); "
                       f"copy the files into {Path(root) / spec.folder} or set ZOO_DATA") from None
    data = torch.as_tensor(ds.data)
    images = data.unsqueeze(1) if data.ndim == 3 else data.permute(0, 3, 1, 2)  # -> N, C, H, W
    labels = torch.as_tensor(ds.targets, dtype=torch.int64)
    if tuple(images.shape[1:]) != spec.input_shape:
        raise ZooError(f"{spec.name}: images in {root} are {tuple(images.shape[1:])}, "
                       f"expected {spec.input_shape}")
    return images.contiguous(), labels


def dataset_available(name: str, data: DataOptions | None = None) -> bool:
    """True when both splits load from disk (never downloads)."""
    offline = DataOptions((data or DataOptions()).root, False, (data or DataOptions()).verify)
    try:
        for split in SPLITS:
            load_split(name, split, offline)
    except ZooError:
        return False
    return True
