"""Run folder layout and atomic checkpoint I/O.

    OUT/config.json                         resolved recipe + runtime options (atomic)
    OUT/metrics.jsonl                       one line per finished epoch
    OUT/checkpoints/epoch-NNNN[-stepS]/     model.safetensors, card.json, state.pt
    OUT/last.json                           pointer to the newest complete checkpoint (written last)
    OUT/best.safetensors, OUT/best.json     weights and card of the best test accuracy so far

A checkpoint folder is written under a temp name and renamed; last.json moves only after that, so a
kill at any moment leaves the previous checkpoint intact and pointed to.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import platform
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

import torch

from zoo.errors import ZooError

KEEP = 2  # epoch checkpoints kept besides best


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o644)  # mkstemp's 0600 would make run folders unreadable to others
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, obj) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=1, default=str) + "\n").encode())


def state_dict_of(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Plain, contiguous state dict of the underlying module (unwraps DDP and torch.compile)."""
    while hasattr(model, "module") or hasattr(model, "_orig_mod"):
        model = getattr(model, "module", None) or model._orig_mod
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}


def machine() -> str:
    """e.g. "AMD EPYC, 2 cores, AVX512-BF16": the CPU, its cores and its widest matrix/vector extension,
    which decides training speed (bf16 autocast is 4x faster than fp32 with AVX512-BF16, 10x slower without)."""
    info = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():  # the first processor's entry
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "flags"):
                info.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    cpu = info.get("model name") or platform.processor() or platform.machine()
    flags = set(info.get("flags", "").split())
    isa = next((name for flag, name in (("amx_bf16", "AMX"), ("avx512_bf16", "AVX512-BF16"), ("avx512f", "AVX512"),
                                        ("avx2", "AVX2"), ("asimd", "NEON")) if flag in flags), None)
    return f"{cpu}, {os.cpu_count()} cores" + (f", {isa}" if isa else "")


def make_card(arch: str, dataset: str, epoch: int, step: int, cfg: dict, runtime: dict, metrics: dict,
              sha256: str, num_params: int) -> dict:
    from zoo import __version__

    return {"model": arch, "dataset": dataset, "epoch": epoch, "step": step, "recipe": cfg, "runtime": runtime,
            "metrics": metrics, "sha256": sha256, "num_params": num_params, "torch": torch.__version__,
            "zoo": __version__, "machine": machine(), "date": dt.datetime.now(dt.timezone.utc).isoformat()}


def save_checkpoint(out: Path, tag: str, weights: dict[str, torch.Tensor], card: dict, state: dict) -> Path:
    """Write checkpoints/<tag>/ atomically, repoint last.json to it, prune old ones."""
    from safetensors.torch import save

    from zoo.weights import sha256_bytes

    out = Path(out)
    final = out / "checkpoints" / tag
    tmp = out / "checkpoints" / f".{tag}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    blob = save(weights)
    card = {**card, "sha256": sha256_bytes(blob)}
    for name, data in (("model.safetensors", blob), ("card.json", (json.dumps(card, indent=1) + "\n").encode())):
        atomic_write_bytes(tmp / name, data)
    torch.save(state, tmp / "state.pt")
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    atomic_write_json(out / "last.json", {"tag": tag, "epoch": card["epoch"], "step": card["step"],
                                          "path": f"checkpoints/{tag}", "metrics": card["metrics"]})
    old = sorted(p for p in (out / "checkpoints").iterdir() if p.is_dir() and not p.name.startswith("."))
    for p in old[:-KEEP]:
        if p != final:
            shutil.rmtree(p, ignore_errors=True)
    return final


def save_best(out: Path, ckpt_dir: Path) -> None:
    for src, dst in (("model.safetensors", "best.safetensors"), ("card.json", "best.json")):
        atomic_write_bytes(Path(out) / dst, (ckpt_dir / src).read_bytes())


def read_last(out: Path) -> dict | None:
    p = Path(out) / "last.json"
    if not p.is_file():
        return None
    return json.loads(p.read_text())


def finished(last: dict | None, epochs: int) -> bool:
    """True when `last` (from read_last) closes the run's final epoch, not a mid-epoch save."""
    return last is not None and last["epoch"] >= epochs and last["step"] == 0


def load_checkpoint(out: Path) -> tuple[dict[str, torch.Tensor], dict, dict]:
    """(weights, card, state) of the newest complete checkpoint; sha256 verified."""
    from safetensors.torch import load

    from zoo.weights import sha256_bytes

    last = read_last(out)
    if last is None:
        raise ZooError(f"nothing to resume in {out}: no last.json; start without --resume")
    d = Path(out) / last["path"]
    card = json.loads((d / "card.json").read_text())
    blob = (d / "model.safetensors").read_bytes()
    if sha256_bytes(blob) != card["sha256"]:
        raise ZooError(f"checkpoint {d} is corrupt (sha256 mismatch); delete it and repoint {out}/last.json")
    state = torch.load(d / "state.pt", map_location="cpu", weights_only=True)
    return load(blob), card, state


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
