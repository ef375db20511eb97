"""Keep the memory a training step frees for the next step, instead of handing it back to the OS.

glibc's malloc serves each allocation over its mmap threshold with a fresh mmap and returns the top of the
heap to the OS once more than the trim threshold lies free there. A training step allocates its activations
and gradients and frees them all by its end, so with glibc's defaults every step faults its working set in
again, page by page. Profiled on the MNIST CNN (bf16 + channels_last, batch 500, AMD EPYC, 2 threads), the
ReLU backward and the max-pool backward's zero fill (memory-bound ops that are the first to touch new
buffers) took 5.6 and 2.2 ms a call, against 0.6 ms for the same ReLU backward on reused memory.

keep_freed_memory() raises both thresholds (mallopt, at run time: the same effect as the jemalloc/tcmalloc
preload that PyTorch's CPU tuning guide and torch.backends.xeon.run_cpu use, without a library to install).
One training step's images/s, the same process setup otherwise (AMD EPYC, AVX512-BF16, 2 threads; two runs
each, `benchmarks/test_train_throughput.py` has the end-to-end figures): MNIST CNN bf16+cl 9,836-12,708 ->
20,715-28,161; ResNet-20 bf16+cl batch 256 851-982 -> 1,259-1,310; fp32 eager within the noise (533-592 vs
489-578). The price: the process keeps its peak heap (the training working set, which it needs again at the
next step). Tensors over the mmap threshold's ceiling (32 MiB) are still mapped afresh.

PyTorch eager inference gains as much at large batches (batch 256, median call, separate processes, same
CPU: ResNet-20 1,108-1,131 -> 1,985-2,017 img/s, the CIFAR CNN 1,996-2,072 -> 3,234-3,237, ResNet-18 120-138
-> 138-145, AlexNet 2,384-2,564 -> 2,646-2,704), so `zoo bench` times eager with freed memory kept as well:
onnxruntime's and OpenVINO's arenas keep theirs, and eager without it would flatter them. A peak-memory
window hands the kept memory back first (release_freed_memory), or what one runtime freed would hide what
the next one allocates.
"""

from __future__ import annotations

import ctypes
import platform
import sys

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # <malloc.h>
TRIM_BYTES = 1 << 30  # free heap top kept before glibc returns it to the OS
MMAP_BYTES = 32 << 20  # glibc's ceiling for the mmap threshold on 64-bit (DEFAULT_MMAP_THRESHOLD_MAX)


_kept: bool | None = None  # None: not asked for in this process yet


def keep_freed_memory() -> bool:
    """Raise glibc's trim and mmap thresholds for this process (module docstring), once; True where that took
    effect, False where the C library is not glibc (the allocator is then left as it is)."""
    global _kept
    if _kept is None:
        _kept = _raise_thresholds()
    return _kept


def _raise_thresholds() -> bool:
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_BYTES)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_BYTES))


def release_freed_memory() -> None:
    """Hand the freed memory glibc kept back to the OS (malloc_trim), so that resident memory grows again with
    what is allocated next; nothing where freed memory is not kept."""
    if _kept:
        ctypes.CDLL(None).malloc_trim(0)
