"""Your own images: decoding a folder into zoo's cache against torchvision's ImageFolder + DataLoader, the
second run's start, and fine-tuning cnn from the MNIST weights on scikit-learn's real digits.

    ZOO_DATA=... python -m pytest benchmarks/test_folder.py -n 0 --benchmark-only -s

The folder is MNIST's 60,000 training images written as PNG class folders (real data; generated images
when $ZOO_DATA has no MNIST, said in the output). Each figure is one pass from a cold zoo cache; the
operating system's file cache is warmed first (a read of every file) so that neither side pays for the disk.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def _write_png_folder(root: Path, images: np.ndarray, labels: np.ndarray) -> None:
    for i, (img, y) in enumerate(zip(images, labels)):
        d = root / str(int(y))
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(d / f"{i:05d}.png")


@pytest.fixture(scope="module")
def png_folder(tmp_path_factory, data_root):
    from zoo.data import DataOptions, load_split

    root, kind = data_root
    x, y = load_split("mnist", "train", DataOptions(root))
    folder = tmp_path_factory.mktemp("png") / "mnist_png"
    n = 60_000 if len(y) >= 60_000 else len(y)
    _write_png_folder(folder, x[:n, 0].numpy(), y[:n].numpy())
    for f in folder.rglob("*.png"):  # warm the page cache for both sides
        f.read_bytes()
    return folder, n, kind


def _cold_decode(folder: Path, cache: Path) -> dict:
    """zoo's open of the folder in a fresh process (its own cache), as `zoo train DIR` does it, timed from the
    imports on (the torchvision side is timed from imported modules too)."""
    code = ("import json, time, sys; from zoo.data.folder import open_folder; t = time.perf_counter(); "
            "open_folder(sys.argv[1], log=lambda *a: None); print(json.dumps(time.perf_counter() - t))")
    env = {**os.environ, "XDG_CACHE_HOME": str(cache)}
    out = subprocess.run([sys.executable, "-c", code, str(folder)], env=env, capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout)


def _torchvision_pass(folder: Path) -> float:
    import torch
    import torchvision
    from torchvision import transforms as T

    t = time.perf_counter()
    ds = torchvision.datasets.ImageFolder(str(folder), transform=T.ToTensor())
    n = sum(len(b[1]) for b in torch.utils.data.DataLoader(ds, batch_size=256, num_workers=2))
    return n / (time.perf_counter() - t)


def test_decoding_a_folder_beats_imagefolder_and_the_second_start_is_fast(benchmark, png_folder, tmp_path):
    folder, n, kind = png_folder
    tv = _torchvision_pass(folder)
    zoo_s = _cold_decode(folder, tmp_path / "cache")
    hit_s = _cold_decode(folder, tmp_path / "cache")  # the same cache: mapped, not decoded
    benchmark.pedantic(lambda: None, rounds=1)
    zoo_rate = n / zoo_s
    print(f"\n{n:,} {kind} PNG images: zoo decode into the cache {zoo_rate:,.0f} img/s ({zoo_s:.2f} s), "
          f"torchvision ImageFolder + DataLoader(num_workers=2) {tv:,.0f} img/s: {zoo_rate / tv:.2f}x; "
          f"second run's start {hit_s:.2f} s")
    assert zoo_rate >= 4.0 * tv  # the target; measured 3.99-5.62x over five runs (docs/measurements.md)
    assert hit_s <= 2.0


def test_fine_tuning_cnn_on_the_digits(benchmark, tmp_path):
    datasets = pytest.importorskip("sklearn.datasets")
    d = datasets.load_digits()
    root = tmp_path / "digits"
    _write_png_folder(root, (d.images * 255 / 16).round().astype(np.uint8), d.target)
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "zoo.cli", "train", "cnn", str(root), "--init", "pretrained:mnist",
           "--recipe", "finetune", "--epochs", "5", "--out", str(out)]
    t = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, env={**os.environ, "XDG_CACHE_HOME": str(tmp_path)})
    wall = time.perf_counter() - t
    benchmark.pedantic(lambda: None, rounds=1)
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    print(f"\ncnn from the MNIST weights on 1,797 real digits: validation accuracy per epoch "
          f"{[round(m['test_acc'], 2) for m in lines]}, {wall:.1f} s wall")
    assert max(m["test_acc"] for m in lines) >= 95.0
