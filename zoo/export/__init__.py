"""ONNX export with a parity gate: fp32, fp16 (onnxruntime's converter), int8 (static QDQ). Names load their
module on first use (PEP 562), as in zoo.data: `zoo.export.cachekey` finds a cached export without torch."""

from __future__ import annotations

import importlib

_LAZY = {
    "EXPORT_REVISION": "cachekey", "PRECISIONS": "convert", "onnx_name": "cachekey",
    "GATES": "gate", "GateFailed": "gate", "torch_logits": "gate",
    "check_onnx": "onnxfile", "ort_session": "onnxfile", "read_metadata": "onnxfile",
    "ExportResult": "pipeline", "build_model": "pipeline", "export": "pipeline",
    "exported": "cache",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(f"zoo.export.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'zoo.export' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
