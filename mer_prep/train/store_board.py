"""The leaderboard of every run recorded on a store (``mer_prep.evaluation.leaderboard`` over the
records of its ``runs`` branch), for the ``train`` flow's Prefect artifact:

    print(leaderboard_markdown("stores/casme2/mbcc64"))

Each record is viewed over the sample table of the store version it names (read once per
snapshot; a version that is gone places the record by its folds' subjects); AU runs are ranked
in a table of their own. Needs no PyTorch.
"""

from __future__ import annotations

import contextlib

import pandas as pd

from mer_prep.errors import MerPrepError
from mer_prep.evaluation.leaderboard import Leaderboard, build_leaderboard, group_runs
from mer_prep.evaluation.run_view import RunView, RunViewError, run_view
from mer_prep.train.runs_store import list_runs, open_run_store


def store_views(store: str) -> list[RunView]:
    """The views of ``store``'s ranked runs (oldest first), each over its version's table."""
    views: list[RunView] = []
    tables: dict[str, pd.DataFrame | None] = {}
    for record in list_runs(store):
        snapshot = record.store["snapshot_id"]
        if snapshot not in tables:
            try:
                tables[snapshot] = open_run_store(store, record).table
            except MerPrepError:  # the version is gone: subjects from the folds
                tables[snapshot] = None
        with contextlib.suppress(RunViewError):  # e.g. a clip the version's table lacks
            views.append(run_view(record, tables[snapshot], multilabel=True))
    return views


def store_leaderboard(store: str) -> Leaderboard:
    """One row per seed group or configuration of ``store``'s runs, ranked by the mean over
    seeds, LEAKY rows unranked beside their clean rows."""
    return build_leaderboard(group_runs(store_views(store)))


def leaderboard_markdown(store: str) -> str:
    """:func:`store_leaderboard` as a markdown table under a heading that says how it ranks."""
    return "\n".join(
        [
            f"# leaderboard of `{store}`",
            "",
            "Ranked by the mean over seeds; LEAKY rows (a sample-level split, or each fold's "
            "epoch chosen on its test subject) are not ranked and stand beside their clean row.",
            "",
            store_leaderboard(store).markdown(),
            "",
        ]
    )
