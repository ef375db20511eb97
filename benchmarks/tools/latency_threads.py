"""How repeatable batch-1 latency is at each thread count (can two runs agree within 10%?).

    python benchmarks/tools/latency_threads.py FILE.onnx [--windows 6] [--gap 10]

Times onnxruntime's batch-1 p50 at 1 and at all cores' threads in interleaved rounds (zoo.bench.measure),
once per window, `--gap` seconds apart, and prints each window's p50s, then each thread count's spread over
the windows: (max - min) / min. On a 2-vCPU VM the 2-thread p50 spread 46% over six windows seconds apart,
the 1-thread p50 15% (docs/measurements.md).

Reported in docs/measurements.md, What we tried and why it was not kept.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np


def main() -> None:
    from zoo.bench.measure import latency_rounds
    from zoo.core.backends import OrtBackend

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("onnx")
    ap.add_argument("--windows", type=int, default=6)
    ap.add_argument("--gap", type=float, default=10.0, help="seconds between two windows")
    args = ap.parse_args()
    counts = sorted({1, os.cpu_count() or 1})
    backends = [OrtBackend("CPUExecutionProvider", n).load(args.onnx) for n in counts]
    shape = [1, *backends[0].sess.get_inputs()[0].shape[1:]]
    x = np.random.default_rng(0).standard_normal(shape, np.float32)
    p50s = {n: [] for n in counts}
    for w in range(args.windows):
        for n, lat in zip(counts, latency_rounds(backends, x, warmup=20, runs=200)):
            p50s[n].append(lat["p50"])
        print(time.strftime("%H:%M:%S"), "  ".join(f"{n} thread(s) p50 {p50s[n][-1]:.3f} ms" for n in counts),
              flush=True)
        if w < args.windows - 1:
            time.sleep(args.gap)
    for n in counts:
        v = p50s[n]
        print(f"{n} thread(s): p50 {min(v):.3f}-{max(v):.3f} ms over {len(v)} windows, spread "
              f"{100 * (max(v) - min(v)) / min(v):.0f}%")


if __name__ == "__main__":
    main()
