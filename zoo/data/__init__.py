"""Datasets: specs (shapes, classes, normalization), zoo's readers, folders of a user's own images, the
in-memory loader, the eval set. Names load their module on first use (PEP 562): `zoo.data.images` is
Pillow and numpy only, so `zoo predict` on an .onnx file never imports torch."""

from __future__ import annotations

from zoo.core.lazy import lazy_names

_LAZY = {
    "DataOptions": "options", "dataset_available": "datasets", "default_data_root": "datasets",
    "load_split": "datasets", "resolve_root": "datasets",
    "EvalSet": "evalset", "load_eval_set": "evalset", "normalize": "evalset", "keep_sample": "evalset",
    "BatchLoader": "loader", "augment_batch": "loader", "make_loader": "loader",
    "DatasetSpec": "specs", "find_dataset": "specs", "get_dataset_spec": "resolve", "list_datasets": "specs",
    "register_dataset": "specs",
    "FolderOptions": "options", "open_folder": "folder", "register_record": "resolve", "spec_record": "resolve",
}

__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy_names(globals(), {name: f"zoo.data.{module}" for name, module in _LAZY.items()})
