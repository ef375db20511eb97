"""onnxruntime's own ORT format beside an export (`zoo export --format ort`): the graph as onnxruntime
optimizes it, saved, so a deployment loads it without optimizing again (and a minimal onnxruntime build can
run it). Optimized at ORT_ENABLE_EXTENDED: the level whose output is not tied to this CPU (onnxruntime warns
that its layout optimizations are). zoo's metadata rides along (ORT format keeps custom metadata).

The file is gated like every export: its top-1 on the gate's images must equal the .onnx file's on every
image, its logits within FP32_TOLERANCE of them.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnxruntime as ort

from zoo.core.errors import ZooError

FP32_TOLERANCE = 1e-3  # max |logit difference| relative to the logits' range


def same_answers(got: np.ndarray, want: np.ndarray, what: str, keep: str) -> tuple[float, float]:
    """(top-1 agreement %, max |logit difference| over the logits' range) of a runtime's own format against the
    .onnx file; a ZooError naming `what` unless every top-1 agrees and the logits are within FP32_TOLERANCE."""
    agree = 100.0 * float((got.argmax(1) == want.argmax(1)).mean())
    diff = float(np.abs(got - want).max() / max(float(np.ptp(want)), 1e-12))
    if agree < 100.0 or diff > FP32_TOLERANCE:
        raise ZooError(f"{what} (top-1 agreement {agree:.2f}%, max|diff| {diff:.2e} of the logits' range); {keep}")
    return agree, diff


def _session(path: Path, save_to: Path | None = None) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    if save_to is not None:
        so.optimized_model_filepath = str(save_to)
        so.add_session_config_entry("session.save_model_format", "ORT")
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def write_ort(onnx_path: Path, images: np.ndarray) -> tuple[Path, dict]:
    """onnx_path as NAME.ort beside it, after the gate on `images` (normalized float [N, C, H, W]):
    (its path, {"ort_agreement": %, "ort_max_abs_diff_rel": ...}). Written whole or not at all."""
    final = onnx_path.with_suffix(".ort")
    tmp = final.with_name(f".{final.stem}.{os.getpid()}.tmp.ort")  # onnxruntime tells the format by the suffix
    try:
        _session(onnx_path, save_to=tmp)
        name = _session(onnx_path).get_inputs()[0].name
        want = _session(onnx_path).run(["logits"], {name: images})[0]
        got = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"]).run(["logits"], {name: images})[0]
        agree, diff = same_answers(got, want, f"{final.name}: the ORT-format graph disagrees with {onnx_path.name}",
                                   "keep the .onnx file")
        os.replace(tmp, final)
        return final, {"ort_agreement": agree, "ort_max_abs_diff_rel": diff}
    finally:
        tmp.unlink(missing_ok=True)
