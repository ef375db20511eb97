"""Exports cached per user, keyed by the weights' bytes and the export revision, verified before reuse:
`zoo bench` and `zoo predict` export shipped weights and run folders once, then reuse the file."""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from zoo.core.cards import graph_tta, tta_of
from zoo.core.errors import ZooError
from zoo.core.io import waiting_lock, writable_dir
from zoo.core.sources import Target, resolve
from zoo.data import DataOptions
from zoo.export.cachekey import EXPORT_SETTINGS, entry_folder, onnx_name, seal
from zoo.export.onnxfile import check_onnx
from zoo.export.pipeline import export


def exported(target: Target, precision: str, data: DataOptions, log=print) -> tuple[Path, dict]:
    """The ONNX file for target/precision, exported once per weights hash and export revision, then reused."""
    if target.onnx:
        return Path(target.onnx), check_onnx(target.onnx)
    src = resolve(target)
    # The weights' own hash (cardless files included); random init is seeded, so its pair names it.
    key = src.sha256 or "random-" + hashlib.sha256(target.name.encode()).hexdigest()
    tta = tta_of(src.card)  # the same tensors with test-time augmentation are another graph
    folder = entry_folder(key, tta)
    path = folder / onnx_name(target.arch, target.dataset, precision)
    # Two commands needing the same entry take turns: the second finds the first's file (a damaged one, too, is
    # rebuilt once, not by both at the same time).
    with waiting_lock(writable_dir(folder) / ".lock"):
        return _reuse_or_export(target, precision, data, log, src, tta, folder, path)


def _reuse_or_export(target: Target, precision: str, data: DataOptions, log, src, tta: str, folder: Path,
                     path: Path) -> tuple[Path, dict]:
    if path.is_file():
        try:
            meta = check_onnx(path)  # the graph's own hash, the pair's shapes
            made_tta = graph_tta(meta)
            if (meta.get("weights_sha256") or None, meta.get("precision"), made_tta) != (src.sha256, precision, tta):
                raise ZooError(f"{path} was exported from other weights, precision or test-time augmentation")
            seal(path, meta)
            return path, meta
        except ZooError as e:  # a damaged or foreign cache entry is rebuilt, not fatal
            log(f"cached export not reused ({e}); exporting again")
            path.unlink(missing_ok=True)
    torch.manual_seed(0)  # random init is reproducible, so its cache key is stable
    export(target.arch, target.dataset, weights=target.weights, pretrained=target.pretrained, out=folder,
           precision=precision, data=data, **EXPORT_SETTINGS)
    meta = check_onnx(path)
    seal(path, meta)  # the next command finds it by zoo.export.cachekey.sealed_export, without torch
    return path, meta
