"""Where a fold's wall time goes: the first steps' estimate and the fold's timings record.

:class:`FirstSteps` times the fold's first optimiser steps (at most
:data:`~mer_prep.train.progress.TIMED_STEPS`, fewer when an epoch has fewer) and hands a
:class:`~mer_prep.train.progress.FirstBatches` to the reporter once; :class:`FoldClock` keeps
the fold's start, fit and prediction times and makes the ``timings`` a
:class:`~mer_prep.train.records.FoldResult` carries. All times are ``time.perf_counter`` seconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from mer_prep.train.progress import TIMED_STEPS, FirstBatches
from mer_prep.train.records import EpochLog


@dataclass(frozen=True)
class StepsContext:
    """What a :class:`FirstBatches` says beside the times: the fold, model size, where it runs
    and the shape of an epoch."""

    fold_index: int
    fold_name: str
    parameters: int
    device: str
    threads: int
    steps_per_epoch: int
    fit_rows: int
    validation_rows: int
    epochs: int


@dataclass
class FirstSteps:
    """Times the first ``min(TIMED_STEPS, steps_per_epoch)`` steps of a fold, then calls
    ``report`` once with their :class:`FirstBatches` and stops timing.

    Call :meth:`epoch_started` at the start of each epoch and :meth:`step_ended` after each step.
    """

    context: StepsContext
    report: Callable[[FirstBatches], None]
    ends: list[float] = field(default_factory=list)
    epoch_start: float = 0.0
    done: bool = False

    def epoch_started(self, now: float) -> None:
        """Mark the start of an epoch (only the first epoch's counts: its steps are timed)."""
        if not self.ends:
            self.epoch_start = now

    def step_ended(self) -> None:
        if self.done:
            return
        self.ends.append(time.perf_counter())
        if len(self.ends) == min(TIMED_STEPS, self.context.steps_per_epoch):
            self.report(first_batches(self.context, self.ends, self.epoch_start))
            self.done = True


def first_batches(
    context: StepsContext, step_ends: Sequence[float], epoch_start: float
) -> FirstBatches:
    """The :class:`FirstBatches` of steps ending at ``step_ends`` in an epoch begun at
    ``epoch_start``: the first step pays one-off allocations, so it is left out of the seconds
    per step when later ones were timed."""
    if len(step_ends) > 1:
        per_step = (step_ends[-1] - step_ends[0]) / (len(step_ends) - 1)
    else:
        per_step = step_ends[0] - epoch_start
    return FirstBatches(
        fold_index=context.fold_index,
        fold_name=context.fold_name,
        parameters=context.parameters,
        device=context.device,
        threads=context.threads,
        steps=len(step_ends),
        seconds_per_step=per_step,
        steps_per_epoch=context.steps_per_epoch,
        fit_rows=context.fit_rows,
        validation_rows=context.validation_rows,
        epochs=context.epochs,
    )


@dataclass
class FoldClock:
    """A fold's wall times: ``start`` (the call), ``fit_start`` (the first epoch), ``fit_s``
    (epochs and selection) and ``predict_s`` (scoring the test clips)."""

    start: float = field(default_factory=time.perf_counter)
    fit_start: float = 0.0
    fit_s: float = 0.0
    predict_s: float = 0.0

    def fit_started(self) -> None:
        self.fit_start = time.perf_counter()

    def fit_ended(self) -> None:
        self.fit_s = time.perf_counter() - self.fit_start

    def elapsed(self) -> float:
        """Seconds since the fold started."""
        return time.perf_counter() - self.start

    def timings(self, curves: Sequence[EpochLog], deterministic: bool, device) -> dict:
        """The fold's ``timings``: fit, predict and total seconds, the epochs' and the steps'
        sums, the share of epoch time outside the optimiser steps (batch indexing, validation),
        whether the CPU's deterministic algorithms were on, the device and how steps were timed
        (CUDA runs asynchronously: there the step times are what the host waited)."""
        epoch_s = sum(c.seconds for c in curves)
        step_total = sum(c.step_seconds for c in curves)
        return {
            "fit_s": self.fit_s,
            "predict_s": self.predict_s,
            "total_s": self.elapsed(),
            "epoch_s": epoch_s,
            "step_s": step_total,
            "outside_step_share": (epoch_s - step_total) / epoch_s if epoch_s else 0.0,
            "deterministic": deterministic,
            "device": str(device),
            "step_timing": "synchronous" if device.type == "cpu" else "host-side",
        }
