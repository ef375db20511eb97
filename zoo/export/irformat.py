"""OpenVINO's IR beside an export (`zoo export --format openvino`): NAME.xml + NAME.bin, converted from the
.onnx file by OpenVINO's own converter, with zoo's metadata in the IR's rt_info (under "zoo"), so that a
deployment on OpenVINO loads the model without the ONNX frontend, and `zoo predict NAME.xml` reads it.

Gated like every export: at OpenVINO's f32 precision hint, its top-1 must equal the .onnx file's (through
onnxruntime) on every gate image, its logits within ortformat.FP32_TOLERANCE of them.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np

from zoo.core.errors import ZooError
from zoo.core.io import sweep_stale
from zoo.core.runtimes import missing_runtime
from zoo.core.sessions import ort_session
from zoo.export.ortformat import same_answers

RT_INFO = "zoo"  # the rt_info section zoo's metadata goes in


def write_ir(onnx_path: Path, images: np.ndarray, meta: dict) -> tuple[Path, dict]:
    """onnx_path as NAME.xml + NAME.bin beside it, `meta` in its rt_info, after the gate on `images` (normalized
    float [N, C, H, W]): (the .xml path, {"openvino_agreement": %, "openvino_max_abs_diff_rel": ...}). The pair
    is written in a temporary folder and moved in .bin first, .xml last: a reader never finds an .xml whose
    weights are not there."""
    if missing_runtime("openvino"):
        raise ZooError(f"--format openvino: {missing_runtime('openvino')}")
    import openvino as ov

    final = onnx_path.with_suffix(".xml")
    sweep_stale(onnx_path.parent, ".ir")  # a killed export's pair
    tmp = onnx_path.parent / f".ir-{os.getpid()}-{final.stem}"
    tmp.mkdir(exist_ok=True)
    try:
        model = ov.convert_model(str(onnx_path))
        ov.save_model(model, str(tmp / final.name), compress_to_fp16=False)  # the weights as exported
        fig = _gate(onnx_path, tmp / final.name, images)  # the file as saved, not the model in memory
        for key, value in {**meta, "parity": {**meta.get("parity", {}), **fig}}.items():
            model.set_rt_info(json.dumps(value), [RT_INFO, key])
        ov.save_model(model, str(tmp / final.name), compress_to_fp16=False)  # again, with its gate's figures
        os.replace(tmp / final.with_suffix(".bin").name, final.with_suffix(".bin"))
        os.replace(tmp / final.name, final)
        return final, fig
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _gate(onnx_path: Path, xml: Path, images: np.ndarray) -> dict:
    import openvino as ov

    sess = ort_session(onnx_path)
    want = sess.run(["logits"], {sess.get_inputs()[0].name: images})[0]
    compiled = ov.Core().compile_model(str(xml), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    got = compiled(images)[compiled.output("logits")]
    agree, diff = same_answers(got, want, f"{xml.name}: OpenVINO's IR disagrees with {onnx_path.name}",
                               "keep the .onnx file")
    return {"openvino_agreement": agree, "openvino_max_abs_diff_rel": diff}
