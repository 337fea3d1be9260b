"""PyTorch's CPU threads: each training process on this machine takes its fair share of cores.

PyTorch starts one compute thread per core in every process. Two trainings on a two-core
machine then run four busy threads on two cores, and the spinning threads fight: on this
project's two-core machine an epoch took 15x longer with two threads than with one while
another process was busy, with system time near user time (measured).

A training process registers itself (:class:`TrainerSlot`, a file named by its PID in a
per-user folder of the temporary directory); its share is ``cores // live trainers``, and no
more than the cores the rest of the machine leaves idle (the one-minute load average less this
process's own threads), at least one. On a two-core machine busy with other work, a lone
training measured 0.94 s per MBCC step on two threads against about 0.02 s on one.
``TrainerSlot.apply`` sets ``torch.set_num_threads`` to it and is called again at every epoch,
so a process that started alone gives up threads when a second one starts. Dask workers
already train on one thread each (``flows.train``). ``MER_PREP_TORCH_THREADS`` fixes the
number instead.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from mer_prep.errors import InvalidArgumentError

THREADS_VARIABLE = "MER_PREP_TORCH_THREADS"


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def fair_share(cores: int, trainers: int) -> int:
    """Threads for one of ``trainers`` processes sharing ``cores``: ``cores // trainers``,
    at least 1."""
    return max(1, cores // max(1, trainers))


def idle_cores(cores: int, load: float, own_threads: int) -> int:
    """Cores the rest of the machine leaves idle: ``cores`` less the one-minute ``load``
    average without this process's ``own_threads`` (0 before it has run), at least 0."""
    return max(0, cores - math.ceil(max(0.0, load - own_threads) - 0.5))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def default_folder() -> Path:
    """Where training processes register: one folder per user in the temporary directory."""
    return Path(tempfile.gettempdir()) / f"mer-prep-trainers-{os.getuid()}"


class TrainerSlot:
    """This process, registered as a training process while the slot is open.

    folder: where trainers register (default :func:`default_folder`); cores: the cores shared
    (default :func:`usable_cores`); load: the one-minute load average (default
    ``os.getloadavg``).
    """

    def __init__(
        self,
        folder: Path | None = None,
        cores: int | None = None,
        load: Callable[[], float] | None = None,
    ) -> None:
        self.folder = Path(folder) if folder is not None else default_folder()
        self.cores = cores if cores is not None else usable_cores()
        self._load = load or (lambda: os.getloadavg()[0])
        self._mine = self.folder / str(os.getpid())
        self._running = 0  # threads this process has been training on (0: not started)

    def __enter__(self) -> TrainerSlot:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._mine.touch()
        self.apply()
        return self

    def __exit__(self, *exc) -> None:
        self._mine.unlink(missing_ok=True)

    def trainers(self) -> int:
        """Live registered training processes, this one included; stale entries (a process
        that died without closing its slot) are removed."""
        count = 0
        for entry in self.folder.iterdir() if self.folder.is_dir() else ():
            try:
                pid = int(entry.name)
            except ValueError:
                continue
            if pid == os.getpid() or _alive(pid):
                count += 1
            else:
                entry.unlink(missing_ok=True)
        return max(count, 1)

    def threads(self) -> int:
        """This process's share now: ``$MER_PREP_TORCH_THREADS`` when set, else
        :func:`fair_share` of the cores over the live trainers, at most the
        :func:`idle_cores` (at least 1)."""
        fixed = os.environ.get(THREADS_VARIABLE)
        if fixed:
            try:
                value = int(fixed)
            except ValueError:
                value = 0
            if value < 1:
                raise InvalidArgumentError(
                    f"{THREADS_VARIABLE}={fixed!r}: want a whole number of threads >= 1"
                )
            return value
        idle = idle_cores(self.cores, self._load(), self._running)
        return max(1, min(fair_share(self.cores, self.trainers()), idle))

    def apply(self) -> int:
        """Set PyTorch's compute threads to :meth:`threads` (when it differs); returns it."""
        import torch

        wanted = self.threads()
        if torch.get_num_threads() != wanted:
            torch.set_num_threads(wanted)
        self._running = wanted
        return wanted
