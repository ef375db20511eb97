"""How long a runtime's worker threads keep the CPU busy after a call returns: what `zoo bench` must wait
between two runtimes' turns (zoo.bench.measure.settle) so that one runtime's spinning pool does not slow the
next one's calls.

After warm calls at batch 1 and at a large batch, the main thread sleeps in 1 ms slices and reads the process's
CPU time (every thread's): ~1 ms of CPU per ms slept means one pool thread is still spinning, ~0.03 is idle.
Linux adds another thread's CPU time to the process's at scheduler ticks (every 4 ms on the development machine),
so single slices are lumpy (0 or 4 ms); the means over --repeat calls are right. Prints, per runtime and batch,
the mean CPU per ms slept over spans of the first 100 ms after a call.

    python benchmarks/tools/spin_tail.py FILE.onnx [--threads 2] [--repeat 20]

Reported in docs/benchmarks.md, How zoo times.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import onnx

from zoo.bench.backends import OpenVinoBackend, OrtBackend, TorchBackend, missing_runtime

SLICE_S = 0.001
SLICES = 100  # 100 ms watched after every call
SPANS = ((0, 1), (1, 2), (2, 5), (5, 10), (10, 20), (20, 50), (50, 100))  # ms after the call


def cpu_ms_per_slice(backend, x: np.ndarray) -> list[float]:
    """CPU ms the whole process used in each 1-ms slice slept after one call."""
    backend.predict(x)
    used = []
    for _ in range(SLICES):
        c0 = time.process_time()
        time.sleep(SLICE_S)
        used.append(1e3 * (time.process_time() - c0))
    return used


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("onnx")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--batch", type=int, default=256)
    args = ap.parse_args()
    dims = [d.dim_value for d in onnx.load(args.onnx).graph.input[0].type.tensor_type.shape.dim[1:]]
    import torch

    # PyTorch's pool is what matters, not the file's graph: a small conv net stands in for the model
    conv = torch.nn.Sequential(torch.nn.Conv2d(dims[0], 64, 3, padding=1), torch.nn.ReLU(),
                               torch.nn.Conv2d(64, 64, 3, padding=1), torch.nn.AdaptiveAvgPool2d(1),
                               torch.nn.Flatten(), torch.nn.Linear(64, 10))
    runtimes = [("torch-eager (a small conv net)", TorchBackend("cpu", args.threads), conv),
                ("onnxruntime", OrtBackend("CPUExecutionProvider", args.threads), args.onnx)]
    if not missing_runtime("openvino"):
        runtimes.append(("openvino f32", OpenVinoBackend("f32", args.threads), args.onnx))
    for name, backend, source in runtimes:
        backend.load(source)
        for batch in (1, args.batch):
            x = np.random.default_rng(0).standard_normal((batch, *dims), np.float32)
            for _ in range(5):
                backend.predict(x)
            used = np.mean([cpu_ms_per_slice(backend, x) for _ in range(args.repeat)], axis=0)
            print(f"{name:32s} batch {batch:3d}: CPU ms per ms slept, mean of {args.repeat}, after "
                  + ", ".join(f"{a}-{b} ms {used[a:b].mean():.2f}" for a, b in SPANS))
        backend.close()


if __name__ == "__main__":
    main()
