"""Fine-tuning on classes the weights never saw: folders of CIFAR-100 classes (which CIFAR-10 lacks, all 100),
K training images per class, fine-tuned from CIFAR-10 weights, measured on the CIFAR-100 test images of those
classes (100 each), which no run sees. Beside each run: a scikit-learn linear probe of the same frozen start
features on the same training images.

    python benchmarks/tools/transfer_table.py --data $ZOO_DATA --archs resnet20,zoonet --subsets 3 --shots 100 \\
        --variant default= --variant old=recipe:finetune_v1

A variant is NAME=OVERRIDES: comma-separated FIELD:VALUE recipe overrides (zoo train --set), `recipe:NAME` for
another recipe, `init:X` for another start (default pretrained:cifar10; `none` trains from scratch); `+` joins
a tuple's items (`augment:crop+flip+rotate`).
Each folder has train/ (K per class, CIFAR-100 training images) and val/ (100 per class, other CIFAR-100
training images: what zoo picks its best epoch on); the figure is top-1 on the CIFAR-100 test split.
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image


DATASET = "cifar100"  # where the folders' classes come from (--dataset)


def cifar100(root: Path, split: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(images [N, 32, 32, 3] uint8, labels, class names) of the real CIFAR-100 (or CIFAR-10) split."""
    if DATASET == "cifar10":
        folder = root / "cifar-10-batches-py"
        files = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
        parts = []
        for name in files:
            with open(folder / name, "rb") as f:
                parts.append(pickle.load(f, encoding="latin1"))
        with open(folder / "batches.meta", "rb") as f:
            names = pickle.load(f, encoding="latin1")["label_names"]
        d = {"data": np.concatenate([p["data"] for p in parts]), "fine_labels": sum((p["labels"] for p in parts), [])}
    else:
        folder = root / "cifar-100-python"
        with open(folder / split, "rb") as f:
            d = pickle.load(f, encoding="latin1")  # the real CIFAR-100 files, as torchvision reads them
        with open(folder / "meta", "rb") as f:
            names = pickle.load(f, encoding="latin1")["fine_label_names"]
    x = np.asarray(d["data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return x, np.asarray(d["fine_labels"]), names


@torch.no_grad()
def untouched(arch: str, source: str, folder: Path, x: np.ndarray, y: np.ndarray) -> float:
    """Top-1 of `source`'s shipped model, as shipped (its test-time augmentation), restricted to the folder's
    classes (their logits only): what a fine-tune of known classes must not fall below."""
    from zoo.data import get_dataset_spec
    from zoo.models import create_model

    spec = get_dataset_spec(source)
    classes = sorted(d.name for d in (folder / "train").iterdir())
    rows = [spec.class_names.index(c) for c in classes]
    model = create_model(arch, source, pretrained=True).eval()
    logits = torch.cat([model(_tensor(x[i:i + 500], spec)) for i in range(0, len(x), 500)])[:, rows]
    return float((logits.argmax(1).numpy() == y).mean() * 100)


def make_folder(root: Path, out: Path, classes: list[int], shots: int, seed: int) -> None:
    """out/train/CLASS/*.png (shots each) and out/val/CLASS/*.png (100 each), disjoint, from the training split."""
    if (out / "done").is_file():
        return
    x, y, names = cifar100(root, "train")
    rng = np.random.default_rng(seed)
    for c in classes:
        idx = rng.permutation(np.flatnonzero(y == c))
        for split, take in (("train", idx[:shots]), ("val", idx[shots:shots + 100])):
            d = out / split / names[c]
            d.mkdir(parents=True, exist_ok=True)
            for i in take:
                Image.fromarray(x[i]).save(d / f"{i}.png")
    (out / "done").write_text("")


def test_images(root: Path, classes: list[int]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    x, y, names = cifar100(root, "test")
    keep = np.isin(y, classes)
    order = sorted(names[c] for c in classes)  # a folder's classes sort by name
    return x[keep], np.asarray([order.index(names[c]) for c in y[keep]]), order


def _tensor(x: np.ndarray, spec) -> torch.Tensor:
    t = torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255
    return (t - torch.tensor(spec.mean).view(1, -1, 1, 1)) / torch.tensor(spec.std).view(1, -1, 1, 1)


@torch.no_grad()
def evaluate_run(run: Path, x: np.ndarray, y: np.ndarray) -> float:
    """Top-1 of the run's kept weights (best.safetensors) with its recipe's test-time augmentation, in torch."""
    from safetensors.torch import load_file

    from zoo.data import get_dataset_spec
    from zoo.models import create_model, with_tta
    from zoo.train import read_config

    arch, ds, recipe, _ = read_config(run)
    spec = get_dataset_spec(ds)
    model = create_model(arch, spec)
    model.load_state_dict(load_file(run / "best.safetensors"))
    model = with_tta(model, recipe.get("tta")).eval()
    logits = torch.cat([model(_tensor(x[i:i + 500], spec)) for i in range(0, len(x), 500)])
    return float((logits.argmax(1).numpy() == y).mean() * 100)


@torch.no_grad()
def probe(arch: str, source: str, folder: Path, x: np.ndarray, y: np.ndarray) -> float:
    """scikit-learn's logistic regression on the frozen features (the classifier's input) of `source`'s shipped
    weights, normalized as zoo normalizes a folder fine-tuned from them."""
    from sklearn.linear_model import LogisticRegression

    from zoo.models import classifier, create_model
    from zoo.train import training_spec

    spec = training_spec(arch, str(folder), f"pretrained:{source}")
    model = create_model(arch, source, pretrained=True).eval()
    model = getattr(model, "net", model)  # the plain network inside the card's test-time augmentation
    feats = []
    hook = classifier(model).register_forward_hook(lambda m, i, o: feats.append(i[0].flatten(1).clone()))

    def features(images):
        feats.clear()
        for i in range(0, len(images), 500):
            model(_tensor(images[i:i + 500], spec))
        return torch.cat(feats).numpy()

    train_x = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in sorted((folder / "train").rglob("*.png"))])
    classes = sorted(d.name for d in (folder / "train").iterdir())
    train_y = np.asarray([classes.index(p.parent.name) for p in sorted((folder / "train").rglob("*.png"))])
    f_train, f_test = features(train_x), features(x)
    hook.remove()
    clf = LogisticRegression(max_iter=2000, C=1.0).fit(f_train, train_y)
    return float((clf.predict(f_test) == y).mean() * 100)


def parse_variant(text: str) -> tuple[str, dict]:
    name, _, rest = text.partition("=")
    fields = dict(kv.split(":", 1) for kv in rest.split(",") if kv)
    return name, fields


def _value(text: str):
    if "+" in text:  # a tuple field (augment:crop+flip+rotate): commas separate the overrides
        return text.split("+")
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def run_variant(arch: str, folder: Path, out: Path, fields: dict) -> dict:
    from zoo.train import get_recipe, train, training_spec

    fields = dict(fields)
    init = fields.pop("init", "pretrained:cifar10")
    init = None if init == "none" else init
    recipe = None
    overrides = {k: _value(v) for k, v in fields.items()}
    if overrides:
        spec = training_spec(arch, str(folder), init)
        from zoo.train.recipes import default_recipe
        name = overrides.pop("recipe", None) or default_recipe(spec, init)[0]
        overrides = {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()}
        recipe = get_recipe(name, spec, arch, **overrides)
    t0 = time.perf_counter()
    summary = train(arch, str(folder), recipe, out=out, init=init, progress=False)
    return {"wall_s": time.perf_counter() - t0, "zoo_best": summary["best_test_acc"],
            "epochs": summary["epochs"], "init_acc": summary.get("init_test_acc")}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="a folder holding cifar-100-python/")
    ap.add_argument("--work", type=Path, default=Path("transfer-work"))  # resumable: rows already there are kept
    ap.add_argument("--archs", default="resnet20")
    ap.add_argument("--subsets", type=int, default=3)
    ap.add_argument("--classes", type=int, default=5)
    ap.add_argument("--shots", default="100")
    ap.add_argument("--source", default="cifar10", help="the shipped weights the probe measures")
    ap.add_argument("--variant", action="append", default=[], help="NAME=FIELD:VALUE,...")
    ap.add_argument("--no-probe", action="store_true")
    ap.add_argument("--dataset", choices=("cifar100", "cifar10"), default="cifar100",
                    help="cifar10: folders of classes the weights know (with --source cifar10), measured also "
                         "against the shipped model restricted to them")
    args = ap.parse_args(argv)
    global DATASET
    DATASET = args.dataset
    n_all = 10 if DATASET == "cifar10" else 100
    variants = [parse_variant(v) for v in args.variant] or [("default", {})]
    results = args.work / "results.jsonl"
    args.work.mkdir(parents=True, exist_ok=True)
    done = {json.dumps(r["key"]) for r in map(json.loads, results.read_text().splitlines())} \
        if results.is_file() else set()
    for subset in range(args.subsets):
        classes = sorted(np.random.default_rng(1000 + subset).choice(n_all, args.classes, replace=False).tolist())
        x, y, names = test_images(args.data, classes)
        for shots in map(int, args.shots.split(",")):
            folder = args.work / f"s{subset}-k{shots}"
            make_folder(args.data, folder, classes, shots, subset)
            for arch in args.archs.split(","):
                todo = [(n, f) for n, f in variants] + ([] if args.no_probe else [("probe", None)]) \
                    + ([("untouched", None)] if DATASET == "cifar10" else [])
                for name, fields in todo:
                    key = [subset, shots, arch, name, fields]
                    if json.dumps(key) in done:
                        continue
                    if fields is None:
                        measure = untouched if name == "untouched" else probe
                        row = {"top1": measure(arch, args.source, folder, x, y)}
                    else:
                        run = args.work / "runs" / f"s{subset}-k{shots}-{arch}-{name}"
                        row = run_variant(arch, folder, run, fields)
                        row["top1"] = evaluate_run(run, x, y)
                    row = {"key": key, "classes": names, **row}
                    with open(results, "a") as f:
                        f.write(json.dumps(row) + "\n")
                    print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
