"""``mer-prep compare`` (two runs, or two seed groups, on the same folds), ``mer-prep
per-dataset`` (a composite run's scores per source dataset) and the leaderboard that
``mer-prep runs STORE --leaderboard`` prints. All read the records on the store's ``runs``
branch and the sample table of the store version each record names (for each clip's subject
and source dataset); none needs PyTorch. The numbers come from ``mer_prep.evaluation.compare``,
``per_dataset`` and ``leaderboard``.
"""

from __future__ import annotations

import click

from mer_prep.cli import main
from mer_prep.cli.options import count_option
from mer_prep.errors import InvalidArgumentError

# mer_prep.evaluation.bootstrap.DEFAULT_RESAMPLES, not imported here: that would load numpy and
# pandas with every command's start (0.7 s) (tests/test_compare.py checks they agree)
DEFAULT_RESAMPLES = 2000


def _number(value: float | None, sign: bool = False) -> str:
    import math

    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:+.3f}" if sign else f"{value:.3f}"


class _Tables:
    """Sample tables of the store versions records name, read once per snapshot."""

    def __init__(self, store: str) -> None:
        self.store = store
        self._tables: dict = {}

    def table(self, record, *, required: bool = True):
        from mer_prep.errors import MerPrepError
        from mer_prep.train.runs_store import open_run_store

        snapshot = record.store["snapshot_id"]
        if snapshot not in self._tables:
            try:
                self._tables[snapshot] = open_run_store(self.store, record).table
            except MerPrepError:
                if required:
                    raise
                self._tables[snapshot] = None  # gone: subjects from the folds, no datasets
        return self._tables[snapshot]

    def view(self, record, *, required: bool = True, multilabel: bool = False):
        from mer_prep.evaluation.run_view import run_view

        table = self.table(record, required=required)
        return run_view(record, table, multilabel=multilabel)


def _side(store: str, ids: str, tables: _Tables) -> list:
    """The views of ``ids``: run ids joined by commas, or a seed group's id (``group-...``,
    as ``mer-prep train --seeds N`` and ``mer-prep runs`` print it): every seed of it."""
    from mer_prep.train.runs_store import list_runs, load_run

    wanted = [run_id.strip() for run_id in ids.split(",") if run_id.strip()]
    if len(wanted) == 1 and wanted[0].startswith("group-"):
        members = [r for r in list_runs(store) if r.group_id == wanted[0]]
        if not members:
            raise InvalidArgumentError(f"store {store} records no run of group {wanted[0]}")
        return [tables.view(r) for r in sorted(members, key=lambda r: r.seed)]
    return [tables.view(load_run(store, run_id, with_checkpoints=False)) for run_id in wanted]


@main.command()
@click.argument("store")
@click.argument("run_a", metavar="RUN_A")
@click.argument("run_b", metavar="RUN_B")
@count_option(
    "--resamples",
    default=DEFAULT_RESAMPLES,
    minimum=100,
    help="Bootstrap resamples of the test subjects.",
)
@count_option("--seed", default=0, minimum=0, help="Seed of the bootstrap's generator.")
def compare(store, run_a, run_b, resamples, seed):
    """UF1 / UAR of RUN_A minus RUN_B on STORE, with a 95% bootstrap interval over test
    subjects. RUN_A / RUN_B may each be several run ids joined by commas (seeds of one
    configuration), or a seed group's id (``group-...``): the interval then also resamples
    the seeds. Runs on other folds, splits,
    store versions or targets are refused; a composite's datasets are also compared alone."""
    from mer_prep.evaluation.compare import compare_per_dataset, compare_runs

    tables = _Tables(store)
    a, b = _side(store, run_a, tables), _side(store, run_b, tables)
    result = compare_runs(a, b, n_resamples=resamples, seed=seed)
    click.echo(comparison_text(result))
    by_dataset = compare_per_dataset(a, b, n_resamples=resamples, seed=seed)
    if by_dataset:
        click.echo("")
        click.echo("per source dataset (pooled over the folds; interval over its subjects):")
        width = max(len(name) for name in by_dataset)
        for name, part in by_dataset.items():
            click.echo(
                f"{name:<{width}}  {part.resampling.n_subjects:>3} subj  "
                f"UF1 {_number(part.a.uf1_mean)} vs {_number(part.b.uf1_mean)} "
                f"{_number(part.uf1_diff, True)} [{_number(part.uf1_ci[0], True)}, "
                f"{_number(part.uf1_ci[1], True)}]  UAR {_number(part.a.uar_mean)} vs "
                f"{_number(part.b.uar_mean)} {_number(part.uar_diff, True)} "
                f"[{_number(part.uar_ci[0], True)}, {_number(part.uar_ci[1], True)}]"
            )


@main.command("per-dataset")
@click.argument("store")
@click.argument("run_id", metavar="RUN_ID")
def per_dataset(store, run_id):
    """UF1 / UAR / confusion of each source dataset inside a composite run (SMIC, CASME II,
    SAMM for megc2019), each pooled over all folds as MEGC pools them, and the overall."""
    from mer_prep.evaluation.per_dataset import per_dataset_scores, per_dataset_text
    from mer_prep.train.runs_store import load_run

    view = _Tables(store).view(load_run(store, run_id, with_checkpoints=False))
    click.echo(f"run {view.run_id}: {view.describe()}")
    click.echo(per_dataset_text(per_dataset_scores(view)))


def comparison_text(result) -> str:
    """What each side is (runs, seeds, model, variant, overrides, epochs, split, selection,
    store version, LEAKY labels), then the scores of both, A - B and its interval."""
    lines = []
    for label, side in (("A", result.a), ("B", result.b)):
        first = side.views[0]
        lines.append(f"{label}: {' '.join(side.run_ids)}: {side.seeds_text()}")
        lines.append(f"   {first.describe()}")
    first = result.a.views[0]
    n_clips = len(first.y_true)
    lines.append(
        f"on {len(first.fold_sets)} folds of split {first.split}, {n_clips} clips of "
        f"{result.resampling.n_subjects} test subjects, store version {first.version_id}"
    )
    level = round(result.resampling.level * 100)
    lines.append(
        f"{'':<4} {'A':>6} {'B':>6} {'A - B':>7}  {level}% CI ({result.resampling.n_resamples} "
        f"resamples of the {result.resampling.over}, seed {result.resampling.seed})"
    )
    for name, a, b, diff, ci in (
        ("UF1", result.a.uf1_mean, result.b.uf1_mean, result.uf1_diff, result.uf1_ci),
        ("UAR", result.a.uar_mean, result.b.uar_mean, result.uar_diff, result.uar_ci),
    ):
        lines.append(
            f"{name:<4} {_number(a):>6} {_number(b):>6} {_number(diff, True):>7}  "
            f"[{_number(ci[0], True)}, {_number(ci[1], True)}]"
        )
    for label, side in (("A", result.a), ("B", result.b)):
        if side.views[0].leaky:
            lines.append(
                f"{label} is {side.views[0].leak_label}: its scores are not "
                f"subject-independent, and the difference carries the leak"
            )
    return "\n".join(lines)


def _print_board(board, fmt: str) -> None:
    if fmt == "csv":
        click.echo(board.csv(), nl=False)
    elif fmt == "markdown":
        click.echo(board.markdown())
    else:
        click.echo(board.text())


def print_spot_leaderboard(store: str, fmt: str) -> None:
    """The spotting leaderboard of ``store``'s spotting runs (``mer_prep.spotting.board``) in
    ``fmt`` (``table``, ``csv`` or ``markdown``)."""
    from mer_prep.spotting.board import spot_leaderboard
    from mer_prep.spotting.records import list_spot_runs

    records = list_spot_runs(store)
    if not records:
        raise InvalidArgumentError(
            f"store {store} records no spotting run (`mer-prep spot {store} --method ...`)"
        )
    board = spot_leaderboard(records)
    _print_board(board, fmt)
    if fmt == "table" and any(r.rank is None for r in board.rows):
        click.echo(
            "LEAKY rows are not ranked: their values were chosen on the test subject; "
            "'vs clean' is the leaky mean minus the clean row above it"
        )


def print_leaderboard(store: str, records, fmt: str) -> None:
    """The leaderboard of ``records`` (``mer_prep.evaluation.leaderboard``) in ``fmt``
    (``table``, ``csv`` or ``markdown``); records whose store version is gone are placed by
    their folds' subjects."""
    from mer_prep.evaluation.leaderboard import build_leaderboard, group_runs
    from mer_prep.evaluation.run_view import RunViewError

    tables = _Tables(store)
    views, left_out = [], []
    for record in records:
        try:
            views.append(tables.view(record, required=False, multilabel=True))
        except RunViewError as error:  # e.g. a clip the version's table lacks
            left_out.append(str(error))
    board = build_leaderboard(group_runs(views))
    for reason in left_out:  # on stderr: a csv or markdown table stays pasteable
        click.echo(f"not in the leaderboard: {reason}", err=True)
    _print_board(board, fmt)
    if fmt == "table":
        leaky = [r for r in board.rows if r.rank is None]
        if leaky:
            click.echo(
                f"LEAKY rows are not ranked: a sample-level split or an epoch chosen "
                f"on the test subject ({len(leaky)} row(s)); 'vs clean' is the leaky "
                f"mean minus the clean row above it"
            )
