"""ONNX export with a parity gate: fp32, fp16 (onnxruntime's converter), int8 (static QDQ)."""

from zoo.export.convert import EXPORT_REVISION, PRECISIONS, onnx_name
from zoo.export.gate import GATES, GateFailed, torch_logits
from zoo.export.onnxfile import check_onnx, ort_session, read_metadata
from zoo.export.pipeline import ExportResult, build_model, export
from zoo.export.cache import exported  # noqa: I001  (after pipeline: it uses it)

__all__ = ["EXPORT_REVISION", "GATES", "PRECISIONS", "ExportResult", "GateFailed", "build_model", "check_onnx",
           "export", "exported", "onnx_name", "ort_session", "read_metadata", "torch_logits"]
