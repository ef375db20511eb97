"""core/memory.py: keep_freed_memory() makes glibc keep a freed block for the next allocation. Each case
runs in a fresh interpreter: the setting cannot be undone inside a process."""

import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt thresholds are glibc's")

# Resident KiB after allocating, touching and freeing a 20 MB block: glibc's default maps such a block
# afresh and unmaps it on free; with freed memory kept it comes from the heap, which keeps it.
PROGRAM = """
import sys
from zoo.core.memory import keep_freed_memory
if sys.argv[1] == "kept":
    assert keep_freed_memory()
def resident_kib():
    return int(open("/proc/self/statm").read().split()[1]) * 4096 // 1024
before = resident_kib()
block = bytearray(20 << 20)  # zero-filled: every page touched
del block
print(resident_kib() - before)
"""


def _kept_kib(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", PROGRAM, mode], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[-1])


def test_freed_memory_stays_in_the_process_only_when_kept():
    assert _kept_kib("default") < 4 << 10  # handed back to the OS
    assert _kept_kib("kept") > 16 << 10  # kept for the next step's tensors


def test_training_records_the_setting(monkeypatch):
    from zoo.train import runtime
    from zoo.train.fastpath import FastPath

    monkeypatch.setattr(runtime, "choose", lambda *a, **k: FastPath("fp32"))
    rt = runtime.resolve_runtime(runtime.RuntimeRequest(), "cnn", "mnist", 8, 80, 1)
    assert rt.freed_memory_kept and rt.to_dict()["freed_memory_kept"] is True


PEAK = """
from zoo.core.env import PeakMemory
from zoo.core.memory import keep_freed_memory
assert keep_freed_memory()
block = bytearray(30 << 20)
del block  # kept by the process
with PeakMemory() as mem:
    block = bytearray(25 << 20)
print(mem.added_mb)
"""


def test_a_peak_memory_window_is_not_hidden_by_memory_kept_before_it():
    out = subprocess.run([sys.executable, "-c", PEAK], capture_output=True, text=True, check=True)
    assert float(out.stdout.split()[-1]) > 20  # reusing the kept 30 MB it would have read ~0
