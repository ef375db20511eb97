"""Training steps/s (or, with --infer, PyTorch eager inference calls/s) with glibc's default allocator
settings and with zoo.core.memory.keep_freed_memory(), each in a fresh process (the setting cannot be undone),
alternating A B A B so drift hits both alike.

    python benchmarks/tools/freed_memory.py [--pairs 3] [--infer] [ARCH:DATASET:BATCH:PRECISION:CHANNELS_LAST ...]

Prints the median step's (call's) images/s per process and the ratio per pair.

Reported in docs/measurements.md, Training throughput (freed memory kept).
"""

import argparse
import subprocess
import sys

STEP = """
import statistics, sys, time
import torch
if sys.argv[1] == "kept":
    from zoo.core.memory import keep_freed_memory
    assert keep_freed_memory(), "not glibc"
from zoo.train.fastpath import FastPath, _Candidate
from zoo.train.loop import autocast
arch, dataset, batch, precision, cl = sys.argv[2].split(":")
c = _Candidate(arch, dataset, int(batch), FastPath(precision, channels_last=cl == "1"))  # the probe's own step
step = c.step
if sys.argv[3] == "infer":
    c.net.eval()
    def step():
        t = time.perf_counter()
        with torch.inference_mode(), autocast(torch.device("cpu"), precision):
            c.net(c.x)
        return time.perf_counter() - t
for _ in range(5):
    step()
times, t0 = [], time.perf_counter()
while len(times) < 8 or (len(times) < 60 and time.perf_counter() - t0 < 5):
    times.append(step())
print(int(batch) / statistics.median(times))
"""


def run(mode: str, case: str, what: str) -> float:
    out = subprocess.run([sys.executable, "-c", STEP, mode, case, what], capture_output=True, text=True, check=True)
    return float(out.stdout.split()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("cases", nargs="*", default=["cnn:mnist:500:bf16:1", "resnet20:cifar10:256:bf16:1",
                                                 "resnet20:cifar10:256:fp32:0", "cnn:mnist:500:fp32:0"])
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--infer", action="store_true", help="time eager inference calls instead of training steps")
    args = ap.parse_args()
    what = "infer" if args.infer else "train"
    for case in args.cases:
        for _ in range(args.pairs):
            default, kept = run("default", case, what), run("kept", case, what)
            print(f"{what} {case}: default {default:,.0f} img/s, kept {kept:,.0f} img/s -> {kept / default:.2f}x",
                  flush=True)


if __name__ == "__main__":
    main()
