"""Where int8 time goes: onnxruntime's per-operator time for an fp32 file and its int8 file at batch 256, from
onnxruntime's own profiler: why ResNet-20's int8 stays near 2x its fp32.

    python benchmarks/tools/int8_profile.py FOLDER [--nodes] [--disable NhwcTransformer]
    # FOLDER holds MODEL.DATASET.onnx and MODEL.DATASET-int8.onnx; --disable: onnxruntime graph optimizers to turn off

Prints images/s at batch 256 for each (10 timed calls after 3, profiling on) and the share of kernel time per
operator type; with --nodes, also the eight slowest nodes (how the first conv was found: zoo/export/qdq.py).

Reported in docs/measurements.md, int8.
"""

from __future__ import annotations

import collections
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def profile(path: Path, threads: int = 2, batch: int = 256, nodes: bool = False, disabled: tuple = ()) -> None:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.enable_profiling = True
    so.profile_file_prefix = os.path.join(tempfile.mkdtemp(), path.stem)
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"], disabled_optimizers=list(disabled))
    shape = [batch, *sess.get_inputs()[0].shape[1:]]
    x = np.random.default_rng(0).standard_normal(shape, np.float32)
    for _ in range(3):
        sess.run(None, {"input": x})
    t0 = time.perf_counter()
    for _ in range(10):
        sess.run(None, {"input": x})
    rate = 10 * batch / (time.perf_counter() - t0)
    per_op, per_node, kind = collections.Counter(), collections.Counter(), {}
    for e in json.loads(Path(sess.end_profiling()).read_text()):
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            per_op[e["args"]["op_name"]] += e["dur"]
            per_node[e["name"]] += e["dur"]
            kind[e["name"]] = e["args"]["op_name"]
    total = sum(per_op.values())
    shares = ", ".join(f"{op} {100 * us / total:.0f}%" for op, us in per_op.most_common(8))
    off = f" (without {', '.join(disabled)})" if disabled else ""
    print(f"{path.name}{off}: {rate:,.0f} img/s at batch {batch}; {total / 13 / 1e3:.1f} ms of kernels per call: "
          f"{shares}")
    for name, us in per_node.most_common(8 if nodes else 0):
        print(f"  {100 * us / total:5.1f}%  {kind[name]:14s} {name.removesuffix('_kernel_time')}")


if __name__ == "__main__":
    folder, flags = Path(sys.argv[1]), sys.argv[2:]
    disabled = tuple(flags[flags.index("--disable") + 1].split(",")) if "--disable" in flags else ()
    for f in sorted(folder.glob("*.onnx")):
        profile(f, nodes="--nodes" in flags, disabled=disabled)
