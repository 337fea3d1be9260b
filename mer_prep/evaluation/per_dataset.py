"""Scores of each source dataset inside a composite run (``megc2019``: SMIC, CASME II, SAMM;
``cross6`` or a user composite: each of its parts), pooled as MEGC pools them.

A dataset's score takes every fold's predictions of that dataset's clips, pools their
confusion counts, then computes UF1 / UAR (``mer_prep.evaluation.metrics.scores``); the
composite's overall row pools all clips. Which dataset a clip came from is the ``dataset``
column of the sample table of the store version the run read (:func:`run_view`'s ``table``).

    result = per_dataset_scores(run_view(record, table=store_table))
    result.rows[0].name, result.rows[0].uf1, result.rows[0].confusion   # str, float, (K, K)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from mer_prep.errors import InvalidArgumentError
from mer_prep.evaluation.metrics import confusion_matrix, scores
from mer_prep.evaluation.run_view import RunView

OVERALL = "overall"


@dataclass(frozen=True)
class DatasetScores:
    """One dataset's (or the ``overall``) pooled scores: ``n`` clips of ``n_subjects`` subjects,
    UF1 / UAR / accuracy, per-class F1 and recall (class name -> float or None when undefined)
    and the (K, K) int64 ``confusion`` (rows true, columns predicted)."""

    name: str
    n: int
    n_subjects: int
    uf1: float
    uar: float
    accuracy: float
    per_class_f1: dict
    per_class_recall: dict
    confusion: np.ndarray


@dataclass(frozen=True)
class PerDataset:
    """``rows``: one :class:`DatasetScores` per source dataset (sorted by name), then the
    ``overall`` one; ``run_id`` and ``class_names`` of the run scored."""

    run_id: str
    class_names: tuple[str, ...]
    rows: tuple[DatasetScores, ...]

    def row(self, name: str) -> DatasetScores:
        for row in self.rows:
            if row.name == name:
                return row
        raise InvalidArgumentError(
            f"run {self.run_id} scored no clip of dataset {name!r} "
            f"(it has {', '.join(r.name for r in self.rows)})"
        )

    def frame(self) -> pd.DataFrame:
        """dataset, n, subjects, uf1, uar, accuracy and one ``f1_<class>`` column per class."""
        return pd.DataFrame(
            [
                {
                    "dataset": r.name,
                    "n": r.n,
                    "subjects": r.n_subjects,
                    "uf1": r.uf1,
                    "uar": r.uar,
                    "accuracy": r.accuracy,
                    **{f"f1_{k}": r.per_class_f1.get(k) for k in self.class_names},
                }
                for r in self.rows
            ]
        )


def _scores_of(name: str, view: RunView, keep: np.ndarray) -> DatasetScores:
    k = len(view.class_names)
    confusion = confusion_matrix(view.y_true[keep], view.y_pred[keep], k)
    s = scores(confusion, view.class_names)
    return DatasetScores(
        name=name,
        n=int(keep.sum()),
        n_subjects=len(set(view.subjects[keep].tolist())),
        uf1=s["uf1"],
        uar=s["uar"],
        accuracy=s["accuracy"],
        per_class_f1=s["per_class_f1"],
        per_class_recall=s["per_class_recall"],
        confusion=confusion,
    )


def per_dataset_scores(view: RunView) -> PerDataset:
    """Each source dataset's pooled scores and the composite's overall (see the module
    docstring); ``view`` must carry ``datasets`` (built with the store's sample table)."""
    if view.datasets is None:
        raise InvalidArgumentError(
            f"run {view.run_id}: the clips' source datasets are unknown; "
            f"build the view with the store version's sample table"
        )
    if not len(view.y_true):
        raise InvalidArgumentError(f"run {view.run_id} scored no clip")
    rows = [
        _scores_of(name, view, view.datasets == name)
        for name in sorted(set(view.datasets.tolist()))
    ]
    rows.append(_scores_of(OVERALL, view, np.ones(len(view.y_true), bool)))
    return PerDataset(run_id=view.run_id, class_names=view.class_names, rows=tuple(rows))


def per_dataset_text(result: PerDataset) -> str:
    """The per-dataset table as text: dataset, clips, subjects, UF1, UAR, accuracy, then each
    dataset's confusion counts (rows true, columns predicted) on one line."""
    width = max(len("dataset"), *(len(r.name) for r in result.rows))
    lines = [
        f"{'dataset':<{width}}  {'n':>5}  {'subj':>4}  {'UF1':>6}  {'UAR':>6}  {'acc':>6}  "
        f"confusion ({', '.join(result.class_names)})"
    ]
    for r in result.rows:
        lines.append(
            f"{r.name:<{width}}  {r.n:>5}  {r.n_subjects:>4}  {_number(r.uf1):>6}  "
            f"{_number(r.uar):>6}  {_number(r.accuracy):>6}  {r.confusion.tolist()}"
        )
    return "\n".join(lines)


def _number(value: float | None) -> str:
    return "-" if value is None or np.isnan(value) else f"{value:.3f}"
