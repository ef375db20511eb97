"""Timing and accuracy measurements over any Backend.

Warm-up runs until the latency is stable (the median of the last WINDOW calls moves < 2% from the window
before), at least `warmup` calls and at most MAX_WARMUP_S seconds; then `runs` timed calls (by default as many
as latency_calls says) give the percentiles and a noise figure, the relative interquartile range
(p75 - p25) / p50.

Several runtimes are timed in rounds (A B C A B C ..., ROUNDS of them), so that a machine whose speed drifts
during a report (another process, a frequency change) slows every runtime alike instead of whichever ran
then; the first WINDOW calls of each turn are not timed (they pay for the caches the previous runtime took).
"""

from __future__ import annotations

import math
import time

import numpy as np

WINDOW = 10  # calls per warm-up window
STABLE = 0.02  # relative change of the window median that counts as stable
MAX_WARMUP_S = 5.0  # warm-up never takes longer than this
NOISY = 0.10  # relative IQR above which a row is flagged as noisy
ACCURACY_LOSS = 0.5  # top-1 points lost against PyTorch fp32 that flag a row (fast but wrong)
BUSY = 0.15  # share of the machine's CPU other processes used while a row's latency was timed that flags it
ROUNDS = 5  # turns every runtime takes when several are timed together
# Timed batch-1 calls when no count is asked for: at least MIN_RUNS, and up to TAIL_RUNS while they fit in
# LATENCY_BUDGET_S, so that p99 rests on >= 10 calls wherever a call takes <= 1 ms. p99 of 200 calls is the
# second-slowest: over consecutive blocks of one run of 24,000 calls (resnet20.cifar10 in onnxruntime, AMD EPYC,
# 2 threads, 0.51 ms p50) the p99 of 200-call blocks spread 1.49x (p90/p10 of the blocks; max/min 5.6x), of
# 1,000-call blocks 1.21x (1.5x), while p50 spread 1.13x and 1.11x (the machine's own drift).
MIN_RUNS = 200
TAIL_RUNS = 1000
LATENCY_BUDGET_S = 1.0
MIN_TURN_S = 0.05  # the shortest throughput turn (seconds)
# Between two runtimes' turns the process sleeps until the previous runtime's threads stop spinning: QUIET_SLICES
# slices of SETTLE_SLICE_S in a row in which the whole process used under QUIET of one core, at most SETTLE_MAX_S.
# Measured after a call (benchmarks/tools/spin_tail.py, AMD EPYC, 2 threads): onnxruntime's pool spins ~40 ms (85 ms at
# worst), PyTorch's OpenMP pool ~10 ms, OpenVINO's ~1 ms; a fixed 50 ms pause waited too long after two of them
# and too short after onnxruntime's worst. Linux adds a thread's CPU time to the process's at scheduler ticks
# (every 4 ms there: a spinning thread shows as 4 ms every 4th millisecond), so quiet must last 15 ms: longer
# than a tick even at 100 Hz.
SETTLE_SLICE_S = 0.005
QUIET_SLICES = 3
SETTLE_MAX_S = 0.2
QUIET = 0.1
# A throughput call at least this long ends the warm-up (_warm_call_s), and its turns start without an untimed
# call: it would cost a whole call (up to seconds) per turn, and buys nothing once eager keeps its freed memory
# (zoo.core.memory). ResNet-18 at batch 256, AMD EPYC, 2 threads, three alternations of throughput_rounds
# (`python benchmarks/tools/untimed_call.py resnet18.cifar10.onnx`): eager alone 269 / 289 / 255 img/s; beside
# onnxruntime with the untimed call 273 / 258 / 266 (onnxruntime 344 / 338 / 333), without it 258 / 271 / 271
# (324 / 348 / 340). Before eager kept its freed memory, the first eager call after onnxruntime's turn ran slow
# on that EPYC (alone 121-125, beside onnxruntime without the untimed call 107-116, with it 113-139), and
# the call had been put back for every turn; on an Intel Xeon with AMX it had made no difference either way.
LONG_CALL_S = 0.25


def call_ms(backend, x: np.ndarray) -> float:
    """One call's wall time in milliseconds."""
    t0 = time.perf_counter()
    backend.predict(x)
    return (time.perf_counter() - t0) * 1e3


def warm_up(backend, x: np.ndarray, min_calls: int) -> tuple[int, float]:
    """Calls until the latency is stable (see the module docstring); returns how many were made and the last
    window's median (ms)."""
    start, calls, previous = time.perf_counter(), 0, None
    while True:
        window = [call_ms(backend, x) for _ in range(WINDOW)]
        calls += WINDOW
        median = float(np.median(window))
        stable = previous is not None and abs(median - previous) <= STABLE * previous
        if (calls >= min_calls and stable) or time.perf_counter() - start > MAX_WARMUP_S:
            return calls, median
        previous = median


def latency_calls(call_ms: float, runs: int | None) -> int:
    """Timed batch-1 calls: `runs` when asked for, else MIN_RUNS to TAIL_RUNS (see there)."""
    if runs is not None:
        return runs
    return max(MIN_RUNS, min(TAIL_RUNS, round(LATENCY_BUDGET_S * 1e3 / max(call_ms, 1e-6))))


def _start_turn(backends: list, b, x: np.ndarray, untimed: int) -> None:
    """Before a runtime's turn among several: idle until the previous one's worker threads stop spinning
    (onnxruntime's and PyTorch's pools spin after a call and take the CPU from the next runtime's calls),
    then `untimed` calls to refill the caches the previous runtime used and wake this one's thread pool."""
    if len(backends) > 1:
        settle()
        for _ in range(untimed):
            b.predict(x)


def settle(max_s: float = SETTLE_MAX_S) -> float:
    """Sleep until this process's threads are quiet (see SETTLE_SLICE_S); returns the seconds waited."""
    start, quiet = time.perf_counter(), 0
    while quiet < QUIET_SLICES and time.perf_counter() - start < max_s:
        c0, t0 = time.process_time(), time.perf_counter()
        time.sleep(SETTLE_SLICE_S)
        quiet = quiet + 1 if time.process_time() - c0 <= QUIET * (time.perf_counter() - t0) else 0
    return time.perf_counter() - start


def _latency_stats(t: np.ndarray, warm: int) -> dict[str, float]:
    p25, p50, p75 = np.percentile(t, [25, 50, 75])
    return {"p50": float(p50), "p90": float(np.percentile(t, 90)), "p99": float(np.percentile(t, 99)),
            "mean": float(t.mean()), "iqr_rel": float((p75 - p25) / p50) if p50 > 0 else 0.0, "warmup_calls": warm,
            "calls": len(t)}


def latency_ms(backend, x: np.ndarray, warmup: int, runs: int | None) -> dict[str, float]:
    """Per-call latency percentiles (ms) of backend.predict(x) after a warm-up, and the noise figure."""
    return latency_rounds([backend], x, warmup, runs, rounds=1)[0]


def latency_rounds(backends: list, x: np.ndarray, warmup: int, runs: int | None, rounds: int = ROUNDS) -> list[dict]:
    """latency_ms of every backend, timed in interleaved rounds of 1/rounds of its calls each (module docstring)."""
    warm = [warm_up(b, x, warmup) for b in backends]
    counts = [latency_calls(ms, runs) for _, ms in warm]
    rounds = max(1, min(rounds, *counts))
    times: list[list[float]] = [[] for _ in backends]
    for r in range(rounds):
        for b, t, n in zip(backends, times, counts):
            _start_turn(backends, b, x, WINDOW)
            t += [call_ms(b, x) for _ in range(n // rounds + (r < n % rounds))]
    return [_latency_stats(np.array(t), warm_calls) for t, (warm_calls, _) in zip(times, warm)]


def throughput(backend, x: np.ndarray, warmup: int, runs: int) -> float:
    """Images per second at batch len(x)."""
    return throughput_rounds([backend], x, warmup, runs, rounds=1)[0]


def throughput_rounds(backends: list, x: np.ndarray, warmup: int, runs: int, rounds: int = ROUNDS) -> list[float]:
    """Images per second of every backend at batch len(x), in interleaved rounds: at least `runs` timed calls
    each, and each turn at least MIN_TURN_S long (a turn of one 0.5 ms call measures the switch, not the
    runtime: a small batch gets as many calls as fill the turn), after one untimed call unless its calls take
    LONG_CALL_S or more (see there)."""
    rounds = max(1, min(rounds, runs))
    per_turn, untimed = [], []
    for b in backends:
        call_s = _warm_call_s(b, x, max(2, warmup // 10 + 1))
        per_turn.append(max(-(-runs // rounds), math.ceil(MIN_TURN_S / max(call_s, 1e-6))))
        untimed.append(0 if call_s >= LONG_CALL_S else 1)
    seconds = [0.0] * len(backends)
    for _ in range(rounds):
        for i, b in enumerate(backends):
            _start_turn(backends, b, x, untimed[i])
            t0 = time.perf_counter()
            for _ in range(per_turn[i]):
                b.predict(x)
            seconds[i] += time.perf_counter() - t0
    return [rounds * n * len(x) / s for n, s in zip(per_turn, seconds)]


def _warm_call_s(backend, x: np.ndarray, calls: int) -> float:
    """Seconds of the last of `calls` (>= 2) calls: the first allocates (and some runtimes specialize to the
    shape); stops early after a call of LONG_CALL_S or more, and after the first when it took twice that: a
    first call costs at most ~1.5x a later one, so such a call is surely long, and the next one is already
    steady (ResNet-18 at batch 256, AMD EPYC, 2 threads: eager 2.96 then 2.13, 2.01, 2.07 s; OpenVINO 1.00
    then 0.67, 0.69; onnxruntime 0.79 then 0.80, 0.73)."""
    call_s = call_ms(backend, x) / 1e3
    if call_s >= 2 * LONG_CALL_S:
        return call_s
    for _ in range(calls - 1):
        call_s = call_ms(backend, x) / 1e3
        if call_s >= LONG_CALL_S:
            break
    return call_s


def predictions(backend, images: np.ndarray, batch: int = 500) -> np.ndarray:
    """Top-1 class per image."""
    return np.concatenate([backend.predict(images[i:i + batch]).argmax(1) for i in range(0, len(images), batch)])


def top1(backend, images: np.ndarray, labels: np.ndarray, batch: int = 500) -> float:
    return float(100.0 * (predictions(backend, images, batch) == labels).mean())


def flags(lat: dict, load: float, torch_change: float | None = None) -> list[str]:
    """Why a row should not be trusted as it stands: timed under load, noisy, or losing accuracy."""
    out = []
    if torch_change is not None and torch_change < -ACCURACY_LOSS:
        out.append(f"accuracy {torch_change:+.2f} pt vs PyTorch fp32")
    if load >= BUSY:
        out.append(f"busy (others used {load:.0%} of the CPU)")
    if lat["iqr_rel"] > NOISY:
        out.append(f"noisy (IQR {100 * lat['iqr_rel']:.0f}% of p50)")
    return out
