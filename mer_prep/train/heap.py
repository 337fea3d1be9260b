"""Training steps reuse the C heap instead of asking the kernel for fresh pages every step.

A training step allocates and frees the same large buffers every time (STSTNet at batch 256:
activations and gradients of about 13 MB each). glibc's ``malloc`` serves blocks above its
mmap threshold (128 KiB, raised dynamically unless ``MALLOC_TRIM_THRESHOLD_`` is set, which
Dask's nanny sets for its workers) with a fresh ``mmap`` and returns them with ``munmap`` on
``free``: every step then page-faults and zeroes its buffers anew in the kernel. Measured on
this project's two-core VM, one STSTNet fold of 500 epochs: 4.8 M minor page faults and 9.0 s
of system time against 13 s of user time; with the heap kept, 0.1 M faults, 0.5 s system time,
and the fold took 25-30 % less wall time (``bench/baselines.py``).

:func:`reused_heap` raises glibc's mmap threshold to its maximum (32 MiB) and its trim
threshold for the duration of a fold, so freed buffers stay in the heap for the next step, then
restores fixed defaults and returns the freed memory to the system (``malloc_trim``). Elsewhere
than glibc it does nothing. The values computed are the same either way: only where memory
comes from changes.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import os
from collections.abc import Iterator

# glibc's mallopt parameters (malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
#: glibc's largest mmap threshold on 64-bit systems (DEFAULT_MMAP_THRESHOLD_MAX)
MMAP_THRESHOLD_MAX = 32 * 1024 * 1024
#: freed memory kept at the top of the heap during a fold before glibc returns it
TRIM_THRESHOLD_TRAINING = 1024 * 1024 * 1024
#: glibc's own defaults, restored after a fold unless the environment fixed other values
DEFAULT_THRESHOLD = 128 * 1024


@functools.cache
def _libc() -> ctypes.CDLL | None:
    """glibc, or None elsewhere (musl, macOS, Windows: they have no ``mallopt``)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.mallopt.argtypes, libc.mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
        libc.malloc_trim.argtypes, libc.malloc_trim.restype = [ctypes.c_size_t], ctypes.c_int
        libc.gnu_get_libc_version.restype = ctypes.c_char_p
        libc.gnu_get_libc_version()
    except (OSError, AttributeError):
        return None
    return libc


def _configured(variable: str) -> int:
    """The threshold the environment gave glibc at start (``MALLOC_*_THRESHOLD_``), else its
    default."""
    try:
        return int(os.environ.get(variable, DEFAULT_THRESHOLD))
    except ValueError:
        return DEFAULT_THRESHOLD


def heap_reuse_available() -> bool:
    """Whether this process's C library lets :func:`reused_heap` act (glibc)."""
    return _libc() is not None


@contextlib.contextmanager
def reused_heap() -> Iterator[bool]:
    """Keep freed blocks up to 32 MiB in the heap while the block runs (yields whether it
    could: glibc only); afterwards the thresholds are the environment's or glibc's defaults
    (fixed, not dynamic) and the heap's free memory is returned to the system."""
    libc = _libc()
    if libc is None:
        yield False
        return
    applied = bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX)) and bool(
        libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_TRAINING)
    )
    try:
        yield applied
    finally:
        libc.mallopt(M_MMAP_THRESHOLD, _configured("MALLOC_MMAP_THRESHOLD_"))
        libc.mallopt(M_TRIM_THRESHOLD, _configured("MALLOC_TRIM_THRESHOLD_"))
        libc.malloc_trim(0)
