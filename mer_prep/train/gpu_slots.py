"""Which GPU a fold trains on when one worker process holds several.

A Dask worker started with ``--resources GPU=2`` (a SLURM job with ``gpus = 2``, a Kubernetes
worker with two) runs two fold tasks at once, in two threads of one process that sees both
GPUs. ``device="cuda"`` means the current device, GPU 0, in both threads: the two folds would
share the first GPU and leave the second idle. :func:`claimed_device` gives each concurrent fold
a GPU of its own: a plain ``"cuda"`` becomes ``"cuda:<i>"`` for the lowest index no other fold
of this process holds, released when the fold ends. An explicit ``"cuda:N"``, the CPU, and a
process that sees one GPU keep the device asked for.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator

from mer_prep.errors import InvalidArgumentError


class GpuSlots:
    """The GPU indices ``0 .. n - 1`` of one process, each held by at most one fold at a time
    (thread-safe). ``claim`` blocks while every index is held."""

    def __init__(self, n: int) -> None:
        if n < 1:
            raise InvalidArgumentError(f"a GPU pool needs one GPU at least, got {n}")
        self.n = n
        self._held: set[int] = set()
        self._free = threading.Condition()

    def claim(self, timeout: float | None = None) -> int:
        """The lowest free index, now held by the caller (``TimeoutError`` after ``timeout``
        seconds without one)."""
        with self._free:
            if not self._free.wait_for(lambda: len(self._held) < self.n, timeout):
                raise TimeoutError(f"all {self.n} GPUs of this process stayed held")
            index = min(set(range(self.n)) - self._held)
            self._held.add(index)
            return index

    def release(self, index: int) -> None:
        with self._free:
            self._held.discard(index)
            self._free.notify()

    @property
    def held(self) -> frozenset[int]:
        with self._free:
            return frozenset(self._held)


_POOLS: dict[int, GpuSlots] = {}
_POOLS_LOCK = threading.Lock()


def _process_pool(n: int) -> GpuSlots:
    with _POOLS_LOCK:
        return _POOLS.setdefault(n, GpuSlots(n))


def _visible_gpus() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


@contextlib.contextmanager
def claimed_device(
    device: str, *, count: Callable[[], int] = _visible_gpus, pool: GpuSlots | None = None
) -> Iterator[str]:
    """The device one fold trains on (see the module docstring): ``"cuda"`` in a process that
    sees ``count()`` > 1 GPUs becomes ``"cuda:<i>"`` held until the block ends; any other
    device is yielded as it is. ``pool``: the slots to claim from (default: this process's)."""
    if device != "cuda":
        yield device
        return
    n = count()
    if n <= 1:
        yield device
        return
    slots = pool if pool is not None else _process_pool(n)
    index = slots.claim()
    try:
        yield f"cuda:{index}"
    finally:
        slots.release(index)
