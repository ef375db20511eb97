"""The deployment recommendation, remembered per weights and machine: `zoo bench` writes it (zoo.bench.recommend),
`zoo predict --runtime auto` reads it.

    key = deploy_key(weights_sha256, export_revision, threads, tta)
    remember(key, {"model": "resnet20.cifar10", "latency": {...}, "throughput": {...}})
    entry, note = recall(weights_sha256, export_revision, threads, tta)   # note: why there is none, or a stale one

A recommendation holds only where it was measured: the key names the weights (their sha256) and the test-time
augmentation inside the graph (one file of the weights may run six passes per image, another one), the exporter's
revision, the CPU (model, cores, widest extension, and a hash of all its flags), the runtimes' versions and
the threads. An entry for the same weights under another key is stale: ignored, and said.
"""

from __future__ import annotations

import hashlib
import json
import os
from math import inf
from importlib import metadata

from zoo.core.env import cpu_info, machine, now
from zoo.core.io import atomic_write_json, cache_dir, waiting_lock
from zoo.core.runtimes import FILE_RUNTIMES, RUNTIMES
from zoo.core.tta import Tta

RUNTIME_DISTRIBUTIONS = {name: RUNTIMES[name].distributions for name in FILE_RUNTIMES}


def runtime_name(label: str) -> str:
    """A bench row's runtime as `--runtime` names it: "openvino (bf16)" -> "openvino"."""
    return label.split(" (")[0]


def openvino_hint(label: str) -> str | None:
    """The precision hint that gives a row again: "f32" for `openvino (f32)`, else None (OpenVINO's default)."""
    return "f32" if label == "openvino (f32)" else None


def cache_file():
    return cache_dir("deploy.json")


def _version(names: tuple[str, ...]) -> str:
    for name in names:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return "-"


def machine_id() -> str:
    """The CPU as a recommendation depends on it: name, cores, widest extension, and a hash of every flag."""
    flags = " ".join(sorted(cpu_info().get("flags", ())))
    return f"{machine()} [flags {hashlib.sha256(flags.encode()).hexdigest()[:8]}]"


def versions() -> str:
    return ", ".join(f"{k} {_version(v)}" for k, v in RUNTIME_DISTRIBUTIONS.items())


def _weights_id(weights_sha256: str, tta: str) -> str:
    return f"{weights_sha256[:16]} tta {Tta.of(tta).label}"


def deploy_key(weights_sha256: str, export_revision, threads: int | None, tta: str = "") -> str:
    return " | ".join([_weights_id(weights_sha256, tta), f"export r{export_revision}", machine_id(), versions(),
                       f"{threads or os.cpu_count()} threads"])


MAX_CACHE_BYTES = 16 << 20  # ~10,000 entries; a larger file is not zoo's


def _valid(entry) -> bool:
    """An entry as zoo.bench.recommend makes it: each choice names a runtime and a precision, and its figures,
    where it has them, are finite numbers."""
    def number(v) -> bool:
        return v is None or (isinstance(v, (int, float)) and not isinstance(v, bool) and v == v and abs(v) != inf)

    def choice(c) -> bool:
        return isinstance(c, dict) and isinstance(c.get("runtime"), str) and isinstance(c.get("precision"), str) \
            and all(number(c.get(k)) for k in ("p50_ms", "img_s", "batch", "speedup", "speedup_vs_eager"))
    return isinstance(entry, dict) and choice(entry.get("latency")) and choice(entry.get("throughput"))


def _read() -> dict:
    """The cache's entries that have the shape zoo writes; a damaged file or entry is measured afresh, never
    trusted (and never a traceback)."""
    try:
        path = cache_file()
        if not path.is_file() or path.stat().st_size > MAX_CACHE_BYTES:
            return {}
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in data.items() if _valid(v)} if isinstance(data, dict) else {}


def remember(key: str, entry: dict) -> bool:
    """Store a recommendation (read, change, write under a lock: concurrent benches keep each other's). A
    provisional one (timed on a busy machine) does not replace one measured cleanly; a clean one replaces
    either. Returns whether it was stored."""
    with waiting_lock(cache_file().with_name("deploy.lock")):
        data = _read()
        old = data.get(key)
        if entry.get("provisional") and old is not None and not old.get("provisional"):
            return False
        data[key] = {**entry, "measured": now()}
        atomic_write_json(cache_file(), data)
    return True


def recall(weights_sha256: str | None, export_revision, threads: int | None,
           tta: str = "") -> tuple[dict | None, str]:
    """(the recommendation for these weights and test-time augmentation on this machine, or None and why: none
    yet, or one measured elsewhere, named)."""
    if not weights_sha256:
        return None, "the file names no weights sha256"
    data = _read()
    key = deploy_key(weights_sha256, export_revision, threads, tta)
    entry = data.get(key)
    if isinstance(entry, dict):
        return entry, ""
    stale = [k for k in data if k.startswith(_weights_id(weights_sha256, tta) + " |")]
    if stale:
        return None, (f"the recommendation for these weights was measured elsewhere ({stale[0].split(' | ', 1)[1]}; "
                      f"here: {key.split(' | ', 1)[1]}), so it is ignored")
    return None, "no recommendation for these weights on this machine yet"


def unused_here(key: str) -> str:
    """Why a remembered key is not used on this machine ('' when it is: threads aside, which a call names)."""
    parts = key.split(" | ")
    if len(parts) != 5 or " tta " not in parts[0]:
        return "written by an older zoo: bench again"
    if parts[2] != machine_id():
        return "another machine: not used here"
    if parts[3] != versions():
        return "other runtime versions: not used here"
    threads = parts[4].split(" ")[0]
    if threads != str(os.cpu_count()):  # zoo predict's default is every core
        return f"measured with {threads} threads: used by zoo predict --threads {threads}"
    return ""


def entries() -> list[tuple[str, dict]]:
    """Every remembered recommendation, for `zoo list --deploy`."""
    return sorted((k, v) for k, v in _read().items() if isinstance(v, dict))
