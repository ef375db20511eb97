"""export(): the whole flow for one model, and the data the gate and calibration use."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from zoo.errors import ZooError
from zoo.export import sources
from zoo.export.exporter import (EXPORTERS, PRECISIONS, ExportResult, _writable_dir, add_metadata, onnx_name,
                                 parity, to_fp16, to_int8, torch_to_onnx)


def normalize(images_u8: torch.Tensor, spec) -> np.ndarray:
    """uint8 [N, C, H, W] -> float32 normalized, the exported model's input contract."""
    mean = torch.tensor(spec.mean).view(1, -1, 1, 1)
    std = torch.tensor(spec.std).view(1, -1, 1, 1)
    return ((images_u8.float() / 255 - mean) / std).numpy().astype(np.float32)


def eval_data(spec, n: int, data_dir=None, verify=None, split: str = "test") -> tuple[np.ndarray, np.ndarray, str]:
    """n images (+ labels) of the split when the dataset is present, else (test) the shipped sample, else
    generated ones.

    The test split is used from its start; a training subset is drawn with a fixed seed. A split smaller
    than n is topped up with generated images (and the description says how many).
    """
    from zoo.data import load_split
    from zoo.data.fake import _images

    from zoo.weights import eval_sample

    try:
        x, y = load_split(spec.name, split, data_dir, verify=verify)
    except ZooError:
        sample = eval_sample(spec.name) if split == "test" else None
        if sample is None:
            x, y = _images(n, spec.channels, spec.size, spec.num_classes, np.random.default_rng(0))
            return normalize(torch.from_numpy(x), spec), y, f"generated ({n} images: dataset not found)"
        x, y = sample  # the test-split sample shipped with zoo
        split = "shipped test sample"
    if split == "train":
        idx = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))[:n]
        x, y = x[idx], y[idx]
    x, y = x[:n], y[:n].numpy()
    src = f"{spec.name} {split}{'' if split.startswith('shipped') else ' split'} ({len(y)} images)"
    if len(y) < n:
        gx, gy = _images(n - len(y), spec.channels, spec.size, spec.num_classes, np.random.default_rng(0))
        x, y = torch.cat([x, torch.from_numpy(gx)]), np.concatenate([y, gy])
        src += f" + {len(gy)} generated"
    return normalize(x, spec), y, src


def load_source(arch: str, dataset: str, weights=None, pretrained: bool = False) -> sources.Source:
    if weights and pretrained:
        raise ZooError("give either --weights or --pretrained, not both")
    if pretrained:
        return sources.from_pretrained(arch, dataset)
    if weights:
        src = sources.from_path(weights)
        sources.check_card(src, arch, dataset)
        return src
    return sources.Source(None)


def build(arch: str, dataset: str, src: sources.Source) -> torch.nn.Module:
    from zoo.checkpoint import load_state_dict_checked
    from zoo.models import create_model

    model = create_model(arch, dataset)
    if src is not None and src.state is not None:
        load_state_dict_checked(model, src.state, source=src.origin)
    return model.eval()


def export(arch: str, dataset: str, *, weights=None, pretrained: bool = False, out="exports", opset: int = 18,
           precision: str = "fp32", calib_size: int = 256, exporter: str = "dynamo", eval_images: int = 1000,
           int8_max_drop: float = 1.0, data_dir=None, verify=None) -> ExportResult:
    """Export `arch` for `dataset` to OUT/<arch>.<dataset>[-precision].onnx, after the parity gate.

    int8_max_drop: the most top-1 accuracy (points) int8 may lose against fp32 on the eval set.
    """
    import onnx
    import onnxruntime as ort

    from zoo import __version__
    from zoo.data import get_dataset_spec

    if precision not in PRECISIONS:
        raise ZooError(f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")
    if exporter not in EXPORTERS:
        raise ZooError(f"unknown exporter {exporter!r}; choose from {', '.join(EXPORTERS)}")
    if opset < 18 and exporter == "dynamo":
        raise ZooError(f"the dynamo exporter needs opset >= 18, got {opset}")
    if eval_images < 1000:
        raise ZooError(f"the parity gate needs at least 1000 images, got --eval-images {eval_images}")
    spec = get_dataset_spec(dataset)
    src = load_source(arch, dataset, weights, pretrained)
    model = build(arch, dataset, src)
    out = _writable_dir(Path(out))
    t0 = time.perf_counter()
    # int8 is gated on its accuracy change; on 1,000 images one point is 10 images, too coarse: use the
    # whole test split (up to 10,000) for it.
    images, labels, eval_src = eval_data(spec, max(eval_images, 10_000) if precision == "int8" else eval_images,
                                         data_dir, verify)
    with tempfile.TemporaryDirectory(dir=out, prefix=".export-") as tmp:
        tmp = Path(tmp)
        fp32 = tmp / "fp32.onnx"
        torch_to_onnx(model, spec.input_shape, fp32, opset, exporter)
        path = fp32
        if precision == "fp16":
            path = tmp / "fp16.onnx"
            to_fp16(fp32, path)
        elif precision == "int8":
            calib, _, _ = eval_data(spec, calib_size, data_dir, verify, split="train")
            path = tmp / "int8.onnx"
            kept_float = to_int8(fp32, path, calib, tmp)
        fig = parity(model, path, precision, images, labels, fp32_path=fp32 if precision == "int8" else None,
                     max_acc_drop=int8_max_drop, random_weights=src.state is None)
        if precision == "int8":
            fig["float_nodes"] = kept_float  # first and last layer stay in float (see exporter.float_ends)
        fig["eval_set"] = eval_src
        card = src.card
        meta = {
            "model": arch, "dataset": dataset, "class_names": list(spec.class_names),
            "input_shape": ["batch", *spec.input_shape], "layout": "NCHW", "input_name": "input",
            "output_name": "logits", "mean": list(spec.mean), "std": list(spec.std),
            "preprocess": "x = (pixels / 255 - mean) / std, float32",
            "weights": src.origin, "weights_sha256": card.get("sha256", ""),
            "train_top1": (card.get("metrics") or {}).get("test_acc", (card.get("metrics") or {}).get("top1")),
            "recipe": card.get("recipe", {}), "precision": precision, "exporter": exporter, "opset": opset,
            "parity": fig, "zoo_version": __version__, "torch_version": torch.__version__,
            "onnx_version": onnx.__version__, "onnxruntime_version": ort.__version__,
        }
        add_metadata(path, meta)
        final = out / onnx_name(arch, dataset, precision)
        os.replace(path, final)
    return ExportResult(final, precision, final.stat().st_size, time.perf_counter() - t0, fig, meta)
