"""What `mer-prep train` (and `mer-prep demo`) print while a run trains, on stderr.

Before the first epoch ends: the cost (parameters, epochs x folds x seeds, device and threads),
the estimate from the first timed steps, and a warning where that is hours on a CPU. Then a
progress line per epoch with the ETA of the fold and of the run, at most one every
:data:`INTERVAL_S` seconds (the last epoch of a fold always), or one every
:data:`QUIET_INTERVAL_S` under ``--quiet``. Every event also re-applies the process's fair
share of PyTorch threads (``mer_prep.train.cpu_share``): a training that started alone gives
up threads, at its next epoch, to one started beside it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import click

from mer_prep.train.progress import RunEstimate, RunProgress, format_duration

INTERVAL_S = 1.0
QUIET_INTERVAL_S = 60.0


def cost_lines(estimate: RunEstimate) -> list[str]:
    """The estimate as the lines the command prints."""
    seeds = f"{estimate.seeds} seed{'s' if estimate.seeds != 1 else ''}"
    lines = [
        f"cost: {estimate.model}/{estimate.variant}, {estimate.parameters:,} parameters; "
        f"{estimate.epochs} epochs x {estimate.folds} folds x {seeds} on "
        f"{estimate.device} ({estimate.threads} "
        f"thread{'s' if estimate.threads != 1 else ''})",
        f"estimate: {estimate.seconds_per_step:.3g} s/step x {estimate.steps_per_epoch} "
        f"steps/epoch = {format_duration(estimate.epoch_s)}/epoch; about "
        f"{format_duration(estimate.estimated_s)} for the run (from its first steps)",
    ]
    if estimate.warning:
        lines.append(f"warning: {estimate.warning}")
    return lines


def progress_line(progress: RunProgress) -> str:
    """One epoch's line: fold, epoch, loss, validation score, ETAs."""
    score = (
        ""
        if progress.validation is None or not math.isfinite(progress.validation)
        else f", validation {progress.validation:.3f}"
    )
    return (
        f"fold {progress.fold}/{progress.folds} ({progress.fold_name}) epoch "
        f"{progress.epoch}/{progress.epochs}: loss {progress.loss:.3f}{score}; fold ETA "
        f"{format_duration(progress.fold_eta_s)}, run ETA "
        f"{format_duration(progress.run_eta_s)}"
    )


class ProgressPrinter:
    """A ``report`` callback for ``mer_prep.train.train`` that prints for people.

    quiet: progress at most every :data:`QUIET_INTERVAL_S` seconds; slot: a
    ``TrainerSlot`` whose thread share is re-applied at every event (None: leave threads).
    """

    def __init__(
        self,
        *,
        quiet: bool = False,
        slot=None,
        seeds: int = 1,
        echo: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.interval = QUIET_INTERVAL_S if quiet else INTERVAL_S
        self.seeds = seeds
        self._estimates = 0
        self.slot = slot
        self._echo = echo or (lambda line: click.echo(line, err=True))
        self._clock = clock
        self._last: float | None = None

    def __call__(self, event) -> None:
        if self.slot is not None:
            self.slot.apply()
        if isinstance(event, RunEstimate):
            # every seed of a group is a run of its own with its own estimate: the first one
            # is printed as the group's cost, the later ones only say which seed starts
            self._estimates += 1
            if self._estimates == 1:
                for line in cost_lines(event.for_seeds(self.seeds)):
                    self._echo(line)
            else:
                self._echo(f"seed {self._estimates} of {self.seeds}")
            self._last = self._clock()
        elif isinstance(event, RunProgress):
            now = self._clock()
            due = self._last is None or now - self._last >= self.interval
            if due or (event.fold_done and self.interval <= INTERVAL_S):
                self._echo(progress_line(event))
                self._last = now
