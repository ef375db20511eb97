"""ONNX export with a parity gate: fp32, fp16 (onnxruntime's converter), int8 (static QDQ). Names load their
module on first use (PEP 562), as in zoo.data: `zoo.export.cachekey` finds a cached export without torch."""

from __future__ import annotations

from zoo.core.lazy import lazy_names

_LAZY = {
    "EXPORT_REVISION": "cachekey", "PRECISIONS": "convert", "onnx_name": "cachekey",
    "GATES": "gate", "GateFailed": "gate", "torch_logits": "gate",
    "check_onnx": "onnxfile", "ort_session": "onnxfile", "read_metadata": "onnxfile",
    "ExportResult": "pipeline", "build_model": "pipeline", "export": "pipeline",
    "exported": "cache",
}

__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy_names(globals(), {name: f"zoo.export.{module}" for name, module in _LAZY.items()})
