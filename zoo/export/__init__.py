"""ONNX export with a parity gate: fp32, fp16 (onnxruntime's converter), int8 (static QDQ)."""

from zoo.export.api import eval_data, export, normalize
from zoo.export.exporter import GATES, PRECISIONS, ExportResult, onnx_name, ort_session, read_metadata

__all__ = ["GATES", "PRECISIONS", "ExportResult", "eval_data", "export", "normalize", "onnx_name", "ort_session",
           "read_metadata"]
