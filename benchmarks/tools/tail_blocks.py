"""How many batch-1 calls a latency percentile needs: one long run of onnxruntime calls on FILE.onnx, cut into
consecutive blocks of 200, 1,000 and 2,000 calls; for p50, p90 and p99, how far the blocks' figures spread
(p90/p10 over the blocks, and max/min). A spread that shrinks with the block is sampling error (more calls
cure it); one that does not is the machine's own drift. zoo.bench.measure.latency_calls rests on this.

    python benchmarks/tools/tail_blocks.py FILE.onnx [--calls 24000] [--threads 2]

Reported in docs/measurements.md, What we tried and why it was not kept.
"""

from __future__ import annotations

import argparse
import os

import numpy as np
import onnx

from zoo.bench.backends import OrtBackend
from zoo.bench.measure import call_ms


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("onnx")
    ap.add_argument("--calls", type=int, default=24_000)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    args = ap.parse_args()
    dims = [d.dim_value for d in onnx.load(args.onnx).graph.input[0].type.tensor_type.shape.dim[1:]]
    backend = OrtBackend("CPUExecutionProvider", args.threads).load(args.onnx)
    x = np.random.default_rng(0).standard_normal((1, *dims), np.float32)
    for _ in range(500):
        backend.predict(x)
    t = np.array([call_ms(backend, x) for _ in range(args.calls)])
    for n in (200, 1000, 2000):
        blocks = t[: len(t) // n * n].reshape(-1, n)
        for q in (50, 90, 99):
            v = np.percentile(blocks, q, axis=1)
            print(f"{n:5d}-call blocks ({len(v)}): p{q} median {np.median(v):.3f} ms, spread "
                  f"{np.percentile(v, 90) / np.percentile(v, 10):.2f}x (p90/p10), {v.max() / v.min():.2f}x (max/min)")


if __name__ == "__main__":
    main()
