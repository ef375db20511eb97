"""The shipped weights: cards match files and architectures, loading verifies hashes, the wheel carries them."""

import json
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest
import torch

import zoo
from zoo.core.errors import ZooError
from zoo.models import PAPER_MATRIX
from zoo.core.shipped import eval_sample, manifest, sha256_file, weights_dir

REPO = Path(__file__).resolve().parents[1]
CARDS = list(manifest().values())


def test_manifest_is_well_formed():
    data = json.loads((REPO / "weights" / "manifest.json").read_text())
    assert data["format"] == 1
    names = [f"{c['arch']}.{c['dataset']}" for c in data["weights"]]
    assert len(names) == len(set(names))
    total = sum((REPO / "weights" / c["file"]).stat().st_size for c in data["weights"])
    assert total <= 99e6  # the wheel budget: under the package index's 100 MB file limit


@pytest.mark.parametrize("card", CARDS, ids=[c.name for c in CARDS])
def test_card_matches_file_and_architecture(card):
    path = weights_dir() / card.file
    assert sha256_file(path) == card.sha256 and card.file.startswith(f"{card.arch}.{card.dataset}-{card.sha256[:8]}")
    assert (card.arch, card.dataset) in PAPER_MATRIX or card.arch == "zoonet"  # the study's pairs, and zoo's own
    model = zoo.create_model(card.arch, card.dataset, pretrained=True)
    assert sum(p.numel() for p in model.parameters()) == card.num_params
    assert card.metrics["top1"] > 0 and "onnxruntime" in card.metrics["eval_set"]
    assert {"epochs", "batch_size", "lr"} <= set(card.recipe)


# ZooNet runs six passes per image (its flip-shift TTA): the end-to-end suite measures its cards
@pytest.mark.parametrize("card", [pytest.param(c, id=c.name, marks=pytest.mark.e2e if c.arch == "zoonet" else ())
                                  for c in CARDS])
def test_pretrained_accuracy_on_shipped_sample(card):
    """The shipped sample is part of the test split: accuracy on every other image of it (500, every class) is
    close to the card's."""
    x, y = (t[::2] for t in eval_sample(card.dataset))
    spec = zoo.get_dataset_spec(card.dataset)
    from zoo.data import normalize
    model = zoo.load(card.arch, card.dataset)
    with torch.no_grad():  # in batches of 100: a batch of 500 took ZooNet's activations past a gigabyte
        pred = torch.cat([model(torch.from_numpy(normalize(x[i:i + 100], spec))).argmax(1)
                          for i in range(0, len(x), 100)])
    acc = 100 * (pred == torch.from_numpy(y)).float().mean().item()
    assert abs(acc - card.metrics["top1"]) < 5


def test_eval_samples_are_stratified_and_small():
    total = 0
    for name, per_class in (("mnist", 100), ("cifar10", 100), ("cifar100", 10)):
        x, y = eval_sample(name)
        assert x.dtype == np.uint8 and y.dtype == np.int64 and len(y) == 1000
        assert np.bincount(y).tolist() == [per_class] * zoo.get_dataset_spec(name).num_classes
        total += (weights_dir() / f"eval_{name}.npz").stat().st_size
    assert total <= 8e6


def test_missing_weights_one_line():
    with pytest.raises(ZooError, match="no pretrained weights for resnet20.kmnist.*zoo train"):
        zoo.create_model("resnet20", "kmnist", pretrained=True)
    with pytest.raises(ZooError, match="dataset not offline"):
        zoo.create_model("mlp", "kmnist", pretrained=True)


def test_hash_mismatch_is_refused(tmp_path, monkeypatch):
    if not CARDS:
        pytest.skip("no shipped weights yet")
    import shutil
    import zoo.core.shipped as w
    card = CARDS[0]
    shutil.copytree(weights_dir(), tmp_path / "w", ignore=shutil.ignore_patterns("*.npz"))
    f = tmp_path / "w" / card.file
    data = bytearray(f.read_bytes())
    data[-1] ^= 0xFF
    f.write_bytes(bytes(data))
    monkeypatch.setattr(w, "weights_dir", lambda: tmp_path / "w")
    with pytest.raises(ZooError, match="sha256 .* manifest says .* corrupt"):
        zoo.create_model(card.arch, card.dataset, pretrained=True)


@pytest.mark.e2e
def test_wheel_installs_and_loads_weights(tmp_path):
    """Build the wheel, install it into a fresh venv (dependencies reused, no network), load a weight."""
    if not CARDS:
        pytest.skip("no shipped weights yet")
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist),
                    str(REPO)], check=True, capture_output=True)
    wheel = next(dist.glob("zoo_classifiers-*.whl"))
    import zipfile
    names = zipfile.ZipFile(wheel).namelist()
    assert "zoo/_weights/manifest.json" in names and all(f"zoo/_weights/{c.file}" in names for c in CARDS)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    Path(site, "reuse_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")  # torch etc. from here
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], check=True,
                   capture_output=True)
    card = CARDS[0]
    code = (f"import json, torch, zoo; from zoo.core.shipped import weights_dir, sha256_file, eval_sample\n"
            f"from zoo.data import normalize\n"
            f"m = zoo.load('{card.arch}', '{card.dataset}')\n"
            f"x, y = eval_sample('{card.dataset}')\n"
            f"p = m(torch.from_numpy(normalize(x[:8], zoo.get_dataset_spec('{card.dataset}')))).argmax(1).tolist()\n"
            f"sha = sha256_file(weights_dir() / '{card.file}')\n"
            f"print(json.dumps({{'file': zoo.__file__, 'sha': sha, 'pred': p}}))")
    r = subprocess.run([str(py), "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["file"].startswith(str(venv)) and out["sha"] == card.sha256
    x, _ = eval_sample(card.dataset)
    from zoo.data import normalize
    ref = zoo.load(card.arch, card.dataset)(torch.from_numpy(normalize(x[:8], zoo.get_dataset_spec(card.dataset))))
    assert out["pred"] == ref.argmax(1).tolist()
