"""Run folder layout, the commit protocol, and recovery.

    OUT/config.json                         arch, dataset, resolved recipe, runtime, init (atomic)
    OUT/metrics.jsonl                       one line per finished epoch
    OUT/checkpoints/epoch-NNNN[-stepS]/     model.safetensors, card.json (a RunCard), state.pt
    OUT/best.safetensors, OUT/best.json     copies of the best epoch's checkpoint files
    OUT/last.json                           the commit point: the newest checkpoint and the best one's tag
    OUT/summary.json                        the finished run's summary

Commit protocol, for each checkpoint: (1) the epoch's metrics line is appended; (2) the checkpoint is
written into checkpoints/.TAG.tmp/ and renamed to checkpoints/TAG/; (3) a new best is copied to best.*;
(4) last.json is replaced atomically — this rename is the commit; (5) old checkpoints are pruned (the
newest KEEP and the best one stay). A kill anywhere before (4) leaves the previous commit current; a
resume reconciles the folder to it (reconcile()): metrics.jsonl cut to its epochs, best.* rebuilt from
the best checkpoint it names, temp files removed. A newest checkpoint that fails its hash or cannot be
read is skipped for the previous one, and the run says so. state.pt holds only tensors and plain
containers (loaded with weights_only=True).
"""

from __future__ import annotations

import fcntl
import io
import json
import os
import shutil
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from safetensors.torch import load, save

from zoo.core.cards import RunCard, check_seal, sealed
from zoo.core.errors import ZooError
from zoo.core.io import atomic_write_bytes, atomic_write_json, read_json, read_jsonl
from zoo.core.shipped import sha256_bytes

KEEP = 2  # newest checkpoints kept (besides the best one)


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


def _write_checkpoint(folder: Path, blob: bytes, card: RunCard, state: bytes) -> None:
    tmp = folder.parent / f".{folder.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        atomic_write_bytes(tmp / "model.safetensors", blob)
        atomic_write_bytes(tmp / "state.pt", state)
        atomic_write_bytes(tmp / "card.json", _card_bytes(card))
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _card_bytes(card: RunCard) -> bytes:
    return (json.dumps(sealed(card.to_json()), indent=1) + "\n").encode()


def save_checkpoint(out: Path, tag: str, weights: dict[str, torch.Tensor], card: RunCard, state: dict,
                    best: bool = False) -> Path:
    """Steps (2)-(5) of the commit protocol (see the module docstring); card.sha256 is filled in here."""
    out = Path(out)
    folder = out / "checkpoints" / tag
    blob = save(weights)
    buf = io.BytesIO()
    torch.save(state, buf)  # in memory: a full disk then fails in atomic_write_bytes, which cleans up
    card = replace(card, sha256=sha256_bytes(blob), state_sha256=sha256_bytes(buf.getvalue()))
    _write_checkpoint(folder, blob, card, buf.getvalue())
    previous = _read_last_quietly(out)
    best_tag = tag if best else (previous or {}).get("best")
    if best:
        atomic_write_bytes(out / "best.safetensors", blob)
        atomic_write_bytes(out / "best.json", _card_bytes(card))
    _commit(out, tag, card, best_tag)
    for p in checkpoint_dirs(out)[KEEP:]:
        if p.name != best_tag:
            shutil.rmtree(p, ignore_errors=True)
    return folder


def _commit(out: Path, tag: str, card: RunCard, best_tag: str | None) -> None:
    """Step (4): last.json names checkpoint `tag` (and the best one): the one atomic rename that commits."""
    atomic_write_json(Path(out) / "last.json", sealed({"tag": tag, "epoch": card.epoch, "step": card.step,
                                                       "best": best_tag, "path": f"checkpoints/{tag}",
                                                       "metrics": card.metrics}))


def checkpoint_dirs(out: Path) -> list[Path]:
    """Committed-looking checkpoint folders, newest first (tags sort by epoch, then step)."""
    folder = Path(out) / "checkpoints"
    if not folder.is_dir():
        return []
    return sorted((p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")), reverse=True)


def read_last(out: Path) -> dict | None:
    p = Path(out) / "last.json"
    if not p.is_file():
        return None
    last = read_json(p, "checkpoint pointer")
    check_seal(last, str(p))
    if not isinstance(last, dict) or not {"epoch", "step", "path"} <= set(last):
        raise ZooError(f"{p} is damaged (no epoch/step/path); resume with --resume to rebuild it from the newest "
                       f"good checkpoint, or start another --out")
    return last


def _read_last_quietly(out: Path) -> dict | None:
    try:
        return read_last(out)
    except ZooError:
        return None


def finished(last: dict | None, epochs: int) -> bool:
    """True when `last` (from read_last) closes the run's final epoch, not a mid-epoch save."""
    return last is not None and last["epoch"] >= epochs and last["step"] == 0


def _load_dir(d: Path) -> tuple[dict[str, torch.Tensor], RunCard, dict]:
    card = RunCard.from_json(read_json(d / "card.json", "checkpoint card"), str(d / "card.json"))
    try:
        blob = (d / "model.safetensors").read_bytes()
        if sha256_bytes(blob) != card.sha256:
            raise ZooError(f"checkpoint {d} is corrupt (sha256 mismatch)")
        state_bytes = (d / "state.pt").read_bytes()
        if card.state_sha256 and sha256_bytes(state_bytes) != card.state_sha256:
            raise ZooError(f"checkpoint {d} is corrupt (state.pt sha256 mismatch)")
        state = torch.load(io.BytesIO(state_bytes), map_location="cpu", weights_only=True)
        return load(blob), card, state
    except ZooError:
        raise
    except Exception as e:  # truncated or garbled state.pt / safetensors: torch and safetensors raise many types
        raise ZooError(f"checkpoint {d} cannot be read ({str(e).splitlines()[0][:80]})") from None


def load_checkpoint(out: Path, log=print) -> tuple[dict[str, torch.Tensor], RunCard, dict]:
    """(weights, card, state) of the newest checkpoint that loads and passes its hash check. When that is not
    the one last.json names, the run says so and last.json is repointed (the resume then reconciles to it)."""
    out = Path(out)
    last = _read_last_quietly(out)
    named = out / last["path"] if last else None
    order = ([named] if named else []) + [d for d in checkpoint_dirs(out) if d != named]
    problems = []
    for d in order:
        try:
            weights, card, state = _load_dir(d)
        except ZooError as e:
            problems.append(str(e))
            continue
        if problems or d != named:
            why = problems[0] if problems else f"{out / 'last.json'} is damaged"
            log(f"zoo: note: {why}; resuming from the newest good checkpoint {d.name}")
            _commit(out, d.name, card, (last or {}).get("best"))
        return weights, card, state
    if not order:
        raise ZooError(f"nothing to resume in {out}: no checkpoint; start without --resume")
    raise ZooError(f"no checkpoint in {out} can be read ({problems[0]}); start the run again in another --out")


def reconcile(out: Path, epochs_done: int) -> None:
    """Bring OUT back to its last commit: temp files removed, metrics.jsonl cut to the committed epochs, best.*
    made a copy of the best committed checkpoint (the one last.json names; in folders from before that
    record, the best kept epoch-end checkpoint), or removed when nothing committed is a best yet."""
    out = Path(out)
    remove_stale_temps(out)
    truncate_metrics(out, epochs_done)
    last = _read_last_quietly(out)
    named = out / "checkpoints" / last["best"] if last and last.get("best") else None
    if named is not None and (named / "card.json").is_file():
        return _sync_best(out, named)
    if _best_is_valid(out, epochs_done):
        return None
    cards = {d: _card(d) for d in checkpoint_dirs(out) if "-step" not in d.name}
    ends = {d: c for d, c in cards.items() if c is not None and c.epoch <= epochs_done}
    if ends:
        return _sync_best(out, max(ends, key=lambda d: ends[d].top1 or -1))
    for name in ("best.safetensors", "best.json"):
        (out / name).unlink(missing_ok=True)


def _card(d: Path) -> RunCard | None:
    try:
        return RunCard.from_json(read_json(d / "card.json"))
    except ZooError:
        return None


def _best_is_valid(out: Path, epochs_done: int) -> bool:
    try:
        card = RunCard.from_json(read_json(out / "best.json"))
        return card.epoch <= epochs_done and sha256_bytes((out / "best.safetensors").read_bytes()) == card.sha256
    except (ZooError, OSError):
        return False


def _sync_best(out: Path, d: Path) -> None:
    """best.* := the files of checkpoint folder d (only when they differ)."""
    card = (d / "card.json").read_bytes()
    if not (out / "best.json").is_file() or (out / "best.json").read_bytes() != card:
        atomic_write_bytes(out / "best.safetensors", (d / "model.safetensors").read_bytes())
        atomic_write_bytes(out / "best.json", card)


def append_metrics(out: Path, metrics: dict) -> None:
    with open(Path(out) / "metrics.jsonl", "a") as f:
        f.write(json.dumps(metrics) + "\n")
        f.flush()
        os.fsync(f.fileno())


def start_metrics(out: Path) -> dict:
    """metrics.jsonl's epoch 0: the --init weights before training (test_acc; probe_acc, a linear probe of their
    features), or {} for a run from scratch."""
    path = Path(out) / "metrics.jsonl"
    rows = read_jsonl(path, []) if path.is_file() else []
    return next((m for m in rows if m.get("epoch") == 0), {})


def start_accuracy(out: Path) -> float | None:
    """The test accuracy of the --init weights before training (metrics.jsonl's epoch 0), or None."""
    return start_metrics(out).get("test_acc")


def truncate_metrics(out: Path, epochs_done: int, log=print) -> None:
    """Keep the lines of the epochs the newest checkpoint closes: a kill between the metrics line and the
    checkpoint leaves a line for an epoch that will run again. Damaged lines are dropped, and said."""
    path = Path(out) / "metrics.jsonl"
    if not path.is_file():
        return
    bad: list[str] = []
    rows = read_jsonl(path, bad)
    damaged = len(bad) + sum(not isinstance(m.get("epoch"), int) for m in rows)
    keep = [m for m in rows if isinstance(m.get("epoch"), int) and m["epoch"] <= epochs_done]
    missing = sorted(set(range(1, epochs_done + 1)) - {m["epoch"] for m in keep})
    if damaged or missing:
        lost = f"{damaged} damaged line(s) dropped" if damaged else "lines lost"
        log(f"zoo: note: {path}: {lost}, no figures for epoch(s) {', '.join(map(str, missing)) or '-'}; the "
            f"checkpoints are intact, so training resumes as before")
    atomic_write_bytes(path, "".join(json.dumps(m) + "\n" for m in keep).encode())


def remove_stale_temps(out: Path) -> None:
    """Temp files and folders an interrupted write left behind (they are never read)."""
    for p in [*Path(out).glob(".*.tmp"), *Path(out).glob("checkpoints/.*.tmp")]:
        shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)


@contextmanager
def run_lock(out: Path, advice: str = "wait for it or use another --out"):
    """Exclusive lock on OUT for one trainer (or a publish reading it); released by the OS even on kill -9."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    f = open(out / ".lock", "a+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.seek(0)
        holder = f.read().strip() or "another process"
        f.close()
        raise ZooError(f"{out} is in use by another trainer ({holder}); {advice}") from None
    f.seek(0)
    f.truncate()
    f.write(f"pid {os.getpid()}")
    f.flush()
    try:
        yield
    finally:
        fcntl.flock(f, fcntl.LOCK_UN)
        f.close()
