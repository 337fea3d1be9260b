"""The leaderboard of a store's runs: one row per configuration (model, variant, overrides,
split, target, store version, selection) with its seeds, the mean +- sd over seeds of the
pooled UF1 / UAR and a bootstrap interval over test subjects (and seeds).

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

from mer_prep.evaluation import bootstrap
from mer_prep.evaluation.run_view import RunView

COLUMNS = (
    "rank",
    "model",
    "variant",
    "settings",
    "split",
    "target",
    "version",
    "leakage",
    "n_seeds",
    "seeds",
    "uf1_mean",
    "uf1_sd",
    "uf1_ci_low",
    "uf1_ci_high",
    "uar_mean",
    "uar_sd",
    "uar_ci_low",
    "uar_ci_high",
    "vs_clean_uf1",
    "vs_clean_uar",
    "runs",
)
SHOWN = (
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


@dataclass(frozen=True)
class LeaderboardRow:
    """One configuration: its seeds' pooled UF1 / UAR (``uf1`` / ``uar`` (n_seeds,)), the
    bootstrap intervals of their means, its ``rank`` (None for a LEAKY row) and, for a leaky row
    shown next to its clean row, the differences ``vs_clean_uf1`` / ``vs_clean_uar``
    (leaky minus clean)."""

    rank: int | None
    views: tuple[RunView, ...]
    uf1: np.ndarray
    uar: np.ndarray
    uf1_ci: tuple[float, float]
    uar_ci: tuple[float, float]
    vs_clean_uf1: float | None = None
    vs_clean_uar: float | None = None

    @property
    def first(self) -> RunView:
        return self.views[0]

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
        """(mean, sample sd or None with one seed) of ``uf1`` or ``uar`` over the seeds."""
        values = getattr(self, metric)
        return float(np.mean(values)), (float(np.std(values, ddof=1)) if len(values) > 1 else None)

    def record(self) -> dict:
        """The row's values under :data:`COLUMNS` (numbers unrounded)."""
        v = self.first
        uf1, uf1_sd = self.stat("uf1")
        uar, uar_sd = self.stat("uar")
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
            "uf1_mean": uf1,
            "uf1_sd": uf1_sd,
            "uf1_ci_low": self.uf1_ci[0],
            "uf1_ci_high": self.uf1_ci[1],
            "uar_mean": uar,
            "uar_sd": uar_sd,
            "uar_ci_low": self.uar_ci[0],
            "uar_ci_high": self.uar_ci[1],
            "vs_clean_uf1": self.vs_clean_uf1,
            "vs_clean_uar": self.vs_clean_uar,
            "runs": " ".join(x.run_id for x in self.views),
        }

    def cells(self) -> dict[str, str]:
        """The row as shown (:data:`SHOWN`): ``0.712 ± 0.031`` (one seed: ``0.712``, its seed
        column saying ``1 seed``), ``[0.650, 0.771]``, ``+0.061 UF1, +0.050 UAR``."""
        n = len(self.views)

        def mean_sd(metric: str) -> str:
            mean, sd = self.stat(metric)
            return _fmt(mean) if sd is None else f"{_fmt(mean)} ± {_fmt(sd)}"

        vs = (
            ""
            if self.vs_clean_uf1 is None
            else (f"{self.vs_clean_uf1:+.3f} UF1, {self.vs_clean_uar:+.3f} UAR")
        )
        return {
            "rank": "" if self.rank is None else str(self.rank),
            "model": f"{self.first.model}/{self.first.variant} ({self.settings})",
            "split": self.first.split,
            "target": self.first.target,
            "version": self.first.version_id,
            "leakage": self.leakage,
            "seeds": f"{n} seed{'s' if n > 1 else ''}",
            "UF1 mean ± sd": mean_sd("uf1"),
            "UF1 95% CI": f"[{_fmt(self.uf1_ci[0])}, {_fmt(self.uf1_ci[1])}]",
            "UAR mean ± sd": mean_sd("uar"),
            "UAR 95% CI": f"[{_fmt(self.uar_ci[0])}, {_fmt(self.uar_ci[1])}]",
            "vs clean": vs,
        }


def _fmt(value: float | None) -> str:
    return "-" if value is None or not np.isfinite(value) else f"{value:.3f}"


@dataclass(frozen=True)
class Leaderboard:
    """The rows in display order (see the module docstring)."""

    rows: tuple[LeaderboardRow, ...]

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame([r.record() for r in self.rows], columns=list(COLUMNS))

    def csv(self) -> str:
        """Every :data:`COLUMNS` value, numbers to 4 decimals (read back with ``read_csv``)."""
        out = io.StringIO()
        self.frame().to_csv(out, index=False, float_format="%.4f")
        return out.getvalue()

    def markdown(self) -> str:
        """A pipe table of the shown cells, to paste into a paper's draft."""
        lines = ["| " + " | ".join(SHOWN) + " |", "|" + "|".join("---" for _ in SHOWN) + "|"]
        lines += [
            "| " + " | ".join(r.cells()[c].replace("|", "\\|") for c in SHOWN) + " |"
            for r in self.rows
        ]
        return "\n".join(lines)

    def text(self) -> str:
        """The shown cells as an aligned table."""
        cells = [r.cells() for r in self.rows]
        widths = {c: max(len(c), *(len(x[c]) for x in cells)) if cells else len(c) for c in SHOWN}
        lines = ["  ".join(f"{c:<{widths[c]}}" for c in SHOWN).rstrip()]
        lines += ["  ".join(f"{x[c]:<{widths[c]}}" for c in SHOWN).rstrip() for x in cells]
        return "\n".join(lines)


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
    views: Sequence[RunView], n_resamples: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, tuple, tuple]:
    subjects = bootstrap.tested_subjects(views)
    confusions = bootstrap.subject_confusions(views, subjects)
    uf1, uar = bootstrap.observed_scores(confusions)
    weights = bootstrap.subject_weights(len(subjects), n_resamples, rng)
    boot_uf1, boot_uar = bootstrap.group_scores(
        confusions, weights, bootstrap.seed_picks(len(views), n_resamples, rng)
    )
    return uf1, uar, bootstrap.interval(boot_uf1), bootstrap.interval(boot_uar)


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
    mean UF1 over seeds (ties: mean UAR), LEAKY rows next to their clean rows; the intervals
    from ``n_resamples`` resamples drawn with generator seed ``seed``."""
    rng = np.random.default_rng(seed)
    scored = []
    for views in groups:
        views = tuple(views)
        if not views or not any(len(v.y_true) for v in views):
            continue
        uf1, uar, uf1_ci, uar_ci = _scored(views, n_resamples, rng)
        scored.append(LeaderboardRow(None, views, uf1, uar, uf1_ci, uar_ci))
    order = sorted(
        scored,
        key=lambda r: (-_finite(r.stat("uf1")[0]), -_finite(r.stat("uar")[0]), r.first.run_id),
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
    return Leaderboard(tuple(shown))


def _with(
    row: LeaderboardRow, rank: int | None, clean: LeaderboardRow | None = None
) -> LeaderboardRow:
    if clean is None:
        return replace(row, rank=rank)
    return replace(
        row,
        rank=rank,
        vs_clean_uf1=row.stat("uf1")[0] - clean.stat("uf1")[0],
        vs_clean_uar=row.stat("uar")[0] - clean.stat("uar")[0],
    )


def _finite(value: float) -> float:
    return value if np.isfinite(value) else -1.0
