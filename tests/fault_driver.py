"""Test-side fault injection for `zoo train` (run by tests/test_faults.py, not imported by zoo).

    python tests/fault_driver.py MODE DATA_ROOT WORK [K ...]

Every write boundary of a training run — each temp file created, each fsync'd temp write, each rename, each
torch.save, each metrics append, each removal — is counted before and after it happens. MODE kill sends the
trainer a real SIGKILL at boundary K; MODE enospc makes boundary K fail with "No space left on device".
Each faulty run happens in a forked child; another child then resumes it, and the driver compares the folder
with an undisturbed run: same final weights, one metrics line per epoch, best.* matching the metrics, no temp
files. It prints one JSON line with the results. The parent only forks and reads files (no torch op runs in
it, so forking after `import torch` is safe).
"""

import errno
import hashlib
import json
import random
import os
import shutil
import signal
import sys
from pathlib import Path

import torch

import zoo.core.env
import zoo.train.rundir as rundir
from zoo.cli import main

ARGS = ["train", "mlp", "mnist", "--recipe", "fast", "--epochs", "2", "--batch-size", "100", "--save-every", "0",
        "--precision", "fp32", "--compile", "off", "--no-verify"]
STATE = {"count": 0, "at": None, "mode": "kill"}


def _tick(before: bool) -> None:
    STATE["count"] += 1
    if STATE["count"] == STATE["at"]:
        if STATE["mode"] == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        elif before:  # enospc: the write itself fails
            raise OSError(errno.ENOSPC, "No space left on device")


def _wrap(fn):
    def wrapped(*args, **kwargs):
        _tick(True)
        out = fn(*args, **kwargs)
        _tick(False)
        return out
    return wrapped


def _instrument() -> None:
    for mod, name in ((os, "replace"), (os, "fchmod"), (os, "fsync"), (torch, "save"), (shutil, "rmtree"),
                      (rundir, "append_metrics")):
        setattr(mod, name, _wrap(getattr(mod, name)))


def _child(argv: list[str], at: int | None, mode: str, log: Path) -> int:
    """Run `zoo ARGV` in a forked child; its exit status (negative: killed by that signal)."""
    pid = os.fork()
    if pid == 0:
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        torch.set_num_threads(1)
        STATE.update(count=0, at=at, mode=mode)
        _instrument()
        code = main(argv)
        os.write(1, f"BOUNDARIES {STATE['count']}\n".encode())
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _state(out: Path) -> dict:
    last = json.loads((out / "last.json").read_text())
    metrics = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines() if x.strip()]
    best = json.loads((out / "best.json").read_text())
    return {"weights": _sha(out / last["path"] / "model.safetensors"),
            "metrics": [{k: v for k, v in m.items() if k not in ("images_per_s", "wall_s")} for m in metrics],
            "best_ok": _sha(out / "best.safetensors") == best["sha256"]
            and best["metrics"]["test_acc"] == max(m["test_acc"] for m in metrics),
            "temps": sorted(str(p.relative_to(out)) for p in out.rglob("*.tmp")),
            "summary": (out / "summary.json").is_file()}


def run(mode: str, data: str, work: Path, ks: list[int], sample: int | None = None) -> dict:
    """Fault at each boundary in `ks` (all of them when empty), or at `sample` of them chosen with a fixed seed
    (the first and the last always among them)."""
    ref = work / "ref"
    _child([*ARGS, "--data-dir", data, "--out", str(ref)], None, mode, work / "ref.log")
    total = int((work / "ref.log").read_text().split("BOUNDARIES")[-1].split()[0])
    expected, cases = _state(ref), []
    if sample and sample < total:
        ks = sorted({1, total, *random.Random(0).sample(range(2, total), sample - 2)})
    for k in ks or range(1, total + 1):
        out, log = work / f"{mode}{k}", work / f"{mode}{k}.log"
        code = _child([*ARGS, "--data-dir", data, "--out", str(out)], k, mode, log)
        errors = [ln for ln in log.read_text().splitlines() if ln.startswith("zoo: error")]
        temps_after_fault = sorted(str(p.relative_to(out)) for p in out.rglob("*.tmp")) if mode == "enospc" else []
        resumed = _child([*ARGS, "--data-dir", data, "--out", str(out), "--resume"], None, mode, work / f"r{k}.log")
        got = _state(out) if resumed == 0 else {}
        cases.append({"k": k, "code": code, "errors": errors, "temps_after_fault": temps_after_fault,
                      "resumed": resumed, "same": got == expected, "tracebacks": "Traceback" in log.read_text()})
        if mode == "kill":
            shutil.rmtree(out)
    return {"boundaries": total, "expected": expected, "cases": cases}


if __name__ == "__main__":
    torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)  # the optimizer's 1.5 s of lazy imports, once
    zoo.core.env.cpu_info()  # py-cpuinfo runs CPUID in a subprocess: once, not in every child
    mode, data, work, *ks = sys.argv[1:]
    sample = int(ks.pop()[len("sample="):]) if ks and ks[-1].startswith("sample=") else None
    print(json.dumps(run(mode, data, Path(work), [int(k) for k in ks], sample)))
