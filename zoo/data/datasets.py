"""Read the real on-disk datasets through torchvision's own classes into uint8 tensors."""

from __future__ import annotations

import functools
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import torch

from zoo.core.errors import ZooError, has_flag
from zoo.core.io import cache_dir
from zoo.data.options import DataOptions
from zoo.data.resolve import get_dataset_spec
from zoo.data.specs import DatasetMissing, DatasetSpec  # noqa: F401  (zoo.data.datasets' name for it)

SPLITS = ("train", "test")


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


def tv_dataset_class(spec: DatasetSpec, verify: bool = True):
    """torchvision's class for the dataset: it knows the file names, md5s and download addresses. zoo uses it
    to download; reading is zoo's own (read_mnist_split, read_cifar_split), which never runs pickled code."""
    import torchvision.datasets as tvd

    return getattr(tvd, spec.tv_class)


def _fetch() -> str:
    """How to download a dataset, in the words of the command running (only zoo train has --download)."""
    return "--download" if has_flag("--download") else "zoo train MODEL DATASET --download"


def _missing(spec: DatasetSpec, root: Path) -> DatasetMissing:
    where = "point --data-dir / ZOO_DATA" if has_flag("--data-dir") else "point ZOO_DATA"
    return DatasetMissing(f"{spec.name} not found in {root / spec.folder}; get it with {_fetch()} (needs internet), "
                          f"or {where} at a folder that holds {spec.folder}/")


def _damaged(path: Path, why: str) -> ZooError:
    return ZooError(f"{path} is damaged ({why}); re-copy it, or delete it and fetch it again with {_fetch()}")


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """An IDX file (MNIST's format) as uint8, after checking its magic, its dimensions and its length."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise _damaged(path, "missing") from None
    head = 4 + 4 * ndim
    if len(raw) < head or raw[:4] != bytes([0, 0, 0x08, ndim]):
        raise _damaged(path, f"not an IDX file of {ndim}-d unsigned bytes: wrong magic {raw[:4].hex() or 'none'}")
    dims = struct.unpack(f">{ndim}I", raw[4:head])
    if len(raw) != head + int(np.prod(dims)):
        raise _damaged(path, f"{len(raw)} bytes where its header {dims} says {head + int(np.prod(dims))}")
    return np.frombuffer(raw, np.uint8, offset=head).reshape(dims)


def read_mnist_split(spec: DatasetSpec, root: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    raw = root / spec.folder / "raw"
    prefix = "train" if split == "train" else "t10k"
    images_path, labels_path = raw / f"{prefix}-images-idx3-ubyte", raw / f"{prefix}-labels-idx1-ubyte"
    if not (images_path.is_file() and labels_path.is_file()):
        raise _missing(spec, root)
    images, labels = read_idx(images_path, 3), read_idx(labels_path, 1)
    if len(images) != len(labels):
        raise _damaged(labels_path, f"{len(labels)} labels for {len(images)} images in {images_path.name}")
    return images[:, None], labels


class _CifarUnpickler(pickle.Unpickler):
    """Admits only what CIFAR's python batches hold (dicts, lists, str/bytes, ints, numpy uint8 arrays):
    any other global is refused, so a crafted file cannot run code."""

    ALLOWED = {("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "_reconstruct"),
               ("numpy._core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "scalar"),
               ("numpy._core.multiarray", "scalar"), ("_codecs", "encode")}

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"it holds a {module}.{name}, which a CIFAR batch never holds")
        return super().find_class(module, name)


def _read_cifar_batch(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            batch = _CifarUnpickler(f, encoding="latin1").load()
    except FileNotFoundError:
        raise _damaged(path, "missing") from None
    except pickle.UnpicklingError as e:
        raise _damaged(path, f"refused to unpickle: {e}") from None
    except Exception as e:  # truncated or random bytes: pickle raises EOFError, ValueError, KeyError, ...
        raise _damaged(path, f"not a CIFAR batch: {type(e).__name__}") from None
    if not isinstance(batch, dict):
        raise _damaged(path, "not a CIFAR batch: no dict at the top")
    return batch


def read_cifar_split(spec: DatasetSpec, root: Path, split: str, verify: bool) -> tuple[np.ndarray, np.ndarray]:
    from torchvision.datasets.utils import check_integrity

    cls = tv_dataset_class(spec)
    folder = root / spec.folder
    files = cls.train_list if split == "train" else cls.test_list
    if not all((folder / f).is_file() for f, _ in files):
        raise _missing(spec, root)
    if verify and not all(check_integrity(str(folder / f), md5) for f, md5 in files):
        raise ZooError(f"{spec.name}: files in {folder} fail torchvision's md5 check; re-download with {_fetch()}, "
                       f"or {'pass --no-verify (ZOO_VERIFY=0)' if has_flag('--no-verify') else 'set ZOO_VERIFY=0'} "
                       f"if they are a known-good re-encoding")
    images, labels = [], []
    for f, _ in files:
        batch = _read_cifar_batch(folder / f)
        data, y = batch.get("data"), batch.get("labels", batch.get("fine_labels"))
        if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072 \
                or y is None or len(y) != len(data):
            raise _damaged(folder / f, "its data is not N x 3072 uint8 pixels with N labels")
        images.append(data.reshape(-1, 3, 32, 32))
        labels.append(np.asarray(y, dtype=np.int64))
    return np.concatenate(images), np.concatenate(labels)


def load_split(name: str, split: str = "train", data: DataOptions | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """A whole split as (images uint8 [N, C, H, W], labels int64 [N]), decoded once per process."""
    if split not in SPLITS:
        raise ZooError(f"unknown split {split!r}; choose from {', '.join(SPLITS)}")
    data = data or DataOptions()
    spec = get_dataset_spec(name)
    if spec.source is not None:  # a folder of the user's images: a view on its memory-mapped cache
        from zoo.data.folder import folder_split

        images, labels = folder_split(spec, split)
        return torch.from_numpy(images), torch.from_numpy(labels)
    verify = verify_default() if data.verify is None else data.verify
    return _load_cached(spec.name, split, str(resolve_root(data.root)), data.download, verify)


def _download(spec: DatasetSpec, root: Path, split: str) -> None:
    """torchvision's own download (official files, md5-checked by torchvision before it reads them)."""
    try:
        tv_dataset_class(spec)(str(root), train=(split == "train"), download=True)
    except (OSError, RuntimeError) as e:  # no network, or a failed check after download
        raise ZooError(f"{spec.name}: download failed ({e.__class__.__name__}: {e}); "
                       f"copy the files into {root / spec.folder} or set ZOO_DATA") from None


@functools.lru_cache(maxsize=4)
def _load_cached(name: str, split: str, root: str, download: bool, verify: bool):
    spec, root = get_dataset_spec(name), Path(root)
    if download:
        _download(spec, root, split)
    if spec.family == "mnist":
        images, labels = read_mnist_split(spec, root, split)
    else:
        images, labels = read_cifar_split(spec, root, split, verify)
    if tuple(images.shape[1:]) != spec.input_shape:
        raise ZooError(f"{spec.name}: images in {root} are {tuple(images.shape[1:])}, expected {spec.input_shape}; "
                       f"re-copy them, or fetch them again with {_fetch()}")
    if len(labels) and not 0 <= labels.min() <= labels.max() < spec.num_classes:
        raise ZooError(f"{spec.name}: labels in {root / spec.folder} fall outside 0..{spec.num_classes - 1}; "
                       f"the files are damaged: re-copy them, or fetch them again with {_fetch()}")
    return torch.from_numpy(np.array(images)), torch.from_numpy(labels.astype(np.int64))  # np.array: a writable copy


def dataset_available(name: str, data: DataOptions | None = None) -> bool:
    """True when both splits load from disk (never downloads)."""
    offline = DataOptions((data or DataOptions()).root, False, (data or DataOptions()).verify)
    try:
        for split in SPLITS:
            load_split(name, split, offline)
    except ZooError:
        return False
    return True
