"""`mer-prep` command line: run, serve, demo, info, list, split, audit, export.

Prefect is imported only by the commands that launch flows, after PREFECT_HOME and the
no-telemetry settings are fixed, so a run never writes outside its own home or phones home.
Every name a command is given (dataset, recipe, label scheme, roots, adapter options) is checked
before Prefect starts. An error prints one line (``error: ...``) and exits with the code of its
class (``mer_prep.errors``); ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import click

from mer_prep.errors import EXIT_INTERNAL, InvalidArgumentError, MerPrepError


class _Commands(click.Group):
    """The command group: one line per error, the valid names in ``--help``."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except MerPrepError as error:
            if ctx.params.get("debug"):
                raise
            click.echo(f"error: {_one_line(error)}", err=True)
            ctx.exit(error.exit_code)
        except (click.exceptions.Exit, click.ClickException, click.Abort, KeyboardInterrupt):
            raise
        except Exception as error:  # noqa: BLE001 - a bug: say so in one line, not 90
            if ctx.params.get("debug"):
                raise
            click.echo(f"internal error: {type(error).__name__}: {_one_line(error)} (run again "
                       f"with --debug for the traceback)", err=True)
            ctx.exit(EXIT_INTERNAL)

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        from mer_prep.datasets import DATASETS
        from mer_prep.labels import schemes
        from mer_prep.recipes import builtin_recipes

        with formatter.section("Names"):
            formatter.write_dl([("datasets", ", ".join(DATASETS)),
                                ("recipes", ", ".join(sorted(builtin_recipes()))
                                 + " (or a recipe YAML file)"),
                                ("label schemes", ", ".join(schemes()))])
        with formatter.section("Exit codes"):
            formatter.write_dl([("0", "success"), ("1", "nothing processed / leaks found"),
                                ("2", "bad usage or input"), ("3", "store problem"),
                                ("4", "missing server, model file or extra"),
                                ("70", "internal error")])


def _one_line(error: BaseException) -> str:
    return "; ".join(part.strip() for part in str(error).splitlines() if part.strip())


def check_run_arguments(dataset: str, roots, recipe: str, labels: str, options: dict):
    """Every name of a run, checked before anything starts; returns the loaded recipe."""
    from mer_prep.datasets.options import check_dataset, check_options, check_roots
    from mer_prep.labels import get_scheme
    from mer_prep.recipes import load_recipe

    check_dataset(dataset)
    loaded = load_recipe(recipe)
    get_scheme(labels)
    check_options(dataset, options)
    check_roots(dataset, roots)
    return loaded


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


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="mer-prep", prog_name="mer-prep")
@click.option("--debug", is_flag=True, help="Show the traceback of an error.")
def main(debug: bool) -> None:
    """mer-prep: preprocessing pipeline and versioned feature store for micro-expressions."""


@main.command()
@click.argument("dataset")
@click.option("--root", "roots", multiple=True, help="Dataset root, or part=PATH per composite part.")
@click.option("--recipe", default="ha3d", show_default=True, help="Built-in recipe name or YAML path.")
@click.option("--store", default=None, help="Store path [default: stores/<dataset>/<recipe>].")
@click.option("--labels", default="native", show_default=True, help="Label scheme.")
@click.option("--workers", default=2, show_default=True, help="Local Dask workers.")
@click.option("--dask-address", default=None, help="Use an existing Dask scheduler.")
@click.option("--option", "adapter_options", multiple=True, help="Adapter option key=value.")
@click.option("--home", default=".mer-prep", show_default=True, help="Where Prefect keeps its state.")
def run(dataset, roots, recipe, store, labels, workers, dask_address, adapter_options, home):
    """Preprocess DATASET into a versioned store (Prefect ephemeral mode, local Dask cluster)."""
    from mer_prep.errors import NothingProcessedError

    root, options = parse_roots(dataset, roots), parse_options(adapter_options)
    check_run_arguments(dataset, root, recipe, labels, options)
    try:
        summary = _run(dataset, root, recipe, store, labels, workers, dask_address, options,
                       Path(home))
    except NothingProcessedError as error:
        if error.summary is not None and error.summary.snapshot is not None:
            _print_summary(error.summary)  # the version records why every sample failed
        raise
    _print_summary(summary)


@main.command()
@click.option("--config", "config_file", default=None, metavar="FILE",
              help="Project configuration [default: $MER_PREP_CONFIG, else ./mer-prep.toml].")
@click.option("--limit", type=int, default=None, help="At most this many runs at once.")
@click.option("--check", is_flag=True, help="Only load the configuration and list the deployments.")
def serve(config_file, limit, check):
    """Serve the deployments preprocess/<dataset> of the configuration (needs PREFECT_API_URL)."""
    from mer_prep.config import load_config

    from mer_prep.errors import ConfigError

    config = load_config(config_file)
    for spec in config.deployments():
        click.echo(f"preprocess/{spec.name}: {spec.parameters['recipe']} on "
                   f"{spec.parameters['root']} -> {spec.parameters['store']}, "
                   f"schedule {spec.cron or 'none'}")
    problems = config.problems()
    if problems:
        raise ConfigError("\n".join(problems))
    if check:
        return
    from flows.runtime import prefect_environment

    prefect_environment(os.environ.get("PREFECT_HOME") or Path(".mer-prep") / "prefect")
    from flows.deployments import serve_config

    serve_config(config.path, limit=limit)


def _run(dataset, root, recipe, store, labels, workers, dask_address, options, home):
    from flows.runtime import prefect_environment

    prefect_environment(home / "prefect")
    from flows.preprocess import run_preprocess

    return run_preprocess(dataset, root, recipe, store, labels=labels, n_workers=workers,
                          dask_address=dask_address, options=options, progress=True)


def _print_summary(summary) -> None:
    """A ``RunSummary`` for people."""
    click.echo(f"store:   {summary.store}")
    click.echo(f"version: {summary.version_id} ({summary.state})")
    if summary.committed:
        click.echo(f"samples: {summary.n_ok} ok, {summary.n_failed} failed, "
                   f"{summary.n_scan_problems} scan problems, {summary.wall_seconds:.1f} s")
        for failure in summary.failures:
            click.echo(f"  failed {failure.sample_id} [{failure.stage}]: {failure.message}",
                       err=True)


@main.command()
@click.option("--dir", "directory", default="mer-prep-demo", show_default=True,
              help="Where the synthetic dataset, the store and Prefect's home go.")
@click.option("--subjects", default=4, show_default=True)
@click.option("--clips", default=3, show_default=True, help="Clips per subject.")
@click.option("--recipe", default="ha3d", show_default=True)
@click.option("--workers", default=2, show_default=True)
def demo(directory, subjects, clips, recipe, workers):
    """Synthesise a small CASME II look-alike from a real face and run the full pipeline on it."""
    base = Path(directory)
    root = base / "CASME2"
    _synthesise_demo(root, subjects, clips)
    store = base / "stores" / "casme2" / recipe
    summary = _run("casme2", str(root), recipe, str(store), "native", workers, None, {},
                   base / ".mer-prep")
    _print_summary(summary)
    click.echo("")
    _print_info(str(store), None)


def _synthesise_demo(root: Path, subjects: int, clips: int) -> None:
    """Write the demo dataset unless the same one (same size, same code) is already there."""
    from mer_prep.synth.generate import generate_dataset
    from mer_prep.version import code_version

    wanted = {"dataset": "casme2", "subjects": subjects, "clips": clips, "seed": 0,
              "code_version": code_version()}
    marker = root.parent / "demo-dataset.json"
    if marker.exists() and json.loads(marker.read_text()) == wanted and root.exists():
        click.echo(f"reusing the synthetic CASME II look-alike in {root}")
        return
    if root.exists() and not marker.exists():
        raise InvalidArgumentError(f"{root} exists and was not made by `mer-prep demo`: "
                                   f"refusing to touch it; give another --dir")
    click.echo(f"synthesising a CASME II look-alike ({subjects} subjects x {clips} clips) in {root}")
    marker.unlink(missing_ok=True)  # a half-written demo dataset is still ours to replace
    shutil.rmtree(root, ignore_errors=True)  # only ever a demo dataset this command made
    generate_dataset("casme2", root, n_subjects=subjects, clips_per_subject=clips, seed=0)
    marker.write_text(json.dumps(wanted))


@main.command()
@click.argument("store")
@click.option("--tag", "version", default=None, metavar="VERSION",
              help="A version tag (v-...) [default: the latest version].")
def info(store, version):
    """Versions, sample/class/subject counts and failures of a store."""
    _print_info(store, version)


def _print_info(path: str, version: str | None) -> None:
    from mer_prep.store import open_store

    store = open_store(path, version)
    attrs = store.attrs
    click.echo(f"store {path}: {attrs['dataset']} / recipe {attrs['recipe']['name']} "
               f"({attrs['recipe']['paper']}), labels {attrs['labels']}")
    click.echo(f"version {store.version_id}  code {attrs['code_version']}  "
               f"inputs {attrs['input_fingerprint']}")
    click.echo("arrays:")
    for name, spec in attrs["arrays"].items():
        shape = "x".join(str(s) for s in spec["shape"])
        click.echo(f"  {name:10s} ({', '.join(spec['dims'])}) {shape} {spec['dtype']}")
    table = store.table
    click.echo(f"samples: {len(table)} ok of {attrs['n_samples']}, subjects: {len(store.subjects)}")
    counts = table["label_name"].value_counts().sort_index()
    click.echo("classes: " + ", ".join(f"{name} {count}" for name, count in counts.items()))
    apexes = table["apex_source"].value_counts().sort_index()
    click.echo("apex: " + ", ".join(f"{source} {count}" for source, count in apexes.items()))
    failures = store.failures
    click.echo(f"failures: {len(failures)}")
    for row in failures.itertuples():
        click.echo(f"  {row.sample_id} [{row.stage}] {row.file}: {row.message}")
    versions = store.versions()
    click.echo(f"versions ({len(versions)}):")
    for row in versions.itertuples():
        click.echo(f"  {row.version_id}  {row.written_at:%Y-%m-%d %H:%M:%S}  {row.message}")


@main.command(name="list")
@click.argument("dataset")
@click.option("--root", "roots", multiple=True, help="Dataset root, or part=PATH per composite part.")
@click.option("--labels", default="native", show_default=True, help="Label scheme.")
@click.option("--format", "fmt", type=click.Choice(["csv", "json"]), default="csv", show_default=True)
@click.option("--option", "adapter_options", multiple=True, help="Adapter option key=value.")
def list_samples(dataset, roots, labels, fmt, adapter_options):
    """Print the sample table of DATASET without processing anything; problems go to stderr."""
    from mer_prep.datasets import scan_dataset

    scan = scan_dataset(dataset, parse_roots(dataset, roots), labels=labels,
                        **parse_options(adapter_options))
    rows = [{"dataset": s.dataset, "subject": s.subject, "clip": s.clip, "label": s.label or "",
             "onset": s.onset, "apex": "" if s.apex is None else s.apex, "offset": s.offset,
             "n_frames": s.n_frames} for s in sorted(scan.samples, key=lambda s: s.sample_id)]
    if fmt == "json":
        click.echo(json.dumps(rows, indent=1))
    else:
        import csv

        writer = csv.DictWriter(sys.stdout, fieldnames=["dataset", "subject", "clip", "label",
                                                        "onset", "apex", "offset", "n_frames"])
        writer.writeheader()
        writer.writerows(rows)
    for problem in scan.problems:
        click.echo(f"problem: {problem}", err=True)


@main.command()
@click.argument("store")
@click.option("--kind", type=click.Choice(["loso", "group_kfold", "stratified_group_kfold",
                                           "megc2019", "random"]), default="loso",
              show_default=True)
@click.option("--name", default=None, help="Split name (default: the kind).")
@click.option("--folds", "n_splits", type=int, default=5, show_default=True,
              help="Folds of the k-fold kinds.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--leaky", is_flag=True, help="Allow the sample-level random split (recorded as leaky).")
@click.option("--smote", "smote_features", default=None, metavar="ARRAY",
              help="Store SMOTE samples per training fold, interpolating ARRAY (e.g. frames).")
@click.option("--materialise", multiple=True, metavar="ARRAY",
              help="Write these arrays' SMOTE samples in full instead of rebuilding them on read.")
def split(store, kind, name, n_splits, seed, leaky, smote_features, materialise):
    """Make a split of STORE's latest version and commit it into the store."""
    from mer_prep.evaluation.splits import build_split
    from mer_prep.store.splits import save_split
    from mer_prep.store import open_store

    if kind == "random" and not leaky:
        raise InvalidArgumentError("the random split puts clips of one subject on both sides "
                                   "(a subject leak); pass --leaky to make it anyway (recorded "
                                   "as leaky), or use a subject-independent --kind")
    opened = open_store(store)
    made = build_split(opened.table, kind, name=name, n_splits=n_splits, seed=seed, leaky=leaky)
    snapshot = save_split(opened, made, smote_features=smote_features, smote_seed=seed,
                          materialise=tuple(materialise))
    click.echo(f"split {made.name} ({made.kind}{', LEAKY' if made.leaky else ''}): "
               f"{made.n_folds} folds over {len(made.test_fold)} rows, snapshot {snapshot}")


@main.command()
@click.argument("store")
@click.option("--split", "split_name", default="loso", show_default=True)
@click.option("--array", default="frames", show_default=True,
              help="Array whose first frame per sample is hashed for near-duplicates.")
def audit(store, split_name, array):
    """Check a split for leakage; exit code 1 when anything leaks."""
    from mer_prep.evaluation.audit import audit_store
    from mer_prep.store import open_store

    opened = open_store(store)
    made = opened.split(split_name)
    report = audit_store(opened, split_name, array)
    leaky = " (recorded as LEAKY)" if made.leaky else ""
    click.echo(f"audit of split {split_name}{leaky} of {store} ({opened.version_id})")
    click.echo(report.to_text())
    sys.exit(0 if report.ok else 1)


@main.command()
@click.argument("store")
@click.option("--format", "fmt", type=click.Choice(["hdf5"]), default="hdf5", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="Output file (default: STORE.h5).")
def export(store, fmt, out):
    """Export STORE's latest version (arrays, table, splits) to one file."""
    from mer_prep.store import open_store
    from mer_prep.store.export import export_hdf5

    path = export_hdf5(open_store(store), out or f"{str(store).rstrip('/')}.h5")
    click.echo(f"wrote {path} ({path.stat().st_size / 2**20:.1f} MiB)")


@main.command()
@click.argument("store")
@click.option("--all-versions", is_flag=True, help="Every tagged version, not only the latest.")
def verify(store, all_versions):
    """Read every chunk of STORE and report what is broken (exit code 3 if anything is)."""
    from mer_prep.errors import CorruptDataError
    from mer_prep.store.verify import verify_store

    broken = verify_store(store, all_versions=all_versions)
    for chunk in broken:
        click.echo(f"broken: {chunk}")
    if broken:
        raise CorruptDataError(f"store {store}: {len(broken)} broken chunk(s); restore them or "
                               f"re-run the preprocessing into a new store")
    click.echo(f"store {store}: every chunk reads back and matches its checksum")


if __name__ == "__main__":
    main()
