"""The spotting leaderboard of a store's spotting runs: methods x datasets, the ME (micro), MaE
(macro) and overall F1 (pooled over every video, as MEGC scores them) and STRS where the run
recognised what it spotted; mean +- sd over seeds; clean and leaky side by side.

    board = spot_leaderboard(list_spot_runs(store))
    print(board.text());  board.csv();  board.markdown()

One row per configuration: the method, its settings (grid, regions, training settings), the
dataset, the store version and the split; its runs are the seeds (a training-free method is
deterministic: one run, "1 seed"; of two runs of one configuration and seed the later one is
kept). Within each dataset the clean rows are ranked by the mean overall F1 (ties: ME F1), never
by a best seed. A LEAKY row (its values chosen on the test subject) gets no rank and stands right
after the clean row of the same configuration and seeds, with the difference of its overall F1
(and STRS) from it; a leaky row with no such clean row stands where its mean puts it, labelled.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mer_prep.evaluation.tables import aligned_table, csv_text, pipe_table
from mer_prep.spotting.records import SpotRunRecord

#: the scores of a row (column name -> heading shown), read by :func:`record_scores`
SCORES = {"me_f1": "ME F1", "mae_f1": "MaE F1", "overall_f1": "overall F1", "strs": "STRS"}
COLUMNS = (
    "rank",
    "method",
    "settings",
    "dataset",
    "version",
    "split",
    "leakage",
    "n_seeds",
    "seeds",
    *(f"{name}_{part}" for name in SCORES for part in ("mean", "sd")),
    "vs_clean_overall_f1",
    "vs_clean_strs",
    "runs",
)
SHOWN = (
    "rank",
    "method",
    "dataset",
    "version",
    "leakage",
    "seeds",
    *SCORES.values(),
    "vs clean",
)


def record_scores(record: SpotRunRecord) -> dict[str, float]:
    """The pooled scores of one run (NaN where undefined, e.g. STRS of a run that recognised
    nothing)."""
    metrics = record.metrics

    def f1(kind: str) -> float:
        value = (metrics.get(kind) or {}).get("f1")
        return float("nan") if value is None else float(value)

    strs = (record.attrs.get("strs") or {}).get("strs")
    return {
        "me_f1": f1("me"),
        "mae_f1": f1("mae"),
        "overall_f1": f1("overall"),
        "strs": float("nan") if strs is None else float(strs),
    }


def _seed(record: SpotRunRecord) -> int:
    """A learned run's training seed (``training.seed``); 0 for a training-free run."""
    return int((record.attrs.get("training") or {}).get("seed") or 0)


def _settings(record: SpotRunRecord) -> dict | None:
    """A learned run's training settings (not its seed or timings); None when training-free."""
    training = record.attrs.get("training")
    return None if training is None else training.get("settings")


def configuration_key(record: SpotRunRecord, *, with_tuning: bool = True) -> str:
    """Everything that identifies a run's configuration but its seed (and, without
    ``with_tuning``, where its values were chosen): JSON."""
    a = record.attrs
    key = {
        "method": a.get("method"),
        "split": a.get("split"),
        "dataset": (a.get("store") or {}).get("dataset"),
        "version_id": (a.get("store") or {}).get("version_id"),
        "grid": a.get("grid"),
        "regions": a.get("regions"),
        "training": _settings(record),
        "recognizer": a.get("recognizer"),
    }
    if with_tuning:
        key["tune_on"] = a.get("tune_on")
    return json.dumps(key, sort_keys=True, default=str)


@dataclass(frozen=True, eq=False)
class SpotBoardRow:
    """One configuration: its seeds' ``runs``, their ``scores`` (name -> (n_seeds,) float64),
    its ``rank`` (None for a LEAKY row) and, for a leaky row beside its clean row, ``vs_clean``
    (its mean overall F1 and STRS minus the clean row's)."""

    rank: int | None
    runs: tuple[SpotRunRecord, ...]
    scores: dict[str, np.ndarray]
    vs_clean: dict[str, float] | None = None

    @property
    def first(self) -> SpotRunRecord:
        return self.runs[0]

    @property
    def dataset(self) -> str:
        return str((self.first.attrs.get("store") or {}).get("dataset") or "?")

    @property
    def version(self) -> str:
        return str((self.first.attrs.get("store") or {}).get("version_id") or "-")

    @property
    def leakage(self) -> str:
        return "LEAKY tuned on test" if self.first.leaky else "clean"

    @property
    def settings(self) -> str:
        """The grid and training settings, compact JSON (what a reader needs to rerun it)."""
        a = self.first.attrs
        given = {k: a[k] for k in ("grid", "regions", "recognizer") if a.get(k)}
        if _settings(self.first):
            given["training"] = _settings(self.first)
        return json.dumps(given, sort_keys=True, default=str)

    def stat(self, name: str) -> tuple[float, float | None]:
        """(mean, sample sd or None with one seed) of a score over the seeds (NaN when any
        seed's is undefined)."""
        values = self.scores[name]
        return float(np.mean(values)), (float(np.std(values, ddof=1)) if len(values) > 1 else None)

    def record(self) -> dict:
        """The row under :data:`COLUMNS` (numbers unrounded)."""
        out: dict = {
            "rank": self.rank,
            "method": self.first.method,
            "settings": self.settings,
            "dataset": self.dataset,
            "version": self.version,
            "split": self.first.attrs.get("split"),
            "leakage": self.leakage,
            "n_seeds": len(self.runs),
            "seeds": " ".join(str(_seed(r)) for r in self.runs),
        }
        for name in SCORES:
            out[f"{name}_mean"], out[f"{name}_sd"] = self.stat(name)
        for name in ("overall_f1", "strs"):
            out[f"vs_clean_{name}"] = (self.vs_clean or {}).get(name)
        out["runs"] = " ".join(r.run_id for r in self.runs)
        return out

    def cells(self) -> dict[str, str]:
        """The row as shown (:data:`SHOWN`)."""
        n = len(self.runs)
        shown = {
            "rank": "" if self.rank is None else str(self.rank),
            "method": self.first.method,
            "dataset": self.dataset,
            "version": self.version,
            "leakage": self.leakage,
            "seeds": f"{n} seed{'s' if n > 1 else ''}",
        }
        for name, heading in SCORES.items():
            mean, sd = self.stat(name)
            plain = sd is None or not np.isfinite(mean)
            shown[heading] = _fmt(mean) if plain else f"{_fmt(mean)} ± {_fmt(sd)}"
        shown["vs clean"] = ", ".join(
            f"{diff:+.3f} {SCORES[name]}"
            for name, diff in (self.vs_clean or {}).items()
            if np.isfinite(diff)
        )
        return shown


def _fmt(value: float) -> str:
    return "-" if not np.isfinite(value) else f"{value:.3f}"


@dataclass(frozen=True)
class SpotLeaderboard:
    """The rows in display order (see the module docstring)."""

    rows: tuple[SpotBoardRow, ...]

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame([r.record() for r in self.rows], columns=list(COLUMNS))

    def csv(self) -> str:
        """Every :data:`COLUMNS` value, numbers to 4 decimals."""
        return csv_text([r.record() for r in self.rows], COLUMNS)

    def markdown(self) -> str:
        return pipe_table(SHOWN, [r.cells() for r in self.rows])

    def text(self) -> str:
        return aligned_table(SHOWN, [r.cells() for r in self.rows])


def group_spot_runs(records: Sequence[SpotRunRecord]) -> list[list[SpotRunRecord]]:
    """The runs grouped by configuration, each group in seed order (of two runs of one
    configuration and seed, the later one in ``records`` is kept)."""
    groups: dict[str, dict[int, SpotRunRecord]] = {}
    for record in records:
        groups.setdefault(configuration_key(record), {})[_seed(record)] = record
    return [[group[s] for s in sorted(group)] for group in groups.values()]


def spot_leaderboard(records: Sequence[SpotRunRecord]) -> SpotLeaderboard:
    """The leaderboard of ``records`` (see the module docstring)."""
    rows = []
    for runs in group_spot_runs(records):
        per_seed = [record_scores(r) for r in runs]
        scores = {name: np.array([s[name] for s in per_seed]) for name in SCORES}
        rows.append(SpotBoardRow(None, tuple(runs), scores))
    shown: list[SpotBoardRow] = []
    for dataset in sorted({r.dataset for r in rows}):
        shown += _arranged([r for r in rows if r.dataset == dataset])
    return SpotLeaderboard(tuple(shown))


def _arranged(rows: list[SpotBoardRow]) -> list[SpotBoardRow]:
    """One dataset's rows: clean ones ranked, each leaky one right after its clean twin."""

    def order_key(row: SpotBoardRow) -> tuple:
        overall, me = row.stat("overall_f1")[0], row.stat("me_f1")[0]
        return (-_finite(overall), -_finite(me), row.first.run_id)

    order = sorted(rows, key=order_key)
    clean = [r for r in order if not r.first.leaky]

    def twin_key(row: SpotBoardRow) -> tuple[str, tuple[int, ...]]:
        return configuration_key(row.first, with_tuning=False), tuple(map(_seed, row.runs))

    twins = {twin_key(r): r for r in reversed(clean)}  # the best clean row of each key
    placed: dict[int, list[SpotBoardRow]] = {id(r): [] for r in clean}
    alone = []
    for row in order:
        if row.first.leaky:
            twin = twins.get(twin_key(row))
            if twin is None:
                alone.append(row)
            else:
                diff = {n: row.stat(n)[0] - twin.stat(n)[0] for n in ("overall_f1", "strs")}
                placed[id(twin)].append(SpotBoardRow(None, row.runs, row.scores, diff))
    shown: list[SpotBoardRow] = []
    rank = 0
    for row in order:
        if row.first.leaky:
            if any(row is a for a in alone):
                shown.append(row)
            continue
        rank += 1
        shown.append(SpotBoardRow(rank, row.runs, row.scores))
        shown += placed[id(row)]
    return shown


def _finite(value: float) -> float:
    return value if np.isfinite(value) else -1.0
