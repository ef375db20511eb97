"""The environment a figure was measured in: CPU (name, cores, widest extension), versions, git SHA."""

from __future__ import annotations

import datetime as dt
import functools
import importlib
import os
import platform
import subprocess
from pathlib import Path

import cpuinfo

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
