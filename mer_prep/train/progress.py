"""What a training run will cost and how far it is: events for a reporter, never printed here.

The engine (:func:`mer_prep.train.engine.train_fold`) calls ``report(event)`` with a
:class:`FirstBatches` once the first optimiser steps of a fold are timed, an :class:`EpochDone`
after every epoch and a :class:`FoldDone` per fold. :class:`RunTracker` (what
``run_folds(plan, report=...)`` puts between the engine and the caller) turns them into a
:class:`RunEstimate` before the first epoch ends (parameters, epochs x folds x seeds, device,
the estimated time and, where that is hours on a CPU, a warning naming lighter settings) and a
:class:`RunProgress` with the ETA of the fold and of the run after every epoch. The command
line renders them (``mer_prep.cli.train``); the library stays silent.

The estimate: seconds per optimiser step (batch indexing included, the first step left out when
there are others: it pays one-off allocations) x steps per epoch, plus the validation part's
forward passes, counted at :data:`FORWARD_SHARE` of a training step per row (a forward pass
without backward and optimiser step), x epochs x folds x seeds.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace

#: Optimiser steps timed before the estimate is made (fewer when an epoch has fewer).
TIMED_STEPS = 4
#: A row's forward pass (validation, prediction) as a share of its training step's time.
FORWARD_SHARE = 1 / 3
#: Estimated CPU runs at least this long (seconds) carry a warning naming lighter settings.
CPU_WARNING_S = 3600.0


@dataclass(frozen=True)
class FirstBatches:
    """A fold's first ``steps`` optimiser steps took ``seconds_per_step`` each (wall seconds);
    an epoch is ``steps_per_epoch`` steps over ``fit_rows`` rows, and selection scores
    ``validation_rows`` rows after each (0 without a validation part)."""

    fold_index: int
    fold_name: str
    parameters: int
    device: str
    threads: int
    steps: int
    seconds_per_step: float
    steps_per_epoch: int
    fit_rows: int
    validation_rows: int
    epochs: int

    @property
    def epoch_estimate_s(self) -> float:
        """Estimated wall seconds of one epoch, validation included."""
        forward = FORWARD_SHARE * self.validation_rows / max(self.fit_rows, 1)
        return self.seconds_per_step * self.steps_per_epoch * (1.0 + forward)


@dataclass(frozen=True)
class EpochDone:
    """Epoch ``epoch`` of ``epochs`` of a fold ended: mean training ``loss``, the validation
    score (None without selection on a validation part), its wall ``seconds``."""

    fold_index: int
    fold_name: str
    epoch: int
    epochs: int
    loss: float
    validation: float | None
    seconds: float


@dataclass(frozen=True)
class FoldDone:
    """A fold is trained, selected and scored, in ``seconds`` (wall)."""

    fold_index: int
    fold_name: str
    seconds: float


FoldEvent = FirstBatches | EpochDone | FoldDone


@dataclass(frozen=True)
class RunEstimate:
    """What a run will cost, known once the first steps of its first fold are timed.

    estimated_s: wall seconds for ``epochs`` x ``folds`` x ``seeds``; warning: one line where
    that is at least :data:`CPU_WARNING_S` on a CPU, naming lighter settings (else None)."""

    model: str
    variant: str
    parameters: int
    epochs: int
    folds: int
    seeds: int
    device: str
    threads: int
    seconds_per_step: float
    steps_per_epoch: int
    epoch_s: float
    estimated_s: float
    warning: str | None
    config: dict = field(default_factory=dict)  # the model's (for the lighter settings)

    def for_seeds(self, seeds: int) -> RunEstimate:
        """The same run trained with ``seeds`` seeds (``--seeds N`` trains each seed as a run
        of its own; its cost is the group's): time and warning scaled to every seed."""
        total = self.estimated_s / self.seeds * seeds
        warning = cpu_warning(
            self.config, self.epochs, self.device, self.threads, total, seeds=seeds
        )
        return replace(self, seeds=seeds, estimated_s=total, warning=warning)


@dataclass(frozen=True)
class RunProgress:
    """After epoch ``epoch`` of ``epochs`` of fold ``fold`` (1-based, of ``folds``): the ETA
    of that fold and of the whole run (wall seconds, from the mean epoch time so far)."""

    fold: int
    folds: int
    fold_name: str
    epoch: int
    epochs: int
    loss: float
    validation: float | None
    elapsed_s: float
    fold_eta_s: float
    run_eta_s: float
    fold_done: bool = False


RunEvent = RunEstimate | RunProgress


def format_duration(seconds: float) -> str:
    """``0.4 s``, ``42 s``, ``3 min 5 s``, ``2.4 h``: a duration for people."""
    if not math.isfinite(seconds):
        return "?"
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        minutes, rest = divmod(int(round(seconds)), 60)
        return f"{minutes} min {rest} s" if minutes < 10 else f"{minutes} min"
    return f"{seconds / 3600:.1f} h"


def lighter_settings(
    config: dict, epochs: int, estimated_s: float, target_s: float = CPU_WARNING_S / 2
) -> list[str]:
    """Command-line settings that make a run lighter, for a model ``config`` (as recorded:
    key -> value) trained ``epochs`` epochs in about ``estimated_s``: the global-average-pooling
    head where the model has a flatten one, fewer filters where it has more than 16, and the
    epochs that fit ``target_s`` at the estimated pace."""
    lighter = []
    if config.get("head") == "flatten":
        lighter.append("--set head=gap")
    filters = config.get("filters")
    if isinstance(filters, int) and filters > 16:
        lighter.append("--set filters=16")
    fewer = max(1, int(epochs * target_s / estimated_s)) if estimated_s > 0 else epochs
    if fewer < epochs:
        lighter.append(f"--epochs {fewer}")
    return lighter


def estimate_run(
    first: FirstBatches, *, model: str, variant: str, config: dict, folds: int, seeds: int = 1
) -> RunEstimate:
    """The :class:`RunEstimate` of a run of ``folds`` folds x ``seeds`` seeds from its first
    fold's :class:`FirstBatches` (every fold is assumed to cost what the first does)."""
    epoch_s = first.epoch_estimate_s
    total = epoch_s * first.epochs * folds * seeds
    return RunEstimate(
        model=model,
        variant=variant,
        parameters=first.parameters,
        epochs=first.epochs,
        folds=folds,
        seeds=seeds,
        device=first.device,
        threads=first.threads,
        seconds_per_step=first.seconds_per_step,
        steps_per_epoch=first.steps_per_epoch,
        epoch_s=epoch_s,
        estimated_s=total,
        warning=cpu_warning(config, first.epochs, first.device, first.threads, total, seeds=seeds),
        config=dict(config),
    )


def cpu_warning(
    config: dict, epochs: int, device: str, threads: int, total_s: float, *, seeds: int = 1
) -> str | None:
    """One line naming lighter settings where a run on the CPU needs at least
    :data:`CPU_WARNING_S` seconds (``total_s``, every seed), else None."""
    if not device.startswith("cpu") or total_s < CPU_WARNING_S:
        return None
    lighter = lighter_settings(config, epochs, total_s / seeds)
    if seeds > 1:
        lighter.append(f"fewer seeds than {seeds}")
    return (
        f"this run needs about {format_duration(total_s)} on the CPU "
        f"({threads} thread{'s' if threads != 1 else ''}); lighter: "
        f"{', '.join(lighter) if lighter else 'fewer epochs'}, a smaller model, "
        f"or a GPU (--device cuda)"
    )


class RunTracker:
    """Turns one run's :data:`FoldEvent` stream into :data:`RunEvent` for ``report``: one
    :class:`RunEstimate` (from the first fold's first steps), then a :class:`RunProgress` per
    epoch. Folds are reported in the order they are trained here (one after the other)."""

    def __init__(
        self,
        report: Callable[[RunEvent], None],
        *,
        model: str,
        variant: str,
        config: dict,
        folds: int,
        seeds: int = 1,
    ) -> None:
        self._report = report
        self._model, self._variant, self._config = model, variant, config
        self._folds, self._seeds = folds, seeds
        self.estimate: RunEstimate | None = None
        self._epoch_seconds: list[float] = []  # every epoch trained so far, all folds
        self._fold_elapsed = 0.0
        self._folds_done = 0

    def __call__(self, event: FoldEvent) -> None:
        if isinstance(event, FirstBatches):
            if self.estimate is None:
                self.estimate = estimate_run(
                    event,
                    model=self._model,
                    variant=self._variant,
                    config=self._config,
                    folds=self._folds,
                    seeds=self._seeds,
                )
                self._report(self.estimate)
        elif isinstance(event, EpochDone):
            self._epoch_seconds.append(event.seconds)
            self._fold_elapsed += event.seconds
            self._report(self._progress(event))
        elif isinstance(event, FoldDone):
            self._folds_done += 1
            self._fold_elapsed = 0.0

    def _progress(self, event: EpochDone) -> RunProgress:
        mean_epoch = sum(self._epoch_seconds) / len(self._epoch_seconds)
        fold_left = (event.epochs - event.epoch) * mean_epoch
        later_folds = max(self._folds * self._seeds - self._folds_done - 1, 0)
        return RunProgress(
            fold=self._folds_done + 1,
            folds=self._folds * self._seeds,
            fold_name=event.fold_name,
            epoch=event.epoch,
            epochs=event.epochs,
            loss=event.loss,
            validation=event.validation,
            elapsed_s=self._fold_elapsed,
            fold_eta_s=fold_left,
            run_eta_s=fold_left + later_folds * event.epochs * mean_epoch,
            fold_done=event.epoch == event.epochs,
        )
