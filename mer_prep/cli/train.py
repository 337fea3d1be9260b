"""Commands that train and report: train, runs, models.

``mer-prep train`` needs the ``train`` extra (PyTorch); without it the command says, in one
line, what to install. ``mer-prep runs`` reads the records on the store's ``runs`` branch and
needs no PyTorch.
"""

from __future__ import annotations

import math
import re

import click
import yaml

from mer_prep.cli import main
from mer_prep.cli.options import choice_option, count_option, repeated_option
from mer_prep.errors import InvalidArgumentError


def _number(value) -> str:
    return (
        "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}"
    )


def parse_settings(values: tuple[str, ...]) -> dict:
    """``--set key=value`` model config overrides; values are read as YAML (8, 0.5, [8, 16])."""
    settings = {}
    for value in values:
        key, sep, item = value.partition("=")
        if not sep or not key:
            raise InvalidArgumentError(f"--set wants key=value, got {value!r}")
        try:
            parsed = yaml.safe_load(item)
        except yaml.YAMLError as error:
            problem = str(error).splitlines()[0]
            raise InvalidArgumentError(
                f"--set {value!r}: the value is not YAML ({problem})"
            ) from None
        settings[key.strip()] = tuple(parsed) if isinstance(parsed, list) else parsed
    return settings


# [scheme://]host:port, host a name, IPv4 or [IPv6]; what a Dask scheduler listens on
_DASK_ADDRESS = re.compile(
    r"^(?:(?:tcp|tls|ucx|ws|wss)://)?(?:[A-Za-z0-9_.-]+|\[[0-9A-Fa-f:.]+\])"
    r":(\d{1,5})$"
)


def check_dask_address(address: str | None) -> None:
    """Refuse a ``--dask-address`` that is not ``[tcp://]HOST:PORT`` (port 1-65535)."""
    if address is None:
        return
    match = _DASK_ADDRESS.match(address)
    if not match or not 0 < int(match.group(1)) < 65536:
        raise InvalidArgumentError(
            f"--dask-address {address!r} is not a scheduler address: "
            f"give [tcp://]HOST:PORT, e.g. tcp://127.0.0.1:8786"
        )


def print_record(record) -> None:
    """The per-fold and pooled table of a run."""
    leaky = f"  {record.leak_label}" if record.leak_label else ""
    click.echo(
        f"run {record.run_id}: {record.name} on {record.version_id} "
        f"(snapshot {record.snapshot_id}), split {record.split}{leaky}"
    )
    click.echo(f"settings: {record.settings()}")
    table = record.fold_table()
    width = max(len("fold"), *(len(str(f)) for f in table["fold"]))
    click.echo(f"{'fold':<{width}}  {'n':>4}  {'UF1':>6}  {'UAR':>6}  {'acc':>6}  epoch")
    for row in table.itertuples():
        if row.fold == "pooled":
            click.echo("-" * (width + 38))
        epoch = (
            ""
            if row.epoch is None or (isinstance(row.epoch, float) and math.isnan(row.epoch))
            else str(int(row.epoch))
        )
        click.echo(
            f"{row.fold:<{width}}  {int(row.n or 0):>4}  {_number(row.uf1):>6}  "
            f"{_number(row.uar):>6}  {_number(row.accuracy):>6}  {epoch}"
        )
    click.echo(
        f"selection: {record.training.get('selection', '?')}; clips: "
        f"{record.aggregation}; device {record.device}; {record.duration_s:.1f} s"
    )
    if record.selection_warning:
        click.echo(f"warning: {record.selection_warning}")
    if record.au_metrics is not None:
        from mer_prep.train.au_target import au_report

        for line in au_report(record.au_metrics):
            click.echo(line)


@main.command()
@click.argument("store")
@click.option("--model", "model", required=True, help="Model name (see `mer-prep models`).")
@click.option(
    "--split",
    default="loso",
    show_default=True,
    help="loso, megc2019 or a split stored with `mer-prep split`.",
)
@click.option("--variant", default=None, help="Training variant [default: the model's].")
@count_option("--epochs", default=None, help="Override the preset's epochs.")
@count_option("--batch-size", default=None, help="Override the preset's batch size.")
@click.option(
    "--lr",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Override the preset's learning rate.",
)
@choice_option(
    "--target",
    ["emotion", "aus"],
    default="emotion",
    help="What the model predicts: the store's emotion classes, or its action units (the "
    "12 cross-dataset AUs; BCE with per-AU positive weights; per-AU and macro F1).",
)
@click.option("--device", default=None, help="cpu or cuda [default: cuda when available].")
@count_option("--seed", default=0, minimum=0, maximum=2**32 - 1, help="The first seed.")
@count_option(
    "--seeds",
    default=1,
    maximum=100,
    help="Train the same folds with seeds SEED, SEED+1, ...: one record each, one run group "
    "(mean +- sd over the seeds).",
)
@choice_option(
    "--selection",
    ["validation", "last_epoch", "test-oracle"],
    help="Override the preset's checkpoint choice. test-oracle: each fold's epoch chosen on "
    "its test subject (how published numbers were obtained): recorded LEAKY and shown "
    "beside the clean run of the same seeds.",
)
@repeated_option(
    "--set",
    "settings",
    metavar="KEY=VALUE",
    help="Model config override, e.g. --set head=gap --set filters=8.",
)
@click.option("--keep-checkpoints", is_flag=True, help="Store each fold's final weights.")
@click.option(
    "--quiet",
    is_flag=True,
    help="Progress once a minute instead of every epoch (the cost is still shown).",
)
@click.option(
    "--dask-address",
    default=None,
    help="Train the folds on this Dask scheduler's workers (the `train` flow).",
)
@count_option(
    "--workers",
    default=None,
    help="Train the folds on a local Dask cluster of this many workers (the flow).",
)
@click.option("--version", default=None, help="Store version tag [default: the latest].")
@count_option(
    "--folds-per-task",
    default=1,
    help="With the flow: folds one Dask task trains (more for light models).",
)
@click.option(
    "--home",
    default=".mer-prep",
    show_default=True,
    help="With the flow: where Prefect keeps its state.",
)
def train(store, settings, quiet, workers, home, **options):
    """Train MODEL on every fold of STORE's split and record the run on the store.

    In this process by default; with --dask-address or --workers, as the Prefect `train` flow
    with one task per fold on Dask workers (a CUDA run's folds need workers started with
    `--resources GPU=1`).

    Before the first epoch ends it prints the run's cost (parameters, epochs x folds, device,
    an estimate from the first steps; a warning where that is hours on a CPU), then progress
    with ETAs. Ctrl-C or SIGTERM stops it with one line and exit code 130; nothing is
    recorded."""
    from mer_prep.model_catalogue import catalogue_entry
    from mer_prep.train.request import TrainRequest

    # names first: a typo costs no PyTorch, Prefect or store
    catalogue_entry(options["model"], options["variant"])
    check_dask_address(options["dask_address"])
    flow = bool(options["dask_address"] or workers)
    # the options are the request's fields (--set: config, --workers: n_workers); in this
    # process no --device means CUDA when there is one, on the flow's workers the CPU
    if options["selection"] == "test-oracle":
        options["selection"] = "test_oracle"  # the request's spelling
    request = TrainRequest.of(
        **{**options, "device": options["device"] or ("cpu" if flow else None)},
        store=store,
        config=parse_settings(settings),
        n_workers=workers or 2,
    )
    from flows.runtime import sigterm_interrupts
    from mer_prep.cli.preprocess import _cancelled
    from mer_prep.errors import RunCancelled

    with sigterm_interrupts():  # SIGTERM stops a training as Ctrl-C does
        try:
            group = _train_flow(request, home=home) if flow else _train_here(request, quiet=quiet)
        except (KeyboardInterrupt, RunCancelled):  # the record is written last: none was
            _cancelled(f"cancelled; no run recorded on {store}")
    from mer_prep.cli.train_groups import print_after_training

    for record in group.records:
        print_record(record)
    print_after_training(store, request, group)


def _train_here(request, *, quiet: bool):
    """Train in this process on its fair share of the cores, printing cost and progress."""
    from mer_prep.train.errors import torch_or_raise

    torch_or_raise()
    from mer_prep.cli.train_progress import ProgressPrinter
    from mer_prep.train.cpu_share import TrainerSlot
    from mer_prep.train.seeds import train_seeds

    with TrainerSlot() as slot:
        printer = ProgressPrinter(quiet=quiet, slot=slot, seeds=request.seeds)
        return train_seeds(request, report=printer)


def _train_flow(request, *, home: str):
    """The ``train`` flow from this process (Prefect's state under ``home``); the seed group
    of the run, read back from the store."""
    import os
    from pathlib import Path

    from flows.runtime import prefect_environment

    prefect_environment(os.environ.get("PREFECT_HOME") or Path(home) / "prefect")
    from prefect.exceptions import TerminationSignal

    from flows.train import run_train
    from mer_prep.cli.train_groups import group_of

    try:
        return group_of(request.store, run_train(**request.model_dump()))
    except TerminationSignal:  # SIGTERM as Prefect's flow engine reports it
        raise KeyboardInterrupt from None


@main.command()
@click.argument("store")
@click.option(
    "--run",
    "run_id",
    default=None,
    metavar="RUN_ID",
    help="Show one run (or `latest`): per-fold and per-class tables, the confusion "
    "matrix, the store version and split.",
)
@click.option(
    "--leaderboard",
    is_flag=True,
    help="One row per configuration: seeds, mean +- "
    "sd over seeds, bootstrap CI over subjects; LEAKY rows next to their clean rows.",
)
@click.option(
    "--spotting",
    is_flag=True,
    help="With --leaderboard: the spotting runs' (methods x datasets: ME, MaE and overall F1, "
    "STRS; mean +- sd over seeds; LEAKY rows next to their clean rows).",
)
@choice_option(
    "--format",
    ["table", "csv", "markdown"],
    default="table",
    dest="fmt",
    help="With --leaderboard.",
)
def runs(store, run_id, leaderboard, spotting, fmt):
    """List the training runs recorded on STORE, best UF1 first (--run: one in full)."""
    from mer_prep.train.runs_store import list_runs, load_run

    if spotting and not leaderboard:
        raise InvalidArgumentError("--spotting goes with --leaderboard")
    if leaderboard:
        from mer_prep.cli.compare import print_leaderboard, print_spot_leaderboard

        if spotting:
            print_spot_leaderboard(store, fmt)
        else:
            print_leaderboard(store, list_runs(store), fmt)
        return

    if run_id == "latest":
        recorded = list_runs(store)
        if not recorded:
            raise InvalidArgumentError(f"store {store} records no run yet")
        print_run_details(recorded[-1])
        return
    if run_id is not None:
        print_run_details(load_run(store, run_id, with_checkpoints=False))
        return
    records = list_runs(store)
    if not records:
        click.echo(
            f"store {store}: no recorded runs (train with `mer-prep train {store} --model NAME`)"
        )
        return

    def key(record):
        value = record.metrics.get("uf1")
        return -(value if value is not None and not math.isnan(value) else -1.0)

    from mer_prep.cli.train_groups import groups_table

    click.echo(runs_table(sorted(records, key=key)))
    click.echo(groups_table(records))


def _marks(record) -> str:
    """LEAKY (sample-level split or test-subject epoch selection) and/or EPOCH1 (validation
    never chose a later epoch)."""
    return ",".join(
        mark
        for mark, on in (("LEAKY", record.leak_label), ("EPOCH1", record.selection_warning))
        if on
    )


def runs_table(records) -> str:
    """The runs listing: name (model, variant, overrides, epochs, lr, batch, seed,
    selection: ``RunHeader.name``), run id, version, split, scores, marks and time; below it,
    what each mark means for the runs that carry one."""
    width = max(len("name"), *(len(r.name) for r in records))
    lines = [
        f"{'name':<{width}} {'run':<34} {'version':<18} {'split':<12} {'target':<7} "
        f"{'UF1':>6} {'UAR':>6} {'acc':>6} {'marks':<12} {'time':>8}"
    ]
    notes = []
    for record in records:
        m = record.metrics
        lines.append(
            f"{record.name:<{width}} {record.run_id:<34} {record.version_id:<18} "
            f"{record.split:<12} {record.target:<7} "
            f"{_number(m.get('uf1')):>6} {_number(m.get('uar')):>6} "
            f"{_number(m.get('accuracy')):>6} {_marks(record):<12} "
            f"{record.duration_s:>7.1f}s"
        )
        if record.selection_warning:
            notes.append(f"EPOCH1 {record.run_id}: {record.selection_warning}")
        if record.au_metrics is not None:  # no UF1 / UAR: say what it scored instead
            notes.append(f"AUS {record.run_id}: " + _au_line(record.au_metrics))
        if record.leaky:
            notes.append(
                f"LEAKY {record.run_id}: split {record.split} puts clips of one "
                f"subject on both sides; its scores are not subject-independent"
            )
        if record.leaky_selection:
            notes.append(
                f"LEAKY {record.run_id}: each fold's epoch was chosen on its test "
                f"subject (test-oracle); its scores are not a held-out estimate"
            )
    return "\n".join(lines + notes)


def _au_line(metrics: dict) -> str:
    macro = metrics.get("macro_f1")
    return (
        f"AU macro F1 {_number(macro)} over {len(metrics.get('averaged', []))} AUs "
        f"(per-AU F1: `mer-prep runs STORE --run RUN_ID`)"
    )


def print_run_details(record) -> None:
    """What a run's Prefect artifact shows, as text: the fold table, per-class scores, the
    pooled confusion matrix (rows true, columns predicted), the store version and split."""
    print_record(record)
    if record.au_metrics is not None:  # an AU run: print_record gave its per-AU table
        return
    metrics, names = record.metrics, list(record.store["class_names"])
    confusion = metrics.get("confusion") or [[0] * len(names) for _ in names]
    width = max(len("class"), *(len(n) for n in names))
    click.echo("")
    click.echo(f"{'class':<{width}}  {'n':>4}  {'F1':>6}  {'recall':>6}")
    for k, name in enumerate(names):
        click.echo(
            f"{name:<{width}}  {sum(confusion[k]):>4}  "
            f"{_number((metrics.get('per_class_f1') or {}).get(name)):>6}  "
            f"{_number((metrics.get('per_class_recall') or {}).get(name)):>6}"
        )
    click.echo("")
    click.echo("confusion (rows: true, columns: predicted)")
    cell = max(4, *(len(n[:8]) for n in names))
    click.echo(" " * width + "  " + " ".join(f"{n[:8]:>{cell}}" for n in names))
    for name, row in zip(names, confusion, strict=True):
        click.echo(f"{name:<{width}}  " + " ".join(f"{int(v):>{cell}}" for v in row))
    click.echo("")
    click.echo(
        f"store {record.store['location']} version {record.version_id} snapshot "
        f"{record.snapshot_id}; split {record.split} ({record.split_kind})"
        + (f"; {record.leak_label}" if record.leak_label else "")
    )


@main.command()
def models():
    """The model families: name, paper, the recipe each needs and its variants (no PyTorch
    needed to list them)."""
    from mer_prep.model_catalogue import MODEL_CATALOGUE

    click.echo(f"{'model':<10} {'paper':<30} {'recipe':<12} variants (recipe when another)")
    for name, entry in MODEL_CATALOGUE.items():
        variants = ", ".join(
            variant if not recipe else f"{variant} ({recipe})"
            for variant, recipe in entry.variants.items()
        )
        click.echo(f"{name:<10} {entry.paper:<30} {entry.recipe:<12} {variants}")
