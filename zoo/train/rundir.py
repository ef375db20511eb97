"""Run folder layout and atomic checkpoint I/O.

    OUT/config.json                         arch, dataset, resolved recipe, runtime, init (atomic)
    OUT/metrics.jsonl                       one line per finished epoch
    OUT/checkpoints/epoch-NNNN[-stepS]/     model.safetensors, card.json (a RunCard), state.pt
    OUT/best.safetensors, OUT/best.json     weights and card of the best test accuracy so far
    OUT/last.json                           pointer to the newest complete checkpoint (written last)
    OUT/summary.json                        the finished run's summary

A checkpoint folder is written under a temp name and renamed; best.* are written next, and last.json
moves only after that, so a kill at any moment leaves the previous checkpoint intact, pointed to and
consistent with best.*. state.pt holds only tensors and plain containers (loaded with weights_only=True).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from safetensors.torch import load, save

from zoo.core.cards import RunCard
from zoo.core.errors import ZooError
from zoo.core.io import atomic_write_bytes, atomic_write_json, read_json, read_jsonl
from zoo.core.shipped import sha256_bytes

KEEP = 2  # epoch checkpoints kept besides best


def default_out(arch: str, dataset: str, recipe: str) -> Path:
    return Path("runs") / f"{arch.replace('/', '_')}.{dataset}.{recipe}"


@dataclass(frozen=True)
class RunInfo:
    path: Path
    arch: str
    dataset: str
    recipe: str


def find_runs(runs_dir: Path) -> list[RunInfo]:
    """The run folders directly under `runs_dir`, identified by their config.json (whatever their names)."""
    runs = []
    for cfg in sorted(Path(runs_dir).glob("*/config.json")):
        try:
            data = read_json(cfg, "run config")
        except ZooError:
            continue  # a damaged config is not a run we can say anything about
        arch = isinstance(data, dict) and (data.get("arch") or data.get("model"))
        if arch and data.get("dataset"):
            runs.append(RunInfo(cfg.parent, arch, data["dataset"], (data.get("recipe") or {}).get("recipe", "?")))
    return runs


def save_checkpoint(out: Path, tag: str, weights: dict[str, torch.Tensor], card: RunCard, state: dict,
                    best: bool = False) -> Path:
    """Write checkpoints/<tag>/ atomically (card.sha256 filled in), then best.* when `best`, then repoint
    last.json to it, then prune old checkpoints."""
    out = Path(out)
    final = out / "checkpoints" / tag
    tmp = out / "checkpoints" / f".{tag}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    blob = save(weights)
    card = replace(card, sha256=sha256_bytes(blob))
    card_bytes = (json.dumps(card.to_json(), indent=1) + "\n").encode()
    atomic_write_bytes(tmp / "model.safetensors", blob)
    atomic_write_bytes(tmp / "card.json", card_bytes)
    torch.save(state, tmp / "state.pt")
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    if best:
        atomic_write_bytes(out / "best.safetensors", blob)
        atomic_write_bytes(out / "best.json", card_bytes)
    atomic_write_json(out / "last.json", {"tag": tag, "epoch": card.epoch, "step": card.step,
                                          "path": f"checkpoints/{tag}", "metrics": card.metrics})
    old = sorted(p for p in (out / "checkpoints").iterdir() if p.is_dir() and not p.name.startswith("."))
    for p in old[:-KEEP]:
        if p != final:
            shutil.rmtree(p, ignore_errors=True)
    return final


def read_last(out: Path) -> dict | None:
    p = Path(out) / "last.json"
    if not p.is_file():
        return None
    last = read_json(p, "checkpoint pointer")
    if not isinstance(last, dict) or not {"epoch", "step", "path"} <= set(last):
        raise ZooError(f"{p} is damaged (no epoch/step/path); point it at a folder in {Path(out) / 'checkpoints'} "
                       f"or start a new run")
    return last


def finished(last: dict | None, epochs: int) -> bool:
    """True when `last` (from read_last) closes the run's final epoch, not a mid-epoch save."""
    return last is not None and last["epoch"] >= epochs and last["step"] == 0


def load_checkpoint(out: Path) -> tuple[dict[str, torch.Tensor], RunCard, dict]:
    """(weights, card, state) of the newest complete checkpoint; sha256 verified."""
    last = read_last(out)
    if last is None:
        raise ZooError(f"nothing to resume in {out}: no last.json; start without --resume")
    d = Path(out) / last["path"]
    card = RunCard.from_json(read_json(d / "card.json", "checkpoint card"), str(d / "card.json"))
    try:
        blob = (d / "model.safetensors").read_bytes()
        if sha256_bytes(blob) != card.sha256:
            raise ZooError(f"checkpoint {d} is corrupt (sha256 mismatch); delete it and repoint {out}/last.json")
        state = torch.load(d / "state.pt", map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError) as e:
        raise ZooError(f"checkpoint {d} cannot be read ({str(e).splitlines()[0][:80]}); delete it and repoint "
                       f"{out}/last.json at an older one") from None
    return load(blob), card, state


def append_metrics(out: Path, metrics: dict) -> None:
    with open(Path(out) / "metrics.jsonl", "a") as f:
        f.write(json.dumps(metrics) + "\n")
        f.flush()
        os.fsync(f.fileno())


def truncate_metrics(out: Path, epochs_done: int) -> None:
    """Keep the lines of the epochs the newest checkpoint closes: a kill between the metrics line and the
    checkpoint leaves a line for an epoch that will run again."""
    path = Path(out) / "metrics.jsonl"
    if path.is_file():
        keep = [m for m in read_jsonl(path) if m.get("epoch", 0) <= epochs_done]
        atomic_write_bytes(path, "".join(json.dumps(m) + "\n" for m in keep).encode())


def remove_stale_temps(out: Path) -> None:
    """Temp files and folders an interrupted write left behind (they are never read)."""
    for p in [*Path(out).glob(".*.tmp"), *Path(out).glob("checkpoints/.*.tmp")]:
        shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)


@contextmanager
def run_lock(out: Path):
    """Exclusive lock on OUT for one trainer; released by the OS even on kill -9."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    f = open(out / ".lock", "a+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.seek(0)
        holder = f.read().strip() or "another process"
        f.close()
        raise ZooError(f"{out} is in use by another trainer ({holder}); wait for it or use another --out") from None
    f.seek(0)
    f.truncate()
    f.write(f"pid {os.getpid()}")
    f.flush()
    try:
        yield
    finally:
        fcntl.flock(f, fcntl.LOCK_UN)
        f.close()
