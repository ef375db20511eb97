"""OpenVINO's IR beside an export (`zoo export --format openvino`): NAME.xml + NAME.bin, converted from the
.onnx file by OpenVINO's own converter, with zoo's metadata in the IR's rt_info (under "zoo"), so that a
deployment on OpenVINO loads the model without the ONNX frontend, and `zoo predict NAME.xml` reads it.

Gated like every export: at OpenVINO's f32 precision hint, its top-1 must equal the .onnx file's (through
onnxruntime) on every gate image, its logits within ortformat.FP32_TOLERANCE of them.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np

from zoo.core.bounded import check_xml
from zoo.core.errors import ZooError
from zoo.core.owned import owned_tempdir
from zoo.core.runtimes import missing_runtime
from zoo.core.sessions import ort_session
from zoo.core.shipped import sha256_file
from zoo.export.ortformat import same_answers

RT_INFO = "zoo"  # the rt_info section zoo's metadata goes in


def write_ir(onnx_path: Path, images: np.ndarray, meta: dict, labels: np.ndarray | None = None,
             int8_max_drop: float = 1.0) -> tuple[Path, dict]:
    """onnx_path as NAME.xml + NAME.bin beside it, `meta` in its rt_info, after the gate on `images` (normalized
    float [N, C, H, W]): (the .xml path, {"openvino_agreement": %, "openvino_max_abs_diff_rel": ...}). The pair
    is written in a temporary folder and moved in .bin first, .xml last: a reader never finds an .xml whose
    weights are not there."""
    if missing_runtime("openvino"):
        raise ZooError(f"--format openvino: {missing_runtime('openvino')}")
    import openvino as ov

    final = onnx_path.with_suffix(".xml")
    with owned_tempdir(onnx_path.parent, ".ir") as tmp:  # a killed export's pair is swept first
        model = ov.convert_model(str(onnx_path))
        _save(ov, model, tmp / final.name, onnx_path)  # the weights as exported
        fig = _gate(onnx_path, tmp / final.name, images, meta, labels, int8_max_drop)  # the file as saved
        weights = sha256_file(tmp / final.with_suffix(".bin").name)  # the pair is bound: the .xml names its .bin
        for key, value in {**meta, "parity": {**meta.get("parity", {}), **fig}, "bin_sha256": weights}.items():
            model.set_rt_info(json.dumps(value), [RT_INFO, key])
        _save(ov, model, tmp / final.name, onnx_path)  # again, with its gate's figures
        if sha256_file(tmp / final.with_suffix(".bin").name) != weights:
            raise ZooError("OpenVINO wrote other weights the second time it saved the IR; keep the .onnx file")
        os.replace(tmp / final.with_suffix(".bin").name, final.with_suffix(".bin"))
        os.replace(tmp / final.name, final)
        return final, fig


def _save(ov, model, xml: Path, onnx_path: Path) -> None:
    """ov.save_model, its failure (a full disk) in one line that says what was written."""
    try:
        ov.save_model(model, str(xml), compress_to_fp16=False)
    except Exception as e:  # OpenVINO raises RuntimeError for an I/O failure
        raise ZooError(f"could not save OpenVINO's IR ({str(e).strip().splitlines()[-1][:120]}); {onnx_path.name} "
                       f"is written and whole: free space, then export again with --format openvino") from None


def _gate(onnx_path: Path, xml: Path, images: np.ndarray, meta: dict, labels: np.ndarray | None,
          int8_max_drop: float) -> dict:
    """An fp32 IR must answer as the .onnx file does. An int8 IR runs OpenVINO's own int8 kernels, which round
    otherwise than onnxruntime's: it is judged as the int8 .onnx file was, by its accuracy on the labelled
    images against the fp32 file's (at most `int8_max_drop` points lost) and its agreement (>= the int8 gate's)."""
    import openvino as ov

    from zoo.export.gate import GATES

    sess = ort_session(onnx_path)
    want = sess.run(["logits"], {sess.get_inputs()[0].name: images})[0]
    compiled = ov.Core().compile_model(str(xml), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    got = compiled(images)[compiled.output("logits")]
    parity = meta.get("parity") or {}
    if meta.get("precision") != "int8" or labels is None or "fp32_onnx_top1" not in parity:
        agree, diff = same_answers(got, want, f"{xml.name}: OpenVINO's IR disagrees with {onnx_path.name}",
                                   "keep the .onnx file")
        return {"openvino_agreement": agree, "openvino_max_abs_diff_rel": diff}
    agree = 100.0 * float((got.argmax(1) == want.argmax(1)).mean()) if np.isfinite(got).all() else 0.0
    top1 = 100.0 * float((got.argmax(1) == labels).mean())
    change = top1 - parity["fp32_onnx_top1"]
    least = GATES["int8"]["min_agree"]
    if not (agree >= least and -change <= int8_max_drop):
        raise ZooError(f"{xml.name}: OpenVINO's int8 IR fails the int8 gate (top-1 {top1:.2f}%, {change:+.2f} pt "
                       f"against the fp32 file, at most -{int8_max_drop:g}; agreement {agree:.2f}% with "
                       f"{onnx_path.name}, at least {least:g}%); keep the .onnx file")
    return {"openvino_agreement": agree, "openvino_top1": top1, "openvino_acc_change": change}


def remove_stale_ir(onnx_path: Path) -> list[str]:
    """An IR pair beside `onnx_path` under its name that an earlier export wrote (its .xml carries zoo's rt_info)
    would now describe other weights: it goes, and a note says so. Any other file of that name is left."""
    xml, weights = onnx_path.with_suffix(".xml"), onnx_path.with_suffix(".bin")
    try:
        check_xml(xml)
        text = xml.read_text(errors="replace")
    except (ZooError, OSError):
        return []
    if f"<{RT_INFO}>" not in text:
        return []
    bound = re.search(r'<bin_sha256 value="&quot;([0-9a-f]{64})&quot;"', text)  # the .bin it records
    ours = bool(bound) and weights.is_file() and sha256_file(weights) == bound.group(1)
    if ours:  # only the .bin whose bytes the .xml records: another file of that name is the user's
        weights.unlink()  # the .bin first: an .xml never names a missing .bin for long
    xml.unlink()
    return [f"removed {xml.name}{' and ' + weights.name if ours else ''}, the OpenVINO IR of an earlier export of "
            f"this name (add --format openvino to write it again)"]
