"""Paired comparison of two runs (or two seed groups) on the same folds: UF1 / UAR of A minus B
with a bootstrap confidence interval over test subjects (and over seeds where a side has
several).

Both sides are scored on the same resample of subjects, so what the subjects have in common
(an easy subject is easy for both) cancels out of the difference. A side is one run or a list
of runs that differ only in their seed; its score is the mean over its seeds of the pooled
(MEGC) UF1 / UAR. Runs are refused (:class:`RunsNotComparable`, one line naming both) unless
they share the split, its folds (every fold scoring the same clips), the store version, the
target and the classes.

    result = compare_runs([run_view(a, table)], [run_view(b, table)], n_resamples=2000, seed=0)
    result.uf1_diff, result.uf1_ci   # float, (low, high) at 95 %
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mer_prep.errors import InvalidArgumentError
from mer_prep.evaluation import bootstrap
from mer_prep.evaluation.run_view import RunView, restrict


class RunsNotComparable(InvalidArgumentError):
    """Two runs (or seed groups) that were not scored on the same folds of the same store
    version, split, target and classes, or a side whose runs are not seeds of one
    configuration."""


@dataclass(frozen=True)
class Side:
    """One side of a comparison: its runs (one per seed), each seed's pooled UF1 / UAR (n,)
    and their mean and sample standard deviation (None with one seed)."""

    views: tuple[RunView, ...]
    uf1: np.ndarray
    uar: np.ndarray

    @property
    def run_ids(self) -> list[str]:
        return [v.run_id for v in self.views]

    @property
    def seeds(self) -> list[int]:
        return [v.seed for v in self.views]

    @property
    def uf1_mean(self) -> float:
        return float(np.mean(self.uf1))

    @property
    def uar_mean(self) -> float:
        return float(np.mean(self.uar))

    @property
    def uf1_sd(self) -> float | None:
        return float(np.std(self.uf1, ddof=1)) if len(self.uf1) > 1 else None

    @property
    def uar_sd(self) -> float | None:
        return float(np.std(self.uar, ddof=1)) if len(self.uar) > 1 else None

    def seeds_text(self) -> str:
        """``1 seed (0)`` or ``3 seeds (0, 1, 2)``."""
        n = len(self.seeds)
        return f"{n} seed{'s' if n > 1 else ''} ({', '.join(map(str, self.seeds))})"


@dataclass(frozen=True)
class Resampling:
    """How a comparison's intervals were drawn: ``n_resamples`` resamples of its ``n_subjects``
    test subjects (and of the seeds: ``over``) with generator seed ``seed``, at ``level``."""

    n_resamples: int
    n_subjects: int
    over: str
    seed: int
    level: float = bootstrap.CI_LEVEL


@dataclass(frozen=True)
class Comparison:
    """A minus B: ``uf1_diff`` / ``uar_diff`` (means over seeds) and their percentile intervals
    ``uf1_ci`` / ``uar_ci``, drawn as ``resampling`` says."""

    a: Side
    b: Side
    uf1_diff: float
    uar_diff: float
    uf1_ci: tuple[float, float]
    uar_ci: tuple[float, float]
    resampling: Resampling


def _names(side: Sequence[RunView]) -> str:
    return "+".join(v.run_id for v in side)


def _differences(a: RunView, b: RunView) -> list[str]:
    """What differs between two runs that a paired comparison needs equal."""
    found = [
        f"{what} {x} vs {y}"
        for what, x, y in (
            ("split", a.split, b.split),
            ("store version", a.version_id, b.version_id),
            ("target", a.target, b.target),
            ("classes", ",".join(a.class_names), ",".join(b.class_names)),
        )
        if x != y
    ]
    if not found and a.fold_sets != b.fold_sets:
        if set(a.fold_sets) != set(b.fold_sets):
            found.append(
                f"folds differ ({len(a.fold_sets)} vs {len(b.fold_sets)} folds, "
                f"{len(set(a.fold_sets) ^ set(b.fold_sets))} not in both)"
            )
        else:
            other = sorted(n for n in a.fold_sets if a.fold_sets[n] != b.fold_sets[n])
            found.append(f"folds differ ({len(other)} fold(s) score other clips, first {other[0]})")
    return found


def check_comparable(a: Sequence[RunView], b: Sequence[RunView]) -> None:
    """Raise :class:`RunsNotComparable` (one line naming both sides and what differs) unless
    every run of ``a`` and ``b`` is on the same folds, split, store version, target and classes
    and each side's runs are seeds of one configuration."""
    if not a or not b:
        raise InvalidArgumentError("a comparison needs at least one run on each side")
    for side in (a, b):
        for other in side[1:]:
            if other.group_key != side[0].group_key:
                raise RunsNotComparable(
                    f"runs {side[0].run_id} and {other.run_id} are not seeds "
                    f"of one configuration; group only runs that differ in "
                    f"their seed"
                )
            if other.seed == side[0].seed:
                raise RunsNotComparable(
                    f"runs {side[0].run_id} and {other.run_id} have the same seed {other.seed}"
                )
    for other in [*a[1:], *b]:
        differ = _differences(a[0], other)
        if differ:
            first, second = (_names(a), _names(b)) if other in b else (a[0].run_id, other.run_id)
            raise RunsNotComparable(
                f"runs {first} and {second} cannot be compared: {'; '.join(differ)}"
            )


def compare_runs(
    a: RunView | Sequence[RunView],
    b: RunView | Sequence[RunView],
    *,
    n_resamples: int = bootstrap.DEFAULT_RESAMPLES,
    seed: int = 0,
    level: float = bootstrap.CI_LEVEL,
) -> Comparison:
    """A minus B with bootstrap intervals (see the module docstring); deterministic in
    ``seed``."""
    a = [a] if isinstance(a, RunView) else list(a)
    b = [b] if isinstance(b, RunView) else list(b)
    check_comparable(a, b)
    subjects = bootstrap.tested_subjects([*a, *b])
    if not subjects:
        raise RunsNotComparable(f"runs {_names(a)} and {_names(b)} scored no clip")
    conf_a = bootstrap.subject_confusions(a, subjects)
    conf_b = bootstrap.subject_confusions(b, subjects)
    rng = np.random.default_rng(seed)
    weights = bootstrap.subject_weights(len(subjects), n_resamples, rng)
    uf1_a, uar_a = bootstrap.group_scores(
        conf_a, weights, bootstrap.seed_picks(len(a), n_resamples, rng)
    )
    uf1_b, uar_b = bootstrap.group_scores(
        conf_b, weights, bootstrap.seed_picks(len(b), n_resamples, rng)
    )
    side_a = Side(tuple(a), *bootstrap.observed_scores(conf_a))
    side_b = Side(tuple(b), *bootstrap.observed_scores(conf_b))
    over = "subjects" if len(a) == len(b) == 1 else "subjects and seeds"
    return Comparison(
        a=side_a,
        b=side_b,
        uf1_diff=side_a.uf1_mean - side_b.uf1_mean,
        uar_diff=side_a.uar_mean - side_b.uar_mean,
        uf1_ci=bootstrap.interval(uf1_a - uf1_b, level),
        uar_ci=bootstrap.interval(uar_a - uar_b, level),
        resampling=Resampling(int(n_resamples), len(subjects), over, int(seed), level),
    )


def compare_per_dataset(
    a: Sequence[RunView], b: Sequence[RunView], **options
) -> dict[str, Comparison]:
    """:func:`compare_runs` on each source dataset's clips alone (views with ``datasets``);
    {} when the runs scored one dataset only (or their views carry no datasets)."""
    a, b = list(a), list(b)
    check_comparable(a, b)
    if a[0].datasets is None:
        return {}
    names = sorted(set(a[0].datasets.tolist()))
    if len(names) < 2:
        return {}
    return {
        name: compare_runs(
            [restrict(v, v.datasets == name) for v in a],
            [restrict(v, v.datasets == name) for v in b],
            **options,
        )
        for name in names
    }
