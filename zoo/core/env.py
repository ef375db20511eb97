"""The environment a figure was measured in: CPU (name, cores, widest extension), versions, git SHA."""

from __future__ import annotations

import collections
import datetime as dt
import functools
import importlib
import os
import platform
import subprocess
import time
from pathlib import Path

import cpuinfo

from zoo.core.memory import release_freed_memory
from zoo.core.version import __version__

# Widest matrix/vector extension first: it decides training speed (bf16 autocast is 4x faster than fp32
# with AVX512-BF16, 10x slower without). Flag names as py-cpuinfo reports them on x86 and Arm.
ISA_FLAGS = (("amx_bf16", "AMX"), ("avx512_bf16", "AVX512-BF16"), ("avx512f", "AVX512"), ("avx2", "AVX2"),
             ("asimd", "NEON"))


@functools.lru_cache(maxsize=1)
def cpu_info() -> dict:
    """py-cpuinfo's record (cross-platform); {} where it cannot read this CPU."""
    try:
        return cpuinfo.get_cpu_info()
    except Exception:  # py-cpuinfo shells out on some platforms; a record without a CPU name is still useful
        return {}


def isa(flags) -> str | None:
    flags = set(flags)
    return next((name for flag, name in ISA_FLAGS if flag in flags), None)


def machine() -> str:
    """e.g. "AMD EPYC, 2 cores, AVX512-BF16": the CPU, its cores and its widest extension."""
    info = cpu_info()
    cpu = info.get("brand_raw") or platform.processor() or platform.machine()
    ext = isa(info.get("flags", ()))
    return f"{cpu}, {os.cpu_count()} cores" + (f", {ext}" if ext else "")


def version(module: str) -> str | None:
    """The module's __version__ (imports it): distribution names differ (onnxruntime-gpu is `onnxruntime`)."""
    try:
        return getattr(importlib.import_module(module), "__version__", None)
    except ImportError:
        return None


def git_sha() -> str | None:
    """The checkout's short SHA when zoo runs from one, else None (an installed wheel)."""
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             cwd=Path(__file__).parent, timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def environment(*modules: str) -> dict:
    """The record a card or a report carries: date, machine, Python, zoo and the named modules' versions."""
    return {"date": now(), "machine": machine(), "python": platform.python_version(), "zoo": __version__,
            **{m: version(m) for m in modules}, "git_sha": git_sha()}


def other_load() -> float:
    """The 1-minute load average beyond zoo's own busy core (0 where the OS has no load average)."""
    try:
        return max(0.0, os.getloadavg()[0] - 1.0)
    except OSError:
        return 0.0


def _cpu_seconds() -> tuple[float, float] | None:
    """(busy, total) CPU seconds of the whole machine since boot, all cores (Linux /proc/stat); None elsewhere."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    user, nice, system, idle, iowait, irq, softirq, steal = fields + [0] * (8 - len(fields))
    hz = os.sysconf("SC_CLK_TCK")
    busy = user + nice + system + irq + softirq + steal
    return busy / hz, (busy + idle + iowait) / hz


def _proc_stat(pid: str) -> tuple[int, int] | None:
    """(parent pid, CPU ticks of the process and of its reaped children) from /proc/PID/stat; None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()  # the name, in parentheses, may hold spaces
    except (OSError, IndexError):
        return None
    return int(fields[1]), sum(int(v) for v in fields[11:15])  # ppid; utime, stime, cutime, cstime


def _own_tree_seconds() -> float:
    """CPU seconds of this process and every live descendant, each with the children it has reaped: zoo's own
    work includes torch.compile's worker processes and DataLoader workers, which are not "other" processes."""
    own = os.times()  # this process at full resolution, with the children it reaped
    seconds = own.user + own.system + own.children_user + own.children_system
    try:
        pids = [pid for pid in os.listdir("/proc") if pid.isdigit()]
    except OSError:
        return seconds  # no /proc (macOS, Windows): OthersWatch uses the load average there anyway
    children, stats = collections.defaultdict(list), {}
    for pid in pids:
        if (st := _proc_stat(pid)) is not None:
            stats[int(pid)] = st
            children[st[0]].append(int(pid))
    ticks, stack = 0, [os.getpid()]
    while stack:
        for child in children[stack.pop()]:
            ticks += stats[child][1]
            stack.append(child)
    return seconds + (ticks / os.sysconf("SC_CLK_TCK") if ticks else 0.0)


class OthersWatch:
    """How much of the machine other processes used while this was open: their CPU seconds (the machine's busy
    seconds minus those of zoo's process and its descendants) over all cores' seconds, 0..1. Exact over the
    window, unlike the 1-minute load average, which lags a burst by a minute. Where /proc/stat is missing,
    the load average beyond one busy core stands in.

        with OthersWatch() as w: measure()
        w.share  # 0.02 on an idle machine; 0.5 with a second job using one of two cores
    """

    def __init__(self, min_window_s: float = 0.0):
        # /proc/stat counts CPU time in 10-ms units: over a 1-ms window (the null backend's 1,000 calls) one
        # unit of another process's read as "others used 50% of the CPU" (measured on an AMD EPYC). A window
        # shorter than min_window_s is read over min_window_s (over 2 cores x 0.5 s, a unit is 1%).
        self.min_window_s = min_window_s

    def __enter__(self) -> OthersWatch:
        self._start, self._t0 = (_cpu_seconds(), _own_tree_seconds()), time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        time.sleep(max(0.0, self.min_window_s - (time.perf_counter() - self._t0)))
        (start, own0), end = self._start, _cpu_seconds()
        if start is None or end is None:
            self.share = other_load() / (os.cpu_count() or 1)
            return
        busy, total = end[0] - start[0], end[1] - start[1]
        others = busy - (_own_tree_seconds() - own0)
        self.share = min(1.0, max(0.0, others / total)) if total > 0 else 0.0


def _status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


class PeakMemory:
    """The most resident memory the process added while this was open, in MB (Linux: the peak is reset on
    entry through /proc/self/clear_refs, then read from VmHWM); None where that cannot be read.

        with PeakMemory() as mem: session = load(); run(session)
        mem.added_mb  # e.g. 41.5
    """

    def __enter__(self) -> PeakMemory:
        self.added_mb: float | None = None
        release_freed_memory()  # else what an earlier pass freed and kept would hide what this one allocates
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")  # reset the peak resident set size to the current one
        except OSError:
            self._base = None
            return self
        self._base = _status_kb("VmRSS")
        return self

    def __exit__(self, *exc) -> None:
        peak = _status_kb("VmHWM")
        if self._base is not None and peak is not None:
            self.added_mb = max(0.0, (peak - self._base) / 1024)
