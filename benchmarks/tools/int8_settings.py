"""int8 in onnxruntime: which of the quantizer's choices pays, measured in one run.

    ZOO_DATA=... ZOO_VERIFY=0 python benchmarks/tools/int8_settings.py resnet20 cifar10 [--calib 256]

For each setting: calibration + quantization seconds, file size, top-1 on the full test split and its change
against fp32, and throughput at batch 256 on all cores, taken as a ratio against the fp32 file timed in
alternation with it (fp32, int8, fp32, int8, ...: drift hits both alike). Prints a Markdown table.

Reported in docs/measurements.md, int8 (which quantizer setting pays).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def session(path: Path, threads: int):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def top1(sess, x: np.ndarray, y: np.ndarray) -> float:
    pred = np.concatenate([sess.run(None, {"input": x[i:i + 500]})[0].argmax(1) for i in range(0, len(x), 500)])
    return 100.0 * float((pred == y).mean())


def alternating_ratio(a, b, xb: np.ndarray, rounds: int = 7) -> tuple[float, float, float]:
    """(a img/s, b img/s, b/a) from medians of calls taken in alternation after a warm-up."""
    for s in (a, b):
        for _ in range(2):
            s.run(None, {"input": xb})
    ta, tb = [], []
    for _ in range(rounds):
        for s, t in ((a, ta), (b, tb)):
            t0 = time.perf_counter()
            s.run(None, {"input": xb})
            t.append(time.perf_counter() - t0)
    ra, rb = len(xb) / statistics.median(ta), len(xb) / statistics.median(tb)
    return ra, rb, rb / ra


SETTINGS = {
    # name: (quant_format, per_channel, activation, weight, reduce_range, keep first/last float, calib method, extra)
    "zoo today: QDQ, per-channel, u8/s8, ends float": ("QDQ", True, "QUInt8", "QInt8", False, True, "MinMax", {}),
    "QDQ, every layer int8": ("QDQ", True, "QUInt8", "QInt8", False, False, "MinMax", {}),
    "QOperator, per-channel, ends float": ("QOperator", True, "QUInt8", "QInt8", False, True, "MinMax", {}),
    "QOperator, every layer int8": ("QOperator", True, "QUInt8", "QInt8", False, False, "MinMax", {}),
    "QDQ, per-tensor, ends float": ("QDQ", False, "QUInt8", "QInt8", False, True, "MinMax", {}),
    "QDQ, s8/s8 symmetric, ends float": ("QDQ", True, "QInt8", "QInt8", False, True, "MinMax",
                                         {"ActivationSymmetric": True}),
    "QDQ, reduce_range, ends float": ("QDQ", True, "QUInt8", "QInt8", True, True, "MinMax", {}),
    "QDQ, Percentile calibration, ends float": ("QDQ", True, "QUInt8", "QInt8", False, True, "Percentile", {}),
    "QDQ, Entropy calibration, ends float": ("QDQ", True, "QUInt8", "QInt8", False, True, "Entropy", {}),
}


def quantize(fp32: Path, dst: Path, calib: np.ndarray, setting: tuple, work: Path) -> float:
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                         quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from zoo.export.convert import float_ends

    fmt, per_channel, act, wt, reduce_range, ends, method, extra = setting

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter([{"input": calib[i:i + 32]} for i in range(0, len(calib), 32)])

        def get_next(self):
            return next(self.it, None)

    t = time.perf_counter()
    pre = work / f"pre-{dst.stem}.onnx"
    quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)
    quantize_static(str(pre), str(dst), Reader(), quant_format=getattr(QuantFormat, fmt), per_channel=per_channel,
                    activation_type=getattr(QuantType, act), weight_type=getattr(QuantType, wt),
                    reduce_range=reduce_range, nodes_to_exclude=float_ends(pre) if ends else [],
                    calibrate_method=getattr(CalibrationMethod, method), extra_options=extra)
    return time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("arch")
    ap.add_argument("dataset")
    ap.add_argument("--calib", type=int, default=256)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--only", help="substring of the settings to run")
    args = ap.parse_args()

    import os

    from zoo.core.env import machine
    from zoo.core.sources import Target
    from zoo.data import DataOptions, get_dataset_spec, load_eval_set
    from zoo.export import exported

    spec = get_dataset_spec(args.dataset)
    data = DataOptions()
    fp32, _ = exported(Target(args.arch, args.dataset, pretrained=True), "fp32", data, log=lambda *a: None)
    test = load_eval_set(spec, data)
    if not test.full_split:
        sys.exit(f"needs the full {args.dataset} test split: {test.why}")
    x, y = test.normalized(spec), test.labels
    calib = load_eval_set(spec, data, split="train").take(args.calib, seed=0).normalized(spec)
    threads = os.cpu_count() or 1
    base = session(fp32, threads)
    base_acc = top1(base, x, y)
    print(f"{args.arch}.{args.dataset} on {machine()}, {threads} threads, batch {args.batch}, calibration "
          f"{args.calib} training images; fp32 top-1 {base_acc:.2f}% on {len(y)} test images, "
          f"{fp32.stat().st_size / 1e6:.3f} MB; load average before {os.getloadavg()[0]:.2f}\n")
    print("| setting | quantize s | MB | top-1 % | Δ pt | fp32 img/s | int8 img/s | int8 / fp32 |")
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name, setting in SETTINGS.items():
            if args.only and args.only not in name:
                continue
            dst = Path(tmp) / f"{len(name)}-{abs(hash(name))}.onnx"
            try:
                q_s = quantize(fp32, dst, calib, setting, Path(tmp))
            except Exception as e:  # a setting the quantizer refuses is a row that says so
                print(f"| {name} | failed: {type(e).__name__}: {str(e)[:80]} | | | | | | |")
                continue
            s = session(dst, threads)
            acc = top1(s, x, y)
            ra, rb, ratio = alternating_ratio(base, s, x[:args.batch])
            print(f"| {name} | {q_s:.1f} | {dst.stat().st_size / 1e6:.3f} | {acc:.2f} | {acc - base_acc:+.2f} | "
                  f"{ra:,.0f} | {rb:,.0f} | {ratio:.2f}x |", flush=True)
    print(f"\nload average after {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
