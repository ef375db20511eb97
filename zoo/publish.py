"""`zoo publish RUN`: put a trained run's best weights into weights/ with a card measured by onnxruntime.

The card's accuracy is not the trainer's: the weights are exported and evaluated by onnxruntime on the full
test split, so what `zoo list` shows is what a user of the ONNX file gets.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict
from pathlib import Path

from zoo.errors import ZooError


# fp16 storage halves a checkpoint; the issue allows it only where it costs < 0.1 top-1 point.
FP16_MAX_DROP = 0.1
STORAGE = ("fp32", "fp16")


def publish(run: str | Path, dest: Path | None = None, data_dir=None, verify=None, log=print,
            storage: str = "fp32", force: bool = False) -> dict:
    """storage="fp16" stores the weights as float16 (upcast on load), refused if that costs >= 0.1 pt.

    Weights that measure below the pair's shipped ones are refused unless `force`: a fine-tuning cycle that
    did not help must not silently replace better weights.
    """
    import tempfile

    from zoo.bench.api import eval_set
    from zoo.bench.backends import OrtBackend
    from zoo.bench.measure import top1
    from zoo.data import get_dataset_spec
    from zoo.export import export
    from zoo.export.sources import from_path
    from zoo.train.checkpoint import atomic_write_bytes, atomic_write_json
    from zoo.weights import WeightsCard, manifest, weights_dir

    run = Path(run)
    src = from_path(run)  # sha256-checked against best.json
    arch, dataset = src.card.get("model"), src.card.get("dataset")
    if not arch or not dataset:
        raise ZooError(f"{run} has no card naming its model and dataset; publish a run folder written by zoo train")
    if storage not in STORAGE:
        raise ZooError(f"unknown storage {storage!r}; choose {' or '.join(STORAGE)}")
    if not (run / "best.safetensors").is_file():
        raise ZooError(f"{run} has no best.safetensors")
    spec = get_dataset_spec(dataset)
    images, labels, eval_src = eval_set(spec, data_dir, verify)
    if images is None or not eval_src.startswith("test split"):
        raise ZooError(f"publishing needs the full {dataset} test split to measure accuracy: {eval_src}")

    def ort_top1(weights: Path, out: Path) -> tuple[float, float]:
        """Export `weights`, then top-1 % by onnxruntime on the test split, and the ONNX file's MB."""
        r = export(arch, dataset, weights=weights, out=out, data_dir=data_dir, verify=verify)
        return top1(OrtBackend().load(r.path), images, labels), r.size_bytes / 1e6

    extra = {}
    with tempfile.TemporaryDirectory() as tmp:
        acc, onnx_mb = ort_top1(run, Path(tmp))
        blob, sha = (run / "best.safetensors").read_bytes(), src.card["sha256"]
        if storage == "fp16":
            blob, sha = _fp16_blob(src.state)
            half = Path(tmp) / "fp16.safetensors"  # export reads a bare .safetensors file as it is
            half.write_bytes(blob)
            acc16, _ = ort_top1(half, Path(tmp) / "fp16")
            if acc - acc16 >= FP16_MAX_DROP:
                raise ZooError(f"fp16 storage costs {acc - acc16:.2f} top-1 points on {arch}.{dataset} "
                               f"({acc:.2f}% -> {acc16:.2f}%, limit {FP16_MAX_DROP}); publish it as fp32")
            extra = {"storage": "fp16", "fp32_top1": round(acc, 2)}
            acc = acc16
    dest = Path(dest) if dest else weights_dir()
    cards = {f"{c['arch']}.{c['dataset']}": c for c in _read(dest)}
    old = cards.get(f"{arch}.{dataset}")
    old_top1 = (old or {}).get("metrics", {}).get("top1")
    if old_top1 is not None and round(acc, 2) < old_top1 and not force:
        raise ZooError(f"{arch}.{dataset}: these weights measure {acc:.2f}% top-1, below the shipped "
                       f"{old_top1:.2f}% ({old['file']}); keep those, or pass --force to replace them")
    fname = f"{arch.replace('/', '_')}.{dataset}-{sha[:8]}.safetensors"
    metrics_path = run / "metrics.jsonl"
    lines = [json.loads(x) for x in metrics_path.read_text().splitlines() if x.strip()] if metrics_path.is_file() else []
    card = WeightsCard(
        arch=arch, dataset=dataset, file=fname, sha256=sha, num_params=src.card.get("num_params", 0),
        size_mb=round(len(blob) / 1e6, 3),
        metrics={"top1": round(acc, 2), "eval_set": f"{dataset} {eval_src}, onnxruntime CPU fp32",
                 "train_top1": src.card.get("metrics", {}).get("test_acc"), "onnx_mb": round(onnx_mb, 3),
                 "epoch": src.card.get("epoch"), **extra},
        recipe=src.card.get("recipe", {}),
        meta={"epochs_run": len(lines), "train_wall_s": round(sum(m.get("wall_s", 0) for m in lines), 1),
              "machine": src.card.get("machine"), "torch": src.card.get("torch"),
              "runtime": src.card.get("runtime"), "run": run.name,
              **({"init": src.card["init"]} if src.card.get("init") else {}),
              "date": dt.datetime.now(dt.timezone.utc).date().isoformat()})
    atomic_write_bytes(dest / fname, blob)
    cards[card.name] = asdict(card)
    atomic_write_json(dest / "manifest.json", {"format": 1, "weights": sorted(cards.values(),
                                                                               key=lambda c: (c["dataset"], c["arch"]))})
    if old and old["file"] != fname:
        (dest / old["file"]).unlink(missing_ok=True)
    manifest.cache_clear()
    log(f"{card.name}: top-1 {acc:.2f}% (onnxruntime, {eval_src}) -> {dest / fname}")
    return asdict(card)


def _fp16_blob(state: dict) -> tuple[bytes, str]:
    """The state dict with every floating tensor rounded to float16, as safetensors bytes, and its sha256."""
    from safetensors.torch import save

    from zoo.weights import sha256_bytes

    blob = save({k: v.half() if v.is_floating_point() else v for k, v in state.items()})
    return blob, sha256_bytes(blob)


def _read(dest: Path) -> list[dict]:
    p = dest / "manifest.json"
    return json.loads(p.read_text()).get("weights", []) if p.is_file() else []


def write_eval_samples(dest: Path, per_class: dict[str, int], data_dir=None, verify=None, log=print) -> list[Path]:
    """A stratified sample of each test split (first k images of every class), uint8, compressed npz."""
    import io

    import numpy as np
    import torch

    from zoo.data import load_split
    from zoo.train.checkpoint import atomic_write_bytes

    paths = []
    for name, k in per_class.items():
        x, y = load_split(name, "test", data_dir, verify=verify)
        idx = torch.cat([torch.nonzero(y == c).flatten()[:k] for c in range(int(y.max()) + 1)]).sort().values
        buf = io.BytesIO()
        np.savez_compressed(buf, images=x[idx].numpy(), labels=y[idx].numpy().astype(np.int16))
        atomic_write_bytes(Path(dest) / f"eval_{name}.npz", buf.getvalue())
        paths.append(Path(dest) / f"eval_{name}.npz")
        log(f"eval sample {name}: {len(idx)} images, {len(buf.getvalue()) / 1e6:.2f} MB")
    return paths
