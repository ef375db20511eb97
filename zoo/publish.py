"""`zoo publish RUN`: put a trained run's best weights into weights/ with a card measured by onnxruntime.

The card's accuracy is not the trainer's: the weights are exported and evaluated by onnxruntime on the full
test split, so what `zoo list` shows is what a user of the ONNX file gets.
"""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save

from zoo.bench.backends import OrtBackend
from zoo.bench.measure import top1
from zoo.core.cards import SEAL, RunCard, WeightsCard, sealed
from zoo.core.errors import ZooError
from zoo.core.io import atomic_write_bytes, atomic_write_json, read_json, read_jsonl
from zoo.core.owned import scratch_dir
from zoo.core.shipped import eval_sample, manifest, read_manifest, sha256_bytes, weights_dir, write_manifest
from zoo.core.sources import Target, from_path
from zoo.data import DataOptions, EvalSet, get_dataset_spec, load_eval_set, load_split
from zoo.export import export
from zoo.train.rundir import run_lock

# fp16 storage halves a checkpoint; allowed only where it costs < 0.1 top-1 point.
FP16_MAX_DROP = 0.1
STORAGE = ("fp32", "fp16")


def publish(run: str | Path, dest: Path | None = None, data: DataOptions | None = None, log=print,
            storage: str = "fp32", force: bool = False) -> dict:
    """storage="fp16" stores the weights as float16 (upcast on load), refused if that costs >= 0.1 pt.

    Weights that measure below the pair's shipped ones are refused unless `force`: a fine-tuning cycle that
    did not help must not silently replace better weights.
    """
    run, data = Path(run), data or DataOptions()
    if not (run / "last.json").is_file():  # not a run folder (a file, a checkpoint, a typo): nothing trains there
        return _publish(run, dest, data, log, storage, force)
    # a run still training is refused: its best.* may change between the reads below
    with run_lock(run, "publish it once it has finished"):
        return _publish(run, dest, data, log, storage, force)


def _publish(run: Path, dest: Path | None, data: DataOptions, log, storage: str, force: bool) -> dict:
    src = from_path(run)  # sha256-checked against best.json
    if not isinstance(src.card, RunCard):
        raise ZooError(f"{run} has no run card naming its model and dataset; publish a run folder written by "
                       f"zoo train")
    if storage not in STORAGE:
        raise ZooError(f"unknown storage {storage!r}; choose {' or '.join(STORAGE)}")
    card = src.card
    if card.dataset_spec:
        raise ZooError(f"{run} was trained on your own images ({card.dataset_spec['source']['path']}); zoo ships "
                       f"weights for its built-in datasets only: use the run folder itself (zoo export, zoo predict)")
    ev = load_eval_set(get_dataset_spec(card.dataset), data)
    if ev.origin != "test split":
        raise ZooError(f"publishing needs the full {card.dataset} test split to measure accuracy: {ev.why}")
    blob, acc, onnx_mb, extra = _measured_blob(run, src.state, card, ev, data, storage)
    dest = Path(dest) if dest else weights_dir()
    cards = read_manifest(dest)
    old = cards.get(f"{card.arch}.{card.dataset}")
    if old is not None and old.top1 is not None and round(acc, 2) < old.top1 and not force:
        raise ZooError(f"{old.name}: these weights measure {acc:.2f}% top-1, below the shipped "
                       f"{old.top1:.2f}% ({old.file}); keep those, or pass --force to replace them")
    new = _weights_card(run, card, blob, acc, onnx_mb, f"{card.dataset} {ev.label}", extra)
    atomic_write_bytes(dest / new.file, blob)
    cards[new.name] = new
    write_manifest(dest, cards)
    if old is not None and old.file != new.file:
        (dest / old.file).unlink(missing_ok=True)
    manifest.cache_clear()
    log(f"{new.name}: top-1 {acc:.2f}% (onnxruntime, {ev.label}) -> {dest / new.file}")
    return new.to_json()


def _ort_top1(arch: str, dataset: str, weights: Path, out: Path, images: np.ndarray, labels: np.ndarray,
              data: DataOptions):
    """Export `weights`, then top-1 % by onnxruntime on the (normalized) eval images, and the ONNX file's MB."""
    r = export(arch, dataset, weights=weights, out=out, data=data)
    return top1(OrtBackend().load(r.path), images, labels), r.size_bytes / 1e6


def _measured_blob(run: Path, state: dict, card: RunCard, ev: EvalSet, data: DataOptions, storage: str):
    """(the bytes to ship, their top-1, the ONNX MB, extra metrics); fp16 is measured as stored."""
    images, labels = ev.normalized(get_dataset_spec(card.dataset)), ev.labels  # once, for both exports
    with scratch_dir("publish") as tmp:  # a killed publish's is swept by the next
        acc, onnx_mb = _ort_top1(card.arch, card.dataset, run, Path(tmp), images, labels, data)
        blob = (run / "best.safetensors").read_bytes()
        if storage == "fp32":
            return blob, acc, onnx_mb, {}
        blob = save({k: v.half() if v.is_floating_point() else v for k, v in state.items()})
        half = Path(tmp) / "fp16.safetensors"
        half.write_bytes(blob)
        # with the run's card (its sha256 the fp16 bytes'), so that it is measured as it will ship: with the
        # recipe's test-time augmentation (a bare file would be measured without it)
        run_card = {k: v for k, v in read_json(run / "best.json", "run card").items() if k != SEAL}
        atomic_write_json(Path(tmp) / "fp16.json", sealed({**run_card, "sha256": sha256_bytes(blob)}))
        acc16, _ = _ort_top1(card.arch, card.dataset, half, Path(tmp) / "fp16", images, labels, data)
    if acc - acc16 >= FP16_MAX_DROP:
        raise ZooError(f"fp16 storage costs {acc - acc16:.2f} top-1 points on {card.arch}.{card.dataset} "
                       f"({acc:.2f}% -> {acc16:.2f}%, limit {FP16_MAX_DROP}); publish it as fp32")
    return blob, acc16, onnx_mb, {"storage": "fp16", "fp32_top1": round(acc, 2)}


def _weights_card(run: Path, card: RunCard, blob: bytes, acc: float, onnx_mb: float, eval_set: str,
                  extra: dict) -> WeightsCard:
    sha = sha256_bytes(blob)
    lines = read_jsonl(run / "metrics.jsonl")
    fname = f"{card.arch.replace('/', '_')}.{card.dataset}-{sha[:8]}.safetensors"
    return WeightsCard(
        arch=card.arch, dataset=card.dataset, file=fname,
        sha256=sha, num_params=card.num_params, size_mb=round(len(blob) / 1e6, 3),
        metrics={"top1": round(acc, 2), "eval_set": f"{eval_set}, onnxruntime CPU fp32", "train_top1": card.top1,
                 "onnx_mb": round(onnx_mb, 3), "epoch": card.epoch, **extra},
        recipe=card.recipe,
        meta={"epochs_run": sum(m.get("epoch", 0) >= 1 for m in lines),
              "train_wall_s": round(sum(m.get("wall_s", 0) for m in lines), 1),
              "machine": card.env.get("machine"), "torch": card.env.get("torch"), "runtime": card.runtime,
              "run": run.name, **({"init": card.init} if card.init else {}),
              "date": dt.datetime.now(dt.timezone.utc).date().isoformat()})


def write_eval_samples(dest: Path, per_class: dict[str, int], data: DataOptions | None = None,
                       log=print) -> list[Path]:
    """A stratified sample of each test split (first k images of every class), uint8, compressed npz."""
    paths = []
    for name, k in per_class.items():
        x, y = load_split(name, "test", data)
        idx = torch.cat([torch.nonzero(y == c).flatten()[:k] for c in range(int(y.max()) + 1)]).sort().values
        buf = io.BytesIO()
        np.savez_compressed(buf, images=x[idx].numpy(), labels=y[idx].numpy().astype(np.int16))
        atomic_write_bytes(Path(dest) / f"eval_{name}.npz", buf.getvalue())
        paths.append(Path(dest) / f"eval_{name}.npz")
        log(f"eval sample {name}: {len(idx)} images, {len(buf.getvalue()) / 1e6:.2f} MB")
    return paths


SAMPLES = {"mnist": (10, 2), "cifar10": (10, 2), "cifar100": (20, 1)}  # dataset: (classes, images per class)


def write_sample_images(dest: Path, log=print) -> list[Path]:
    """The images `zoo predict MODEL DATASET` classifies when it is given none: real test images from the shipped
    evaluation samples, as PNG files named for their class (dest/samples/DATASET/CLASS_K.png). Digits come both
    ways round: the first of each class as the dataset has it (light ink on dark), the second drawn dark on light,
    which zoo predict inverts first."""
    from PIL import Image

    paths = []
    for name, (classes, k) in SAMPLES.items():
        x, y = eval_sample(name)
        spec, folder = get_dataset_spec(name), Path(dest) / "samples" / name
        folder.mkdir(parents=True, exist_ok=True)
        step = spec.num_classes // classes
        for c in range(0, spec.num_classes, step):
            for i, idx in enumerate(np.flatnonzero(y == c)[:k].tolist()):
                pixels = x[idx].transpose(1, 2, 0).squeeze()
                drawn = "_dark-on-light" if name == "mnist" and i == 1 else ""
                path = folder / f"{spec.class_names[c]}_{i}{drawn}.png"
                buf = io.BytesIO()
                Image.fromarray(255 - pixels if drawn else pixels).save(buf, "PNG", optimize=True)
                atomic_write_bytes(path, buf.getvalue())
                paths.append(path)
        log(f"sample images {name}: {len(list(folder.glob('*.png')))} in {folder}")
    return paths


SHIPPED_EXPORTS = (("resnet20", "cifar10"), ("cnn", "mnist"))  # the README's first commands


def write_shipped_exports(dest: Path, data: DataOptions | None = None, log=print) -> list[Path]:
    """The fp32 exports of the README's pairs, sealed, in dest/exports/ laid out as zoo's export cache: a fresh
    install predicts on them without torch and without exporting (zoo.export.cachekey.sealed_export). An
    entry of an older export revision is removed (it would never be read again)."""
    from zoo.export.cache import exported

    root, paths = Path(dest) / "exports", []
    keep = set()
    for arch, dataset in SHIPPED_EXPORTS:
        path, _ = exported(Target(arch, dataset, pretrained=True), "fp32", data or DataOptions(), log=log)
        folder = root / path.parent.name
        folder.mkdir(parents=True, exist_ok=True)
        for f in (path, path.with_name(path.name + ".seal")):
            atomic_write_bytes(folder / f.name, f.read_bytes())
        keep.add(folder.name)
        paths.append(folder / path.name)
        log(f"shipped export {folder.name}/{path.name}: {path.stat().st_size / 1e6:.2f} MB")
    for old in root.iterdir():  # an older revision's entries: its sealed files go, anything else stays
        if old.is_dir() and old.name not in keep:
            for f in [*old.glob("*.onnx"), *old.glob("*.onnx.seal")]:
                f.unlink()
            if not any(old.iterdir()):
                old.rmdir()
    return paths


def publish_all(runs: list[str], dest: str | Path | None = None, *, eval_samples: bool = False,
                data: DataOptions | None = None, storage: str = "fp32", force: bool = False) -> None:
    """`zoo publish`: each run's weights into `dest` (default: the package's weights/), and with `eval_samples`
    the shipped evaluation samples, sample images and exports first."""
    if not (runs or eval_samples):
        raise ZooError("zoo publish needs run folders (e.g. runs/resnet20.cifar10.paper) or --eval-samples")
    dest = Path(dest) if dest else None
    if eval_samples:
        write_eval_samples(dest or weights_dir(), {"mnist": 100, "cifar10": 100, "cifar100": 10}, data=data)
        write_sample_images(dest or weights_dir())
        write_shipped_exports(dest or weights_dir(), data=data)
    for run in runs:
        publish(run, dest, data=data, storage=storage, force=force)
