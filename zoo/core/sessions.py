"""onnxruntime sessions, set up one way for export's gate, bench and predict (onnxruntime is imported on use:
`zoo predict` on an .onnx file needs nothing heavier)."""

from __future__ import annotations

import json
from pathlib import Path

from zoo.core.errors import ZooError


def ort_session(path: str | Path, provider: str = "CPUExecutionProvider", threads: int | None = None):
    """An InferenceSession on exactly `provider`: onnxruntime-gpu falls back to the CPU without a GPU, and a
    figure labelled CUDA must not be a CPU figure."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    if threads:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    providers: list = [provider]
    if provider == "CUDAExecutionProvider":
        providers = [("CUDAExecutionProvider", {"cudnn_conv_algo_search": "HEURISTIC"})]
    try:
        sess = ort.InferenceSession(str(path), sess_options=opts, providers=providers)
    except Exception as e:  # onnxruntime's own exception types (InvalidGraph, Fail, NoSuchFile, ...)
        raise ZooError(f"onnxruntime {ort.__version__} cannot load {path}: {str(e).splitlines()[0][:160]}") from None
    if sess.get_providers()[0] != provider:
        raise ZooError(f"{provider} is listed by onnxruntime but could not start (no usable GPU/CUDA); "
                       f"the session would run on {sess.get_providers()[0]}")
    return sess


def session_metadata(sess) -> dict:
    """zoo's metadata_props of a loaded file, JSON values decoded (no onnx import needed)."""
    out = {}
    for k, v in sess.get_modelmeta().custom_metadata_map.items():
        try:
            out[k] = json.loads(v)
        except json.JSONDecodeError:
            out[k] = v
    return out
