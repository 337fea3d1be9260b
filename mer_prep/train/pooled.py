"""A run's pooled scores (:class:`PooledScores`): its folds' confusion counts summed first, then
the scores (MEGC 2019, ``mer_prep.evaluation.metrics``).

Stored as the record's ``metrics`` attribute, exactly the dict of
:func:`mer_prep.evaluation.metrics.scores` (:meth:`PooledScores.as_dict`), so records written
before this type existed read back unchanged (:meth:`PooledScores.from_dict`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from mer_prep.evaluation.metrics import pooled_confusion, scores

_NAMED = ("uf1", "uar", "accuracy", "n", "per_class_f1", "per_class_recall", "confusion")


class ScoredFold(Protocol):
    """What pooling reads of a fold: its scored clips' true and predicted classes (int, (m,)).
    Read-only, so that a frozen record (``FoldResult``) is one."""

    @property
    def y_true(self) -> np.ndarray: ...

    @property
    def y_pred(self) -> np.ndarray: ...


@dataclass(frozen=True)
class PooledScores:
    """UF1, UAR and accuracy in [0, 1] over every scored clip of a run (NaN when none was scored,
    None once read back from JSON, which has no NaN), ``n`` clips, per-class F1 and recall by
    class name (None where undefined) and the (K, K) ``confusion`` counts (rows true, columns
    predicted). A run that scored no clip has no per-class values nor confusion (None); ``n`` is
    None only for a stored ``metrics`` without it. ``extra``: keys of a stored ``metrics`` this
    type does not name, kept so that it reads back whole."""

    uf1: float | None
    uar: float | None
    accuracy: float | None
    n: int | None
    per_class_f1: dict[str, float | None] | None = None
    per_class_recall: dict[str, float | None] | None = None
    confusion: list[list[int]] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def pool(cls, folds: Iterable[ScoredFold], class_names: Sequence[str]) -> PooledScores:
        """MEGC pooling of the folds' confusion counts, then the scores."""
        names = list(class_names)
        confusion = pooled_confusion(((f.y_true, f.y_pred) for f in folds), len(names))
        if not confusion.sum():
            return cls(uf1=float("nan"), uar=float("nan"), accuracy=float("nan"), n=0)
        return cls.from_dict(scores(confusion, names))

    @classmethod
    def from_dict(cls, metrics: Mapping[str, Any]) -> PooledScores:
        """The scores of a ``metrics`` dict (as :func:`~mer_prep.evaluation.metrics.scores`
        makes it, or as a record stored it)."""
        return cls(
            uf1=metrics["uf1"],
            uar=metrics["uar"],
            accuracy=metrics["accuracy"],
            n=metrics.get("n"),
            per_class_f1=metrics.get("per_class_f1"),
            per_class_recall=metrics.get("per_class_recall"),
            confusion=metrics.get("confusion"),
            extra={k: v for k, v in metrics.items() if k not in _NAMED},
        )

    def as_dict(self) -> dict[str, Any]:
        """The ``metrics`` dict as stored: the three scores, then ``n``, the per-class values and
        the confusion where the record has them, then ``extra``."""
        metrics: dict[str, Any] = {"uf1": self.uf1, "uar": self.uar, "accuracy": self.accuracy}
        for name in ("n", "per_class_f1", "per_class_recall", "confusion"):
            if getattr(self, name) is not None:
                metrics[name] = getattr(self, name)
        return {**metrics, **self.extra}
