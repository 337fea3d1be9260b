"""Figures of training runs, written against a small typed protocol of a run record.

``mer_prep.train.RunRecord`` satisfies :class:`RunLike` (and ``RunRecord.plot`` returns
:class:`RunPlots`); anything else with these attributes works too, so this module never imports
the trainers:

- ``run_id``, ``model``, ``variant``, ``split``, ``created``: text;
- ``store``: dict with ``class_names`` (and ``version_id``);
- ``metrics``: the pooled scores of ``mer_prep.evaluation.metrics.scores`` (``uf1``, ``uar``,
  ``accuracy``, ``confusion``);
- ``folds``: per fold ``name``, ``metrics`` (the fold's scores or None) and ``curves`` (per
  epoch ``epoch``, ``loss``, ``validation``).
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import pandas as pd

from mer_prep.plot import figures

__all__ = [
    "EpochLike",
    "FoldLike",
    "RunLike",
    "RunPlots",
    "leaderboard",
    "run_markdown",
    "run_title",
]


@runtime_checkable
class EpochLike(Protocol):
    epoch: int
    loss: float
    validation: float | None


@runtime_checkable
class FoldLike(Protocol):
    name: str

    @property
    def metrics(self) -> dict | None: ...

    curves: Sequence[EpochLike]


@runtime_checkable
class RunLike(Protocol):
    run_id: str
    model: str
    variant: str
    split: str
    created: str
    store: dict
    metrics: dict
    folds: Sequence[FoldLike]


def _value(metrics: dict | None, key: str) -> float | None:
    value = (metrics or {}).get(key)
    return None if value is None or (isinstance(value, float) and np.isnan(value)) else float(value)


def leaderboard(runs: Sequence[RunLike]) -> pd.DataFrame:
    """One row per run, best pooled UF1 first (then UAR): run, name, model, variant, split, leaky,
    store version, UF1, UAR, accuracy, n, folds, created."""
    rows = [
        {
            "run_id": r.run_id,
            "name": getattr(r, "name", None) or f"{r.model}-{r.variant}",
            "model": r.model,
            "variant": r.variant,
            "split": r.split,
            "leaky": bool(getattr(r, "leaky", False)),
            "version_id": (r.store or {}).get("version_id", ""),
            "uf1": _value(r.metrics, "uf1"),
            "uar": _value(r.metrics, "uar"),
            "accuracy": _value(r.metrics, "accuracy"),
            "n": (r.metrics or {}).get("n"),
            "folds": len(r.folds),
            "created": r.created,
        }
        for r in runs
    ]
    frame = pd.DataFrame(
        rows,
        columns=[
            "run_id",
            "name",
            "model",
            "variant",
            "split",
            "leaky",
            "version_id",
            "uf1",
            "uar",
            "accuracy",
            "n",
            "folds",
            "created",
        ],
    )
    return frame.sort_values(["uf1", "uar"], ascending=False, na_position="last", ignore_index=True)


def run_title(run: RunLike) -> str:
    """What a figure of ``run`` is titled with: its human name (``RunHeader.name``: model,
    variant, overrides, epochs, lr, batch, seed, selection) over its run id."""
    name = getattr(run, "name", None) or f"{run.model}-{run.variant}"
    return f"{name}\n{run.run_id}"


class RunPlots:
    """Figures of one run record (``run.plot``)."""

    def __init__(self, run: RunLike) -> None:
        self.run = run

    @property
    def class_names(self) -> list[str]:
        return list((self.run.store or {}).get("class_names") or [])

    def _confusion(self) -> tuple[np.ndarray, list[str], list[str]]:
        """The pooled confusion restricted to the classes the run met (a clip of it, or a
        prediction of it), their names, and the names left out (classes of the label scheme
        with no clip in the store's rows and never predicted)."""
        confusion = np.asarray(self.run.metrics.get("confusion") or np.zeros((0, 0)))
        names = self.class_names or [str(k) for k in range(len(confusion))]
        if confusion.ndim != 2 or confusion.shape != (len(names), len(names)):
            return confusion, names, []
        met = (confusion.sum(axis=0) + confusion.sum(axis=1)) > 0
        if not met.any():
            return confusion, names, []
        keep = np.flatnonzero(met)
        return (
            confusion[np.ix_(keep, keep)],
            [names[k] for k in keep],
            [n for k, n in enumerate(names) if not met[k]],
        )

    @property
    def chance(self) -> float | None:
        """UAR of a classifier that ignores its input: 1 / (classes with clips)."""
        confusion, _, _ = self._confusion()
        truth = np.asarray(confusion).sum(axis=1) if np.asarray(confusion).ndim == 2 else []
        n = int((np.asarray(truth) > 0).sum())
        return 1.0 / n if n else None

    def confusion(self, normalise: bool = False) -> figures.Figure:
        """The confusion matrix pooled over every fold (MEGC 2019), counts in the cells; only
        the classes the run met (the others are named under the title)."""
        confusion, names, left_out = self._confusion()
        note = f"\nno clip, never predicted: {', '.join(left_out)}" if left_out else ""
        return figures.confusion_figure(
            confusion,
            names,
            normalise=normalise,
            title=f"{run_title(self.run)}\nUF1 {_fmt(self.run.metrics, 'uf1')}, "
            f"UAR {_fmt(self.run.metrics, 'uar')}{note}",
        )

    def folds(self) -> figures.Figure:
        """UF1 and UAR of each fold, with the chance level of UAR (1 / classes)."""
        return figures.fold_scores_figure(
            [f.name for f in self.run.folds],
            [_value(f.metrics, "uf1") for f in self.run.folds],
            [_value(f.metrics, "uar") for f in self.run.folds],
            title=f"{run_title(self.run)}: per-fold scores",
            chance=self.chance,
        )

    def learning_curves(self) -> figures.Figure:
        """Training loss and validation metric per epoch, one line per fold, each fold's kept
        epoch marked (or a note that the run had no validation part)."""
        curves, kept = {}, {}
        for fold in self.run.folds:
            epochs = np.array([c.epoch for c in fold.curves], dtype=float)
            loss = np.array([c.loss for c in fold.curves], dtype=float)
            validation = np.array(
                [np.nan if c.validation is None else c.validation for c in fold.curves], dtype=float
            )
            curves[fold.name] = (epochs, loss, validation)
            if getattr(fold, "best_epoch", None) is not None:
                kept[fold.name] = int(fold.best_epoch)
        metric = next(
            (f.validation_metric for f in self.run.folds if getattr(f, "validation_metric", None)),
            None,
        )
        warning = getattr(self.run, "selection_warning", None)
        return figures.learning_curves_figure(
            curves,
            title=f"{run_title(self.run)}: learning curves" + (f"\n{warning}" if warning else ""),
            kept=kept,
            metric=metric,
        )

    def __repr__(self) -> str:
        return f"RunPlots({self.run.run_id!r})"


def _fmt(metrics: dict | None, key: str) -> str:
    value = _value(metrics, key)
    return "n/a" if value is None else f"{value:.3f}"


def run_markdown(run: RunLike, *, dpi: int = 80) -> str:
    """Markdown for a training run's Prefect artifact: scores, per-fold table and the pooled
    confusion matrix as an embedded PNG (``data:image/png;base64``, which the Prefect UI
    renders)."""
    png = figures.figure_png(RunPlots(run).confusion(), dpi=dpi)
    settings = getattr(run, "settings", None)
    warning = getattr(run, "selection_warning", None)
    lines = [
        f"# train {getattr(run, 'name', None) or run.model + ' / ' + run.variant}",
        "",
        f"- run: `{run.run_id}`",
        *([f"- settings: {settings()}"] if callable(settings) else []),
        *([f"- **warning**: {warning}"] if warning else []),
        f"- split: `{run.split}`" + (" (LEAKY)" if getattr(run, "leaky", False) else ""),
        f"- store version: `{(run.store or {}).get('version_id', '')}`",
        f"- UF1 {_fmt(run.metrics, 'uf1')}, UAR {_fmt(run.metrics, 'uar')}, "
        f"accuracy {_fmt(run.metrics, 'accuracy')}",
        "",
        f"![pooled confusion matrix](data:image/png;base64,{base64.b64encode(png).decode()})",
        "",
        "| fold | n | UF1 | UAR |",
        "|---|---:|---:|---:|",
    ]
    for fold in run.folds:
        lines.append(
            f"| {fold.name} | {(fold.metrics or {}).get('n', '')} | "
            f"{_fmt(fold.metrics, 'uf1')} | {_fmt(fold.metrics, 'uar')} |"
        )
    return "\n".join(lines) + "\n"
