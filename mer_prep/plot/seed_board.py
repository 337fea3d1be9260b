"""The report's seed-group leaderboard (``mer-prep show``, section "runs"): the rows of
``mer_prep.evaluation.leaderboard`` as shown cells, one per seed group or configuration, ranked
by the mean over seeds, LEAKY rows unranked beside their clean rows.

    board = seed_board(runs, store.table)   # None: no run can be placed on it
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd

from mer_prep.evaluation.leaderboard import SHOWN, SHOWN_AU, build_leaderboard, group_runs
from mer_prep.evaluation.run_view import RunViewError, run_view


@dataclass(frozen=True)
class SeedBoard:
    """``columns``: the shown column names; ``rows``: each row's cells in that order, with
    ``leaky`` (rows[i] is LEAKY) alongside; ``au_columns`` / ``au_rows`` the same for the AU
    runs' table (``--target aus``, ranked by the AU macro F1); ``left_out``: why a run is not
    on it."""

    columns: tuple[str, ...]
    rows: list[tuple[list[str], bool]]
    left_out: list[str]
    au_columns: tuple[str, ...] = SHOWN_AU
    au_rows: list[tuple[list[str], bool]] = field(default_factory=list)


def _view(record, table: pd.DataFrame | None):
    """The run's view over ``table`` (the report's store version); a record of another
    version, whose clips that table lacks, is placed by its folds' subjects."""
    try:
        return run_view(record, table, multilabel=True)
    except RunViewError:
        return run_view(record, multilabel=True)


def seed_board(runs: Sequence, table: pd.DataFrame | None, n_resamples: int = 1000) -> SeedBoard:
    """The leaderboard of ``runs`` (run records) whose clips ``table`` (the sample table:
    ``sample_id``, ``subject``, ``dataset``) places; runs that cannot be scored (unknown
    subjects) are listed in ``left_out``."""
    views, left_out = [], []
    for record in runs:
        try:
            views.append(_view(record, table))
        except RunViewError as error:
            left_out.append(str(error))
    board = build_leaderboard(group_runs(views), n_resamples=n_resamples)
    rows, au_rows = (
        [([row.cells()[c] for c in row.shown], row.leakage != "clean") for row in part]
        for part in (board.emotion_rows, board.au_rows)
    )
    return SeedBoard(tuple(SHOWN), rows, left_out, au_rows=au_rows)
