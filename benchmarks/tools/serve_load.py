"""zoo serve under a bounded load: requests per second and images per model call, with dynamic batching and
without (--max-batch 1), each setting served by a fresh process on loopback, A B A B.

    python benchmarks/tools/serve_load.py resnet20 cifar10 --clients 16 --requests 400

One request is one shipped sample image as the raw body; the clients send back to back from threads of this
process. The figures: requests/s over the whole run, the median and p99 request latency, and the mean images
per model call from the server's /metrics.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

SAMPLES = Path(__file__).resolve().parents[2] / "weights" / "samples"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(model: str, dataset: str, extra: list[str]) -> tuple[subprocess.Popen, str]:
    port = _port()
    proc = subprocess.Popen([sys.executable, "-m", "zoo.cli", "serve", model, dataset, "--port", str(port), *extra],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=os.environ)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=2) as r:
                if r.status == 200:
                    return proc, url
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("the server did not become ready")


def _load(url: str, image: bytes, clients: int, requests: int) -> dict:
    def one(_):
        t0 = time.perf_counter()
        with urllib.request.urlopen(urllib.request.Request(url + "/v1/predict", data=image), timeout=60) as r:
            r.read()
        return time.perf_counter() - t0

    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        times = np.array(list(pool.map(one, range(requests))))
    wall = time.perf_counter() - t0
    metrics = urllib.request.urlopen(url + "/metrics").read().decode().splitlines()
    calls = float(next(ln.split()[-1] for ln in metrics if ln.startswith("zoo_batch_images_count")))
    images = float(next(ln.split()[-1] for ln in metrics if ln.startswith("zoo_batch_images_sum")))
    return {"req_s": requests / wall, "p50_ms": 1e3 * np.median(times), "p99_ms": 1e3 * np.percentile(times, 99),
            "per_call": images / calls}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model"), ap.add_argument("dataset")
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--requests", type=int, default=400)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    image = sorted((SAMPLES / args.dataset).glob("*.png"))[0].read_bytes()
    settings = {"batching (defaults)": [], "no batching (--max-batch 1)": ["--max-batch", "1"]}
    for r in range(args.rounds):
        for label, extra in settings.items():
            proc, url = _serve(args.model, args.dataset, extra)
            try:
                _load(url, image, args.clients, min(50, args.requests))  # warm-up, not counted
                fig = _load(url, image, args.clients, args.requests)
            finally:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=60)
            print(f"round {r + 1} {label}: {fig['req_s']:.0f} req/s, p50 {fig['p50_ms']:.1f} ms, p99 "
                  f"{fig['p99_ms']:.1f} ms, {fig['per_call']:.1f} images per model call (warm-up included)",
                  flush=True)


if __name__ == "__main__":
    main()
