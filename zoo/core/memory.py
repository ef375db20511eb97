"""Keep the memory a training step frees for the next step, instead of handing it back to the OS.

glibc's malloc serves each allocation over its mmap threshold with a fresh mmap and returns the top of the
heap to the OS once more than the trim threshold lies free there. A training step allocates its activations
and gradients and frees them all by its end, so with glibc's defaults every step faults its working set in
again, page by page. Profiled on the MNIST CNN (bf16 + channels_last, batch 500, AMD EPYC, 2 threads), the
ReLU backward and the max-pool backward's zero fill (memory-bound ops that are the first to touch new
buffers) took 5.6 and 2.2 ms a call, against 0.6 ms for the same ReLU backward on reused memory.

keep_freed_memory() maps no block on its own and lets up to 1 GiB lie free at the heap's top (mallopt, at run
time: what the jemalloc/tcmalloc preload of PyTorch's CPU tuning guide and torch.backends.xeon.run_cpu buys,
with nothing to install). `python benchmarks/tools/freed_memory.py` (each setting in a fresh process, A B A B; AMD
EPYC, AVX512-BF16, 2 threads, idle), images/s of the median training step, default -> kept: MNIST CNN at
batch 500, bf16 + channels_last 11,195 / 14,859 / 11,180 -> 20,989 / 22,706 / 17,125 (1.53-1.87x), fp32
1.27-1.72x; ResNet-20 at batch 256, bf16 + channels_last 1.13-1.37x, fp32 1.12-1.44x. The price: the process
keeps its peak heap (the training working set, which the next step needs again). Raising only the mmap
threshold (to its 32 MiB ceiling) left every tensor over 32 MiB mapped afresh: eager ResNet-18 inference ran
~160 img/s at batch 250 and ~130 at 500 against ~270 at 64.

PyTorch eager inference gains as much at large batches (`--infer`, batch 256, two pairs: ResNet-18 106 / 118
-> 239 / 245 img/s, ResNet-20 1.60-2.01x, the CIFAR CNN 1.79-1.96x, AlexNet 0.91-1.24x), so `zoo bench`
times eager with freed memory kept as well: onnxruntime's and OpenVINO's arenas keep theirs, and eager
without it would flatter them. A peak-memory window hands the kept memory back first
(release_freed_memory), or what one runtime freed would hide what the next one allocates; what is freed inside
the window stays counted (ResNet-18's onnxruntime accuracy pass: 647 MB against 512 with glibc's defaults).
"""

from __future__ import annotations

import ctypes
import platform
import sys

M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # <malloc.h>
TRIM_BYTES = 1 << 30  # free heap top kept before glibc returns it to the OS


_kept: bool | None = None  # None: not asked for in this process yet


def keep_freed_memory() -> bool:
    """Set glibc's allocator for this process as the module docstring says, once; True where that took effect,
    False where the C library is not glibc (the allocator is then left as it is)."""
    global _kept
    if _kept is None:
        _kept = _set_allocator()
    return _kept


def _set_allocator() -> bool:
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # No block mapped on its own (glibc still maps one where the heap cannot grow), and up to TRIM_BYTES left
    # free at the heap's top.
    return bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_BYTES))


def release_freed_memory() -> None:
    """Hand the freed memory glibc kept back to the OS (malloc_trim), so that resident memory grows again with
    what is allocated next; nothing where freed memory is not kept."""
    if _kept:
        ctypes.CDLL(None).malloc_trim(0)
