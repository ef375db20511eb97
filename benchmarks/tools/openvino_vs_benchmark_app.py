"""zoo's OpenVINO rows against OpenVINO's own `benchmark_app` on the same file and threads (within
10%?): batch-1 median latency and batch-256 throughput, f32 and the CPU's default precision.

    python benchmarks/tools/openvino_vs_benchmark_app.py FILE.onnx [--threads 2] [--seconds 10]

benchmark_app runs one synchronous request on one stream of --threads threads (as zoo's backend does; its UI
wants `-hint none` for -nthreads), for --seconds per
figure; zoo's figures come from zoo.bench.measure (the latency p50 after its warm-up; images/s over as many
batch-256 calls as fit in the same seconds). Prints a Markdown table with the ratios.

Reported in docs/measurements.md, Inference across runtimes (the harness against the runtimes' own tools).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys

import numpy as np


def benchmark_app(path: str, batch: int, precision: str | None, threads: int, seconds: int) -> tuple[float, float]:
    """(median latency ms, images/s) as benchmark_app reports them."""
    tool = shutil.which("benchmark_app", path=os.path.dirname(sys.executable)) or shutil.which("benchmark_app")
    if tool is None:
        sys.exit("benchmark_app not found: pip install openvino (it ships the tool)")
    cmd = [tool, "-m", path, "-d", "CPU", "-api", "sync", "-hint", "none", "-nstreams", "1", "-nthreads", str(threads),
           "-t", str(seconds), "-data_shape", f"input[{batch},3,32,32]"]
    if precision:
        cmd += ["-infer_precision", precision]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    value, unit = re.search(r"Median:\s+([\d.]+) (ms|us)", out).groups()
    median = float(value) / (1000 if unit == "us" else 1)
    fps = float(re.search(r"Throughput:\s+([\d.]+) FPS", out).group(1))
    return median, fps


def zoo_figures(path: str, batch: int, precision: str | None, threads: int, seconds: int) -> tuple[float, float]:
    import time

    from zoo.bench.measure import latency_ms
    from zoo.core.backends import OpenVinoBackend

    backend = OpenVinoBackend(precision, threads).load(path)
    x = np.random.default_rng(0).standard_normal((batch, 3, 32, 32), np.float32)
    if batch == 1:
        return latency_ms(backend, x, 20, 2000)["p50"], float("nan")
    for _ in range(3):
        backend.predict(x)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        backend.predict(x)
        n += 1
    return float("nan"), n * batch / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("onnx")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seconds", type=int, default=10)
    a = ap.parse_args()
    print("| precision | batch | benchmark_app | zoo | zoo / benchmark_app |\n|---|---|---|---|---|")
    for precision in ("f32", None):
        for batch in (1, 256):
            ref = benchmark_app(a.onnx, batch, precision, a.threads, a.seconds)
            ours = zoo_figures(a.onnx, batch, precision, a.threads, a.seconds)
            i, unit = (0, "ms p50") if batch == 1 else (1, "img/s")
            print(f"| {precision or 'default'} | {batch} | {ref[i]:,.3f} {unit} | {ours[i]:,.3f} {unit} | "
                  f"{ours[i] / ref[i]:.2f} |", flush=True)


if __name__ == "__main__":
    main()
