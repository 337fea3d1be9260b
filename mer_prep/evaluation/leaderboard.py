"""The leaderboard of a store's runs: one row per configuration (model, variant, overrides,
split, target, store version, selection) with its seeds, the mean +- sd over seeds of the
pooled UF1 / UAR (an AU run, ``--target aus``: its pooled AU macro F1) and a bootstrap interval
over test subjects (and seeds). Emotion rows and AU rows are ranked apart, each by its own
score, and shown as two tables.

Rows are ranked by the mean over seeds, never by a best seed. A LEAKY row (a sample-level
split, or each fold's epoch chosen on its test subject) gets no rank: it is labelled and placed
right after the clean row of the same model, overrides and seeds (on the same folds where there
is one), with its difference from it; a leaky row with no such clean row stands where its mean
puts it, still labelled and unranked.

    board = build_leaderboard(group_runs([run_view(r, table) for r in records]))
    print(board.text());  board.csv();  board.markdown()
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from mer_prep.evaluation import au_bootstrap, bootstrap
from mer_prep.evaluation.run_view import RunView
from mer_prep.evaluation.tables import aligned_table, csv_text, pipe_table

#: the scores a row of each target carries (the first one ranks) and how they are labelled
METRICS: dict[str, tuple[str, ...]] = {"emotion": ("uf1", "uar"), "aus": ("au_macro_f1",)}
LABELS = {"uf1": "UF1", "uar": "UAR", "au_macro_f1": "AU macro F1"}

COLUMNS = (
    *("rank", "model", "variant", "settings", "split", "target", "version", "leakage"),
    *("n_seeds", "seeds"),
    *(f"{metric}_{part}" for metric in LABELS for part in ("mean", "sd", "ci_low", "ci_high")),
    *(f"vs_clean_{metric}" for metric in LABELS),
    "runs",
)
SHOWN: tuple[str, ...] = (
    "rank",
    "model",
    "split",
    "target",
    "version",
    "leakage",
    "seeds",
    "UF1 mean ± sd",
    "UF1 95% CI",
    "UAR mean ± sd",
    "UAR 95% CI",
    "vs clean",
)
#: the shown columns of an AU row
SHOWN_AU: tuple[str, ...] = (*SHOWN[:7], "AU macro F1 mean ± sd", "AU macro F1 95% CI", "vs clean")


@dataclass(frozen=True, eq=False)
class LeaderboardRow:
    """One configuration: its seeds' pooled ``scores`` (each of its target's :data:`METRICS`:
    (n_seeds,) float64), the bootstrap ``intervals`` of their means, its ``rank`` (None for a
    LEAKY row) and, for a leaky row shown next to its clean row, ``vs_clean``: each score's
    mean minus the clean row's."""

    rank: int | None
    views: tuple[RunView, ...]
    scores: dict[str, np.ndarray]
    intervals: dict[str, tuple[float, float]]
    vs_clean: dict[str, float] | None = None

    @property
    def first(self) -> RunView:
        return self.views[0]

    @property
    def metrics(self) -> tuple[str, ...]:
        return tuple(self.scores)

    @property
    def is_au(self) -> bool:
        """True for an AU row (``--target aus``: scored by the AU macro F1)."""
        return self.metrics == METRICS["aus"]

    @property
    def uf1(self) -> np.ndarray:
        return self.scores["uf1"]

    @property
    def uar(self) -> np.ndarray:
        return self.scores["uar"]

    @property
    def uf1_ci(self) -> tuple[float, float]:
        return self.intervals["uf1"]

    @property
    def uar_ci(self) -> tuple[float, float]:
        return self.intervals["uar"]

    @property
    def vs_clean_uf1(self) -> float | None:
        return None if self.vs_clean is None else self.vs_clean.get("uf1")

    @property
    def vs_clean_uar(self) -> float | None:
        return None if self.vs_clean is None else self.vs_clean.get("uar")

    @property
    def seeds(self) -> tuple[int, ...]:
        return tuple(v.seed for v in self.views)

    @property
    def leakage(self) -> str:
        v = self.first
        parts = [
            what for what, on in (("split", v.leaky_split), ("selection", v.leaky_selection)) if on
        ]
        return f"LEAKY {'+'.join(parts)}" if parts else "clean"

    @property
    def settings(self) -> str:
        """Overrides, epochs and selection: ``filters=8, lr=0.01; 20 epochs; validation``."""
        v = self.first
        given = (
            "overrides not recorded"
            if v.overrides is None
            else ", ".join(
                f"{k}={val}" for k, val in sorted(v.overrides.items()) if k != "selection"
            )
        )  # the selection is shown last
        return "; ".join(part for part in (given, f"{v.epochs} epochs", v.selection) if part)

    def stat(self, metric: str) -> tuple[float, float | None]:
        """(mean, sample sd or None with one seed) of one of the row's scores over the seeds."""
        values = self.scores[metric]
        return float(np.mean(values)), (float(np.std(values, ddof=1)) if len(values) > 1 else None)

    def record(self) -> dict:
        """The row's values under :data:`COLUMNS` (numbers unrounded; None for the scores of
        the other target)."""
        v = self.first
        numbers: dict[str, float | None] = {}
        for metric in LABELS:
            present = metric in self.scores
            mean, sd = self.stat(metric) if present else (None, None)
            low, high = self.intervals[metric] if present else (None, None)
            numbers |= {
                f"{metric}_mean": mean,
                f"{metric}_sd": sd,
                f"{metric}_ci_low": low,
                f"{metric}_ci_high": high,
                f"vs_clean_{metric}": (self.vs_clean or {}).get(metric),
            }
        return {
            "rank": self.rank,
            "model": v.model,
            "variant": v.variant,
            "settings": self.settings,
            "split": v.split,
            "target": v.target,
            "version": v.version_id,
            "leakage": self.leakage,
            "n_seeds": len(self.views),
            "seeds": " ".join(map(str, self.seeds)),
            **numbers,
            "runs": " ".join(x.run_id for x in self.views),
        }

    @property
    def shown(self) -> tuple[str, ...]:
        """The row's shown columns: :data:`SHOWN`, or :data:`SHOWN_AU` for an AU row."""
        return SHOWN_AU if self.is_au else SHOWN

    def cells(self) -> dict[str, str]:
        """The row as shown (:attr:`shown`): ``0.712 ± 0.031`` (one seed: ``0.712``, its seed
        column saying ``1 seed``), ``[0.650, 0.771]``, ``+0.061 UF1, +0.050 UAR``."""
        n = len(self.views)
        scores = {}
        for metric in self.metrics:
            mean, sd = self.stat(metric)
            low, high = self.intervals[metric]
            scores[f"{LABELS[metric]} mean ± sd"] = (
                _fmt(mean) if sd is None else f"{_fmt(mean)} ± {_fmt(sd)}"
            )
            scores[f"{LABELS[metric]} 95% CI"] = f"[{_fmt(low)}, {_fmt(high)}]"
        vs = ", ".join(f"{diff:+.3f} {LABELS[m]}" for m, diff in (self.vs_clean or {}).items())
        return {
            "rank": "" if self.rank is None else str(self.rank),
            "model": f"{self.first.model}/{self.first.variant} ({self.settings})",
            "split": self.first.split,
            "target": self.first.target,
            "version": self.first.version_id,
            "leakage": self.leakage,
            "seeds": f"{n} seed{'s' if n > 1 else ''}",
            **scores,
            "vs clean": vs,
        }


def _fmt(value: float | None) -> str:
    return "-" if value is None or not np.isfinite(value) else f"{value:.3f}"


@dataclass(frozen=True)
class Leaderboard:
    """The rows in display order (see the module docstring): the emotion rows, then the AU
    rows."""

    rows: tuple[LeaderboardRow, ...]

    @property
    def emotion_rows(self) -> tuple[LeaderboardRow, ...]:
        return tuple(r for r in self.rows if not r.is_au)

    @property
    def au_rows(self) -> tuple[LeaderboardRow, ...]:
        return tuple(r for r in self.rows if r.is_au)

    def _tables(self) -> list[tuple[str, tuple[str, ...], tuple[LeaderboardRow, ...]]]:
        """(heading, shown columns, rows) of each table: the emotion table (also when empty,
        with no AU rows), then the AU table where there are AU rows."""
        tables = [("", SHOWN, self.emotion_rows)]
        if self.au_rows:
            if not self.emotion_rows:
                tables = []
            heading = "AU detection (target aus), ranked by the mean AU macro F1 over seeds:"
            tables.append((heading, SHOWN_AU, self.au_rows))
        return tables

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame([r.record() for r in self.rows], columns=list(COLUMNS))

    def csv(self) -> str:
        """Every :data:`COLUMNS` value, numbers to 4 decimals (read back with ``read_csv``)."""
        return csv_text([r.record() for r in self.rows], COLUMNS)

    def markdown(self) -> str:
        """Pipe tables of the shown cells (emotion, then AU), to paste into a paper's draft."""
        return "\n\n".join(
            (f"{heading}\n\n" if heading else "") + pipe_table(shown, [r.cells() for r in rows])
            for heading, shown, rows in self._tables()
        )

    def text(self) -> str:
        """The shown cells as aligned tables (emotion, then AU)."""
        return "\n\n".join(
            (f"{heading}\n" if heading else "") + aligned_table(shown, [r.cells() for r in rows])
            for heading, shown, rows in self._tables()
        )


def read_csv(text: str) -> pd.DataFrame:
    """A leaderboard written by :meth:`Leaderboard.csv`, as a frame of :data:`COLUMNS`."""
    return pd.read_csv(io.StringIO(text), dtype={"seeds": str, "runs": str})


def group_runs(views: Sequence[RunView]) -> list[list[RunView]]:
    """The runs grouped by their recorded seed group (``--seeds N``) where they name one, else
    by configuration (every setting but the seed), each group in seed order; of two runs of
    one group and seed, the later one in ``views`` is kept."""
    groups: dict[str, dict[int, RunView]] = {}
    for view in views:
        key = f"group:{view.group_id}" if view.group_id else view.group_key
        groups.setdefault(key, {})[view.seed] = view
    return [[group[s] for s in sorted(group)] for group in groups.values()]


def _scored(
    views: tuple[RunView, ...], n_resamples: int, rng: np.random.Generator
) -> LeaderboardRow:
    """The unranked row of one group: its seeds' scores and their bootstrap intervals."""
    subjects = bootstrap.tested_subjects(views)
    weights = bootstrap.subject_weights(len(subjects), n_resamples, rng)
    picks = bootstrap.seed_picks(len(views), n_resamples, rng)
    if views[0].y_true.ndim == 2:  # an AU run: (n, K) 0/1 targets
        counts = au_bootstrap.subject_au_counts(views, subjects)
        observed = {"au_macro_f1": au_bootstrap.observed_macro_f1(counts)}
        boot = {"au_macro_f1": au_bootstrap.group_macro_f1(counts, weights, picks)}
    else:
        confusions = bootstrap.subject_confusions(views, subjects)
        observed = dict(zip(("uf1", "uar"), bootstrap.observed_scores(confusions), strict=True))
        boot = dict(
            zip(("uf1", "uar"), bootstrap.group_scores(confusions, weights, picks), strict=True)
        )
    intervals = {metric: bootstrap.interval(values) for metric, values in boot.items()}
    return LeaderboardRow(None, views, observed, intervals)


def _partner_key(view: RunView, seeds: tuple[int, ...]) -> str:
    """What a leaky row shares with its clean row: model, variant, overrides other than the
    selection, epochs, store version, target, classes and seeds."""
    overrides = {k: v for k, v in (view.overrides or {}).items() if k != "selection"}
    return json.dumps(
        [
            view.model,
            view.variant,
            overrides,
            view.epochs,
            view.version_id,
            view.target,
            list(view.class_names),
            list(seeds),
        ],
        sort_keys=True,
        default=str,
    )


def build_leaderboard(
    groups: Sequence[Sequence[RunView]],
    *,
    n_resamples: int = bootstrap.DEFAULT_RESAMPLES,
    seed: int = 0,
) -> Leaderboard:
    """Rank ``groups`` (lists of seeds of one configuration, e.g. :func:`group_runs`) by the
    mean UF1 over seeds (ties: mean UAR; AU rows apart, by the mean AU macro F1), LEAKY rows
    next to their clean rows; the intervals from ``n_resamples`` resamples drawn with
    generator seed ``seed``."""
    rng = np.random.default_rng(seed)
    scored = [
        _scored(tuple(views), n_resamples, rng)
        for views in groups
        if views and any(len(v.y_true) for v in views)
    ]
    shown: list[LeaderboardRow] = []
    for is_au in (False, True):
        shown += _arranged([r for r in scored if r.is_au == is_au])
    return Leaderboard(tuple(shown))


def _arranged(scored: list[LeaderboardRow]) -> list[LeaderboardRow]:
    """Rows of one target, ranked by their scores' means in order, leaky rows unranked after
    their clean rows."""
    order = sorted(
        scored,
        key=lambda r: (*(-_finite(r.stat(m)[0]) for m in r.metrics), r.first.run_id),
    )
    clean = [r for r in order if r.leakage == "clean"]
    ranks = {id(r): k + 1 for k, r in enumerate(clean)}
    partner_of: dict[int, LeaderboardRow] = {}
    for row in order:
        if row.leakage == "clean":
            continue
        key = _partner_key(row.first, row.seeds)
        candidates = [c for c in clean if _partner_key(c.first, c.seeds) == key]
        same_folds = [c for c in candidates if c.first.fold_sets == row.first.fold_sets]
        if same_folds or candidates:
            partner_of[id(row)] = (same_folds or candidates)[0]
    shown: list[LeaderboardRow] = []
    for row in order:
        if id(row) in partner_of:
            continue  # placed after its clean row below
        shown.append(_with(row, ranks.get(id(row))))
        for leaky in order:
            if partner_of.get(id(leaky)) is row:
                shown.append(_with(leaky, None, clean=row))
    return shown


def _with(
    row: LeaderboardRow, rank: int | None, clean: LeaderboardRow | None = None
) -> LeaderboardRow:
    if clean is None:
        return replace(row, rank=rank)
    return replace(
        row,
        rank=rank,
        vs_clean={m: row.stat(m)[0] - clean.stat(m)[0] for m in row.metrics},
    )


def _finite(value: float) -> float:
    return value if np.isfinite(value) else -1.0
