"""Timing and accuracy measurements over any Backend."""

from __future__ import annotations

import time

import numpy as np


def latency_ms(backend, x: np.ndarray, warmup: int, runs: int) -> dict[str, float]:
    """Per-call latency percentiles (ms) of backend.predict(x) after `warmup` calls."""
    for _ in range(warmup):
        backend.predict(x)
    t = np.empty(runs)
    for i in range(runs):
        t0 = time.perf_counter()
        backend.predict(x)
        t[i] = time.perf_counter() - t0
    t *= 1e3
    return {"p50": float(np.percentile(t, 50)), "p90": float(np.percentile(t, 90)),
            "p99": float(np.percentile(t, 99)), "mean": float(t.mean())}


def throughput(backend, x: np.ndarray, warmup: int, runs: int) -> float:
    """Images per second at batch len(x)."""
    for _ in range(max(1, warmup // 10)):
        backend.predict(x)
    t0 = time.perf_counter()
    for _ in range(runs):
        backend.predict(x)
    return runs * len(x) / (time.perf_counter() - t0)


def top1(backend, images: np.ndarray, labels: np.ndarray, batch: int = 500) -> float:
    pred = np.concatenate([backend.predict(images[i:i + batch]).argmax(1) for i in range(0, len(images), batch)])
    return float(100.0 * (pred == labels).mean())
