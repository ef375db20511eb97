"""Write small datasets in the real on-disk formats (IDX for the MNISTs, pickled batches for the CIFARs).

For tests and offline smoke runs: the files are read back through torchvision's own dataset classes.
Images are class-dependent patterns plus noise, so a model can learn them in a few steps.
"""

from __future__ import annotations

import pickle
import struct
from pathlib import Path

import numpy as np

from zoo.data.resolve import get_dataset_spec


def _images(n: int, c: int, size: int, num_classes: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    labels = rng.integers(0, num_classes, n)
    # One fixed random template per class (seeded), plus per-image noise: learnable, not trivial.
    # Blocky templates (4x4 cells upsampled) survive the crop/flip augmentations.
    coarse = np.random.default_rng(1234).integers(0, 256, (num_classes, c, 4, 4))
    templates = coarse.repeat(-(-size // 4), axis=2).repeat(-(-size // 4), axis=3)[:, :, :size, :size]
    noise = rng.integers(-60, 61, (n, c, size, size))
    return np.clip(templates[labels] + noise, 0, 255).astype(np.uint8), labels.astype(np.int64)


def _write_idx(path: Path, array: np.ndarray) -> None:
    # IDX: magic (0, 0, dtype 0x08 = ubyte, ndim), then big-endian int32 dims, then the bytes.
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def write_fake_dataset(name: str, root: str | Path, n_train: int = 256, n_test: int = 128, seed: int = 0) -> Path:
    """Create `name` under `root` in torchvision's layout; returns root."""
    spec = get_dataset_spec(name)
    root = Path(root)
    rng = np.random.default_rng(seed)
    splits = {"train": _images(n_train, spec.channels, spec.size, spec.num_classes, rng),
              "test": _images(n_test, spec.channels, spec.size, spec.num_classes, rng)}
    if spec.family == "mnist":
        raw = root / spec.folder / "raw"
        raw.mkdir(parents=True, exist_ok=True)
        for split, prefix in (("train", "train"), ("test", "t10k")):
            x, y = splits[split]
            _write_idx(raw / f"{prefix}-images-idx3-ubyte", x[:, 0])
            _write_idx(raw / f"{prefix}-labels-idx1-ubyte", y)
        return root
    folder = root / spec.folder
    folder.mkdir(parents=True, exist_ok=True)
    label_key = "labels" if spec.name == "cifar10" else "fine_labels"

    def dump(fname: str, x: np.ndarray, y: np.ndarray) -> None:
        # CIFAR batches: 'data' is N x 3072 uint8 (R plane, G plane, B plane), labels a list of ints.
        batch = {"batch_label": fname, "data": x.reshape(len(x), -1), label_key: y.tolist(),
                 "filenames": [f"{i}.png" for i in range(len(x))]}
        with open(folder / fname, "wb") as f:
            pickle.dump(batch, f)

    x, y = splits["train"]
    if spec.name == "cifar10":
        for i, part in enumerate(np.array_split(np.arange(len(x)), 5), start=1):
            dump(f"data_batch_{i}", x[part], y[part])
        dump("test_batch", *splits["test"])
        meta = {"label_names": list(spec.class_names)}
        meta_name = "batches.meta"
    else:
        dump("train", x, y)
        dump("test", *splits["test"])
        meta = {"fine_label_names": list(spec.class_names), "coarse_label_names": [f"c{i}" for i in range(20)]}
        meta_name = "meta"
    with open(folder / meta_name, "wb") as f:
        pickle.dump(meta, f)
    return root
