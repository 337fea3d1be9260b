"""Commands that read datasets and run the preprocessing: run, serve, list (demo: ``demo``).

Prefect is imported only inside the commands that launch flows, after its environment is set.
"""

from __future__ import annotations

import gc
import json
import os
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from mer_prep.cli import main
from mer_prep.errors import InvalidArgumentError
from mer_prep.pipeline import defaults  # the request's, without importing it (start-up time)

if TYPE_CHECKING:
    from mer_prep.pipeline.request import PreprocessRequest


def parse_roots(dataset: str, roots: tuple[str, ...]) -> str | dict[str, str]:
    """One ``--root PATH``, or ``--root part=PATH`` per part of a composite dataset."""
    if not roots:
        raise InvalidArgumentError(f"{dataset}: --root is required")
    if len(roots) == 1 and "=" not in roots[0]:
        return roots[0]
    parts = {}
    for value in roots:
        if "=" not in value:
            raise InvalidArgumentError(f"{dataset}: give each root as part=PATH, got {value!r}")
        name, path = value.split("=", 1)
        parts[name] = path
    return parts


def parse_options(values: tuple[str, ...]) -> dict[str, str]:
    """``--option key=value`` pairs passed to the dataset adapter (e.g. modality=HS)."""
    options = {}
    for value in values:
        key, sep, item = value.partition("=")
        if not sep:
            raise InvalidArgumentError(f"--option wants key=value, got {value!r}")
        options[key] = item
    return options


@main.command()
@click.argument("dataset")
@click.option(
    "--root", "roots", multiple=True, help="Dataset root, or part=PATH per composite part."
)
@click.option(
    "--recipe",
    default=defaults.RECIPE,
    show_default=True,
    help="Built-in recipe name or YAML path.",
)
@click.option("--store", default=None, help="Store path [default: stores/<dataset>/<recipe>].")
@click.option("--labels", default=defaults.LABELS, show_default=True, help="Label scheme.")
@click.option(
    "--workers", default=defaults.N_WORKERS, show_default=True, help="Local Dask workers."
)
@click.option("--dask-address", default=None, help="Use an existing Dask scheduler.")
@click.option("--option", "adapter_options", multiple=True, help="Adapter option key=value.")
@click.option(
    "--home", default=".mer-prep", show_default=True, help="Where Prefect keeps its state."
)
def run(dataset, roots, recipe, store, labels, workers, dask_address, adapter_options, home):
    """Preprocess DATASET into a versioned store (Prefect ephemeral mode, local Dask cluster).

    Ctrl-C (or SIGTERM) stops it within seconds: exit code 130, the store keeps its previous
    version."""
    from flows.runtime import sigterm_interrupts
    from mer_prep.errors import NothingProcessedError, RunCancelled
    from mer_prep.pipeline.request import PreprocessRequest

    where = store  # the store, once known (a default one is named by the recipe)
    with sigterm_interrupts():  # SIGTERM cancels like Ctrl-C, from here on
        try:
            # every setting checked before anything starts: names first, then the file system
            request = PreprocessRequest(
                dataset=dataset,
                root=parse_roots(dataset, roots),
                recipe=recipe,
                store=store,
                labels=labels,
                n_workers=workers,
                options=parse_options(adapter_options),
                progress=True,
                dask_address=dask_address,
            )
            where = request.store_location(request.check_inputs().name)
            summary = _run(request, Path(home))
        except NothingProcessedError as error:
            if error.summary is not None and error.summary.snapshot is not None:
                # the version records why every sample failed
                _print_summary(error.summary, long_video=request.is_long_video)
            raise
        except RunCancelled as cancelled:  # one line of its own, not an "error:"
            _cancelled(str(cancelled))
        except KeyboardInterrupt:  # before the run began (imports, checks): nothing to undo
            _cancelled(_not_started(where))
    _print_summary(summary, long_video=request.is_long_video)


def _not_started(store: str | None) -> str:
    """The line for a run interrupted before it began: nothing was written."""
    if store is None:
        return "cancelled before the run began"
    try:  # an import the interrupt cut short may have left a module half made
        from mer_prep.store.writer import current_version

        version = current_version(store)
    except Exception:  # noqa: BLE001 - nothing was written either way
        return f"cancelled before the run began; {store} untouched"
    return (
        f"cancelled; {store} still at version {version}"
        if version
        else f"cancelled; {store} holds no version yet"
    )


def _cancelled(line: str):
    """Say so in one line and exit with code 130."""
    from mer_prep.errors import EXIT_CANCELLED

    click.echo(line, err=True)
    # Everything is shut down; what is left is the interpreter's final garbage collection over
    # Prefect's and Dask's heap, 1-3 s on two busy cores (measured): skip it.
    gc.freeze()
    sys.exit(EXIT_CANCELLED)


@main.command()
@click.option(
    "--config",
    "config_file",
    default=None,
    metavar="FILE",
    help="Project configuration [default: $MER_PREP_CONFIG, else ./mer-prep.toml].",
)
@click.option("--limit", type=int, default=None, help="At most this many runs at once.")
@click.option("--check", is_flag=True, help="Only load the configuration and list the deployments.")
@click.option(
    "--standing-cluster/--no-standing-cluster",
    default=True,
    show_default=True,
    help="Keep one local Dask cluster for the runs that use a local cluster.",
)
def serve(config_file, limit, check, standing_cluster):
    """Serve the deployments preprocess/<dataset>, train/<name> and spot/<dataset> of the
    configuration (needs PREFECT_API_URL)."""
    from mer_prep.config import load_config
    from mer_prep.errors import ConfigError

    config = load_config(config_file)
    for spec in config.deployments():
        click.echo(
            f"preprocess/{spec.name}: {spec.parameters['recipe']} on "
            f"{spec.parameters['root']} -> {spec.store}, "
            f"schedule {spec.cron or 'none'}"
        )
    for spec in config.training_deployments():
        p = spec.parameters
        click.echo(
            f"train/{spec.name}: {p['model']}/{p['variant'] or 'default'} {p['split']} "
            f"on {spec.store} ({p['device']}), schedule {spec.cron or 'none'}"
            + (", on each new version" if spec.on_commit else "")
        )
    for spec in config.spot_deployments():
        click.echo(
            f"spot/{spec.name}: {spec.parameters['method']} loso on {spec.store}, "
            f"on each new version"
        )
    for spot in config.spot_training_deployments():
        p = spot.parameters
        leaky = ", tuned on the test subject: LEAKY" if p["tune_on_test"] else ""
        click.echo(
            f"train/{spot.name}: spotter {p['method']} (preset {p['preset'] or 'its own'}, "
            f"seeds {', '.join(map(str, spot.seeds))}) loso on {spot.store}{leaky}, "
            f"schedule {spot.cron or 'none'}" + (", on each new version" if spot.on_commit else "")
        )
    problems = config.problems()
    if problems:
        raise ConfigError("\n".join(problems))
    if check:
        return
    from flows.runtime import prefect_environment

    prefect_environment(os.environ.get("PREFECT_HOME") or Path(".mer-prep") / "prefect")
    from flows.deployments import serve_config

    serve_config(config.path, limit=limit, standing=standing_cluster, announce=click.echo)


def _run(request: PreprocessRequest, home: Path):
    """The flow of ``request`` with Prefect's state under ``home``."""
    from flows.runtime import prefect_environment

    prefect_environment(home / "prefect")
    from flows.preprocess import run_preprocess

    return run_preprocess(request)


def _print_summary(summary, *, long_video: bool = False) -> None:
    """A ``RunSummary`` for people (of a long-video run: videos, not samples)."""
    click.echo(f"store:   {summary.store}")
    click.echo(f"version: {summary.version_id} ({summary.state})")
    if summary.committed:
        unit = "videos: " if long_video else "samples:"
        click.echo(
            f"{unit} {summary.n_ok} ok, {summary.n_failed} failed "
            f"({summary.n_recomputed} computed, {summary.n_reused} unchanged), "
            f"{summary.n_scan_problems} scan problems, {summary.wall_seconds:.1f} s"
        )
        for failure in summary.failures:
            transient = " (may pass: run again)" if failure.kind == "transient" else ""
            click.echo(
                f"  failed {failure.sample_id} [{failure.stage}]{transient}: {failure.message}",
                err=True,
            )
    if summary.snapshot is not None and long_video:
        quoted = shlex.quote(summary.store)
        click.echo(f"next:\n  spot:    mer-prep spot {quoted} --method mdmd")
        click.echo(f"  verify:  mer-prep verify {quoted}")
    elif summary.snapshot is not None:  # a version is there to look at
        _print_next_steps(summary.store)


def _print_next_steps(store: str) -> None:
    """What to do with a store once a version is there, and where its history is."""
    quoted = shlex.quote(store)
    click.echo("next:")
    click.echo(
        f"  python:  from mer_prep.store import open_store; "
        f"store = open_store({store!r}); store.plot.sample(0)"
    )
    click.echo(
        f"  look:    mer-prep show {quoted}          # HTML report: faces, masks, flow, "
        f"failures, splits"
    )
    click.echo(f"  split:   mer-prep split {quoted} --kind stratified_group_kfold")
    click.echo(f"  train:   mer-prep train {quoted} --model MODEL   # mer-prep models lists them")
    click.echo(f"  history: mer-prep info {quoted}          # versions, counts, failures")


@main.command(name="list")
@click.argument("dataset")
@click.option(
    "--root", "roots", multiple=True, help="Dataset root, or part=PATH per composite part."
)
@click.option("--labels", default=defaults.LABELS, show_default=True, help="Label scheme.")
@click.option(
    "--format", "fmt", type=click.Choice(["csv", "json"]), default="csv", show_default=True
)
@click.option("--option", "adapter_options", multiple=True, help="Adapter option key=value.")
@click.option("--videos", is_flag=True, help="Long-video datasets: one line per video.")
@click.option(
    "--intervals", is_flag=True, help="Long-video datasets: one line per annotated interval."
)
def list_samples(dataset, roots, labels, fmt, adapter_options, videos, intervals):
    """Print the sample table of DATASET without processing anything; problems go to stderr."""
    from mer_prep.cli.long_videos import is_long, list_long

    if videos or intervals or is_long(dataset):
        return list_long(dataset, roots, parse_options(adapter_options), fmt, intervals=intervals)
    from mer_prep.datasets import scan_dataset

    scan = scan_dataset(
        dataset, parse_roots(dataset, roots), labels=labels, **parse_options(adapter_options)
    )
    rows = [
        {
            "dataset": s.dataset,
            "subject": s.subject,
            "clip": s.clip,
            "label": s.label or "",
            "onset": s.onset,
            "apex": "" if s.apex is None else s.apex,
            "offset": s.offset,
            "n_frames": s.n_frames,
        }
        for s in sorted(scan.samples, key=lambda s: s.sample_id)
    ]
    if fmt == "json":
        click.echo(json.dumps(rows, indent=1))
    else:
        import csv

        writer = csv.DictWriter(
            sys.stdout,
            fieldnames=[
                "dataset",
                "subject",
                "clip",
                "label",
                "onset",
                "apex",
                "offset",
                "n_frames",
            ],
        )
        writer.writeheader()
        writer.writerows(rows)
    for correction in scan.corrections:
        click.echo(f"correction: {correction}", err=True)
    for problem in scan.problems:
        click.echo(f"problem: {problem}", err=True)
