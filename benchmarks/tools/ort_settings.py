"""zoo's onnxruntime session against the other session settings one could pick, batch-1 p50:
is the latency `zoo bench` reports within 10% of the best this file can do in onnxruntime?

    python benchmarks/tools/ort_settings.py exports/resnet20.cifar10.onnx [--threads 2]

Every setting gets its own session; calls are taken in rounds that visit every session in turn (A B C ...,
A B C ...), so drift hits all alike; each figure is the median of its calls. Prints a Markdown table.

Reported in docs/measurements.md, Inference across runtimes (the harness against the runtimes' own tools).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np


def settings(threads: int) -> dict:
    import onnxruntime as ort

    def so(**kw):
        o = ort.SessionOptions()
        o.intra_op_num_threads = kw.pop("threads", threads)
        o.graph_optimization_level = kw.pop("level", ort.GraphOptimizationLevel.ORT_ENABLE_ALL)
        if kw.pop("parallel", False):
            o.execution_mode = ort.ExecutionMode.ORT_PARALLEL
        if not kw.pop("arena", True):
            o.enable_cpu_mem_arena = False
        for k, v in kw.pop("entries", {}).items():
            o.add_session_config_entry(k, v)
        return o

    return {
        "zoo (core.sessions.ort_session)": None,
        f"{threads} threads, ORT_ENABLE_ALL (ORT's defaults but threads)": so(),
        "1 thread": so(threads=1),
        "no spinning": so(entries={"session.intra_op.allow_spinning": "0"}),
        "ORT_ENABLE_EXTENDED": so(level=ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED),
        "ORT_ENABLE_BASIC": so(level=ort.GraphOptimizationLevel.ORT_ENABLE_BASIC),
        "parallel execution mode": so(parallel=True),
        "no memory arena": so(arena=False),
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("onnx")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--rounds", type=int, default=40)
    ap.add_argument("--calls", type=int, default=25, help="calls per session per round")
    args = ap.parse_args()

    import onnxruntime as ort

    from zoo.core.env import machine
    from zoo.core.sessions import ort_session

    sessions = {}
    for name, so in settings(args.threads).items():
        sessions[name] = ort_session(args.onnx, threads=args.threads) if so is None else \
            ort.InferenceSession(args.onnx, so, providers=["CPUExecutionProvider"])
    shape = [d if isinstance(d, int) else 1 for d in next(iter(sessions.values())).get_inputs()[0].shape]
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    times = {n: [] for n in sessions}
    for s in sessions.values():  # warm-up
        for _ in range(50):
            s.run(None, {"input": x})
    load0 = os.getloadavg()[0]
    for _ in range(args.rounds):
        for n, s in sessions.items():
            for _ in range(args.calls):
                t = time.perf_counter()
                s.run(None, {"input": x})
                times[n].append(time.perf_counter() - t)
    p50 = {n: statistics.median(t) * 1e3 for n, t in times.items()}
    best = min(p50.values())
    print(f"{args.onnx} on {machine()}, onnxruntime {ort.__version__}, batch 1, {args.rounds} rounds x {args.calls} "
          f"calls per setting; load average {load0:.2f} before, {os.getloadavg()[0]:.2f} after\n")
    print("| session setting | p50 ms | vs the best |")
    print("|---|---|---|")
    for n, v in sorted(p50.items(), key=lambda kv: kv[1]):
        print(f"| {n} | {v:.4f} | {v / best:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
