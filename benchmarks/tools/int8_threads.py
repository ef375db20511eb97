"""Is int8's batch-256 gain over fp32 a threading artefact? (onnxruntime, int8 vs fp32)

    python benchmarks/tools/int8_threads.py FOLDER   # holds MODEL.DATASET.onnx and MODEL.DATASET-int8.onnx (zoo export)

Times both files at batch 256 three ways, in five interleaved rounds of 1-s turns: one session with every core's
threads, one session with 1 thread, and two concurrent 1-thread runs of half the batch each; prints images/s and
int8 / fp32 per way.

Reported in docs/measurements.md, int8.
"""

from __future__ import annotations

import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np


def main(folder: Path, batch: int = 256, rounds: int = 5) -> None:
    from zoo.core.sessions import ort_session as _session  # the session zoo bench's onnxruntime rows time

    fp32 = next(f for f in folder.glob("*.onnx") if "-" not in f.stem)
    files = {"fp32": fp32, "int8": fp32.with_name(fp32.stem + "-int8.onnx")}
    cores = os.cpu_count() or 1
    pool = ThreadPoolExecutor(cores)
    shape = [batch, *_session(fp32, threads=1).get_inputs()[0].shape[1:]]
    x = np.random.default_rng(0).standard_normal(shape, np.float32)
    halves = np.array_split(x, cores)
    cases = {}
    for prec, path in files.items():
        many, one = _session(path, threads=cores), _session(path, threads=1)
        cases[(prec, f"1 session x {cores} threads")] = lambda s=many: s.run(None, {"input": x})
        cases[(prec, "1 session x 1 thread")] = lambda s=one: s.run(None, {"input": x})
        cases[(prec, f"{cores} concurrent runs x 1 thread")] = \
            lambda s=one: list(pool.map(lambda h: s.run(None, {"input": h}), halves))
    rates = {k: [] for k in cases}
    for f in cases.values():
        f()
    for _ in range(rounds):
        for k, f in cases.items():
            time.sleep(0.05)
            f()
            t0, n = time.perf_counter(), 0
            while time.perf_counter() - t0 < 1.0:
                f()
                n += 1
            rates[k].append(batch * n / (time.perf_counter() - t0))
    med = {k: float(np.median(v)) for k, v in rates.items()}
    for way in dict.fromkeys(w for _, w in cases):
        print(f"{way:32s} fp32 {med['fp32', way]:8,.0f}  int8 {med['int8', way]:8,.0f} img/s  "
              f"int8/fp32 {med['int8', way] / med['fp32', way]:.2f}x")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
