"""Whether a run is still on, as its workers see it (``RunWatch``)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import icechunk as ic

from mer_prep.errors import MerPrepError
from mer_prep.store.repo import open_repository

__all__ = ["RunWatch"]


@dataclass
class RunWatch:
    """Whether the run a worker writes for is still on: its scratch branch exists. A cancelled
    run's process is gone, but a standing or remote Dask cluster finishes the batches it was
    given; they check this between samples and stop instead of computing a whole batch for
    nobody (and writing chunks into a store the run no longer owns). Picklable; asks the
    storage at most once per ``interval`` seconds (a branch listing: ~1 ms on disk)."""

    location: str
    branch: str
    interval: float = 1.0
    _checked: float = field(default=float("-inf"), repr=False)
    _alive: bool = field(default=True, repr=False)

    def alive(self) -> bool:
        now = time.monotonic()
        if self._alive and now - self._checked >= self.interval:
            self._checked = now
            try:
                self._alive = self.branch in open_repository(self.location).list_branches()
            except (MerPrepError, ic.IcechunkError, OSError):  # the store itself is gone
                self._alive = False
        return self._alive
