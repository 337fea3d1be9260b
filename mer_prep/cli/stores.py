"""Commands that read or maintain a store: info, split, audit, export, verify, gc."""

from __future__ import annotations

import sys

import click
import numpy as np

from mer_prep.cli import main
from mer_prep.cli.options import count_option, repeated_option, version_option
from mer_prep.errors import InvalidArgumentError


@main.command()
@click.argument("store")
@version_option("--tag", metavar="VERSION")
def info(store, version):
    """Versions, sample/class/subject counts and failures of a store."""
    print_info(store, version)


def print_info(path: str, version: str | None) -> None:
    from mer_prep.store import open_store
    from mer_prep.store.long_reader import is_long_video_store

    if is_long_video_store(path):
        from mer_prep.cli.long_info import print_long_info

        print_long_info(path, version)
        return
    store = open_store(path, version)
    info = store.info
    click.echo(
        f"store {path}: {info.dataset} / recipe {info.recipe.name} "
        f"({info.recipe.paper}), labels {info.labels}"
    )
    click.echo(
        f"version {store.version_id}  code {info.code_version}  inputs {info.input_fingerprint}"
    )
    click.echo("arrays:")
    for name, spec in info.arrays.items():
        shape = "x".join(str(s) for s in spec.shape)
        click.echo(f"  {name:10s} ({', '.join(spec.dims)}) {shape} {spec.dtype}")
    table = store.table
    click.echo(f"samples: {len(table)} ok of {info.n_samples}, subjects: {len(store.subjects)}")
    counts = table["label_name"].value_counts().sort_index()
    click.echo("classes: " + ", ".join(f"{name} {count}" for name, count in counts.items()))
    apexes = table["apex_source"].value_counts().sort_index()
    click.echo("apex: " + ", ".join(f"{source} {count}" for source, count in apexes.items()))
    detectors = table["detector"].value_counts().sort_index()  # hog, hog-low, cnn, hog@+2, ...
    click.echo("detector: " + ", ".join(f"{name} {count}" for name, count in detectors.items()))
    _print_low_confidence(table)
    failures = store.failures
    click.echo(f"failures: {len(failures)}")
    for row in failures.itertuples():
        click.echo(f"  {row.sample_id} [{row.stage}, {row.kind}] {row.file}: {row.message}")
    aus = store.aus
    click.echo(
        f"action units: {len(store.au_list)} columns, {int(aus.any(axis=1).sum())} of "
        f"{len(aus)} samples code one; "
        + ", ".join(
            f"AU{au} {int(n)}" for au, n in zip(store.au_list, aus.sum(axis=0), strict=True) if n
        )
    )
    corrections = info.corrections or []  # DatasetScan.corrections, as the writer records them
    if corrections:
        click.echo(f"annotation corrections: {len(corrections)}")
    for c in corrections:
        at = f" at {c.where}" if c.where else ""
        click.echo(
            f"  {c.sample} {c.field}: {c.old!r} -> {c.new!r} [{c.status}]"
            f"{at} ({c.reason or 'no reason given'}; {c.file})"
        )
    versions = store.versions()
    click.echo(f"versions ({len(versions)}):")
    for row in versions.itertuples():
        click.echo(f"  {row.version_id}  {row.written_at:%Y-%m-%d %H:%M:%S}  {row.message}")
    _print_splits_and_runs(path, store)


def _print_low_confidence(table) -> None:
    """The processed samples whose face box was a low-confidence one (hog-low, haar, weak
    HOG), with its score and confirmation; stores written before confirmation say so."""
    from mer_prep.face.cascade import is_low_confidence

    confirmations = (
        table["detector_confirmation"] if "detector_confirmation" in table else [""] * len(table)
    )
    scores = table["detector_score"] if "detector_score" in table else [float("nan")] * len(table)
    low = [
        (sid, det, score, conf)
        for sid, det, score, conf in zip(
            table["sample_id"], table["detector"], scores, confirmations, strict=True
        )
        if is_low_confidence(str(det), str(conf))
    ]
    click.echo(f"low-confidence faces: {len(low)}")
    for sample_id, detector, score, confirmation in low:
        click.echo(
            f"  {sample_id} {detector} score {score:.3f}: "
            + (
                f"confirmed by {confirmation}"
                if confirmation
                else "UNCONFIRMED (store written before confirmation)"
            )
        )


def _print_splits_and_runs(path: str, store) -> None:
    """The splits stored with this version (kind, folds, SMOTE, LEAKY) and the training runs
    recorded on the store (name, id, version, split, UF1), newest last."""
    from mer_prep.train.runs_store import list_runs

    names = store.split_names
    click.echo(
        f"splits stored with {store.version_id} ({len(names)}; loso and megc2019 are "
        f"computed on demand):"
    )
    for name in names:
        made, info = store.split(name), store.split_info(name)
        smote = info.smote if info is not None else None
        click.echo(
            f"  {name}: {made.kind}, {made.n_folds} folds"
            + (f", SMOTE on {smote.features}" if smote else "")
            + (", LEAKY (sample-level)" if made.leaky or (info and info.leaky) else "")
        )
    runs = list_runs(store)
    click.echo(f"training runs ({len(runs)}; `mer-prep runs {path}` ranks them):")
    for run in runs:
        uf1 = run.metrics.get("uf1")
        marks = "".join(
            f"  {m}" for m, on in (("LEAKY", run.leaky), ("EPOCH1", run.selection_warning)) if on
        )
        click.echo(
            f"  {run.name}  {run.run_id}  {run.version_id}  split {run.split}  UF1 "
            f"{'-' if uf1 is None or uf1 != uf1 else f'{uf1:.3f}'}{marks}"
        )


@main.command()
@click.argument("store")
@click.option(
    "--kind",
    type=click.Choice(
        [
            "loso",
            "group_kfold",
            "stratified_group_kfold",
            "lodo",
            "dfme_official",
            "megc2019",
            "random",
        ]
    ),
    default="loso",
    show_default=True,
)
@click.option("--name", default=None, help="Split name (default: the kind).")
@click.option(
    "--folds", "n_splits", type=int, default=5, show_default=True, help="Folds of the k-fold kinds."
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--leaky", is_flag=True, help="Allow the sample-level random split (recorded as leaky)."
)
@click.option(
    "--smote",
    "smote_features",
    default=None,
    metavar="ARRAY",
    help="Store SMOTE samples per training fold, interpolating ARRAY (e.g. frames).",
)
@repeated_option(
    "--materialise",
    "materialise",
    metavar="ARRAY",
    help="Write these arrays' SMOTE samples in full instead of rebuilding them on read.",
)
def split(store, kind, name, n_splits, seed, leaky, smote_features, materialise):
    """Make a split of STORE's latest version and commit it into the store."""
    from mer_prep.evaluation.splits import build_split
    from mer_prep.store import open_store
    from mer_prep.store.splits import save_split

    if kind == "random" and not leaky:
        raise InvalidArgumentError(
            "the random split puts clips of one subject on both sides "
            "(a subject leak); pass --leaky to make it anyway (recorded "
            "as leaky), or use a subject-independent --kind"
        )
    opened = open_store(store)
    made = build_split(opened.table, kind, name=name, n_splits=n_splits, seed=seed, leaky=leaky)
    snapshot = save_split(
        opened, made, smote_features=smote_features, smote_seed=seed, materialise=tuple(materialise)
    )
    click.echo(
        f"split {made.name} ({made.kind}{', LEAKY' if made.leaky else ''}): "
        f"{made.n_folds} folds over {len(made.test_fold)} rows, snapshot {snapshot}"
    )
    if smote_features:
        _print_smote_counts(open_store(store), made.name)


def _print_smote_counts(store, split: str) -> None:
    """How many SMOTE samples the stored split holds: in all, then per training fold and class
    (read back from the store, so the figures are what training will use)."""
    info = store.split_info(split)
    names, settings = store.class_names, info.smote
    per_fold = {}
    for fold in info.fold_names:
        labels = store.smote(split, fold).label
        per_fold[fold] = {
            names[k]: int(n) for k, n in enumerate(np.bincount(labels, minlength=len(names))) if n
        }
    total = sum(sum(counts.values()) for counts in per_fold.values())
    click.echo(
        f"SMOTE on {settings.features} (k={settings.k_neighbors}, seed "
        f"{settings.seed}): {total} synthetic samples over {len(per_fold)} training "
        f"folds"
    )
    for fold, counts in per_fold.items():
        made = ", ".join(f"{name} +{n}" for name, n in counts.items()) or "none (balanced)"
        click.echo(f"  fold {fold}: {made}")


@main.command()
@click.argument("store")
@click.option("--split", "split_name", default="loso", show_default=True)
@click.option(
    "--array",
    default="frames",
    show_default=True,
    help="Array whose first frame per sample is hashed for near-duplicates.",
)
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
@click.option(
    "--out",
    type=click.Path(dir_okay=False),
    default=None,
    help="Output file (default: STORE.<version>.h5).",
)
@click.option("--overwrite", is_flag=True, help="Replace the output file if it exists.")
def export(store, fmt, out, overwrite):  # noqa: ARG001 - click passes --format by name; hdf5 is its only choice
    """Export STORE's latest version (arrays, table, splits) to one file.

    The file holds face images of licensed datasets: keep and share it only as the datasets'
    licences allow."""
    from mer_prep.store import open_store
    from mer_prep.store.export import export_hdf5

    opened = open_store(store)
    path = export_hdf5(opened, out or default_export_path(opened), overwrite=overwrite)
    click.echo(
        f"wrote {path} ({path.stat().st_size / 2**20:.1f} MiB): version "
        f"{opened.version_id} of {opened.path}"
    )
    click.echo(
        f"note: {path.name} holds face images from {opened.info.dataset}, a "
        f"licensed dataset: store and share it only as its licence allows",
        err=True,
    )


def default_export_path(store) -> str:
    """``<store>.<version>.h5`` beside a local store; in the working directory for S3."""
    location = store.path.rstrip("/")
    if store.location.is_remote:
        location = location.rsplit("/", 1)[-1]
    return f"{location}.{store.version_id}.h5"


@main.command()
@click.argument("store")
@click.option("--all-versions", is_flag=True, help="Every tagged version, not only the latest.")
def verify(store, all_versions):
    """Read every chunk of STORE and report what is broken (exit code 3 if anything is, or if
    a version predates chunk checksums and so cannot be verified)."""
    from mer_prep.errors import CorruptDataError, StoreError
    from mer_prep.spotting.records import verify_spot_runs
    from mer_prep.store.verify import verify_store
    from mer_prep.train.runs_store import verify_runs

    found = (
        verify_store(store, all_versions=all_versions)
        + verify_runs(store)
        + verify_spot_runs(store)
    )
    broken = [chunk for chunk in found if not chunk.predates_checksums]
    for chunk in broken:
        click.echo(f"broken: {chunk}")
    unsealed = [
        chunk for chunk in found if chunk.predates_checksums and chunk.array.startswith("splits/")
    ]
    old = sorted(
        {chunk.version for chunk in found if chunk.predates_checksums and chunk not in unsealed}
    )
    older = "; ".join(
        (
            [
                f"{', '.join(old)} predates chunk checksums (every chunk decodes, but a flipped "
                f"bit would not show)"
            ]
            if old
            else []
        )
        + [
            f"{chunk.version}: {chunk.array} was written before checksums (it reads back, but "
            f"a flipped bit would not show; commit it again with `mer-prep split`)"
            for chunk in unsealed
        ]
    )
    old = old or unsealed
    if broken:
        raise CorruptDataError(
            f"store {store}: {len(broken)} broken chunk(s)"
            f"{'; ' + older if older else ''}; restore them or "
            f"re-run the preprocessing into a new store"
        )
    if old:
        raise StoreError(
            f"store {store}: cannot be verified: {older}; re-run the preprocessing into a new store"
        )
    click.echo(
        f"store {store}: every chunk reads back and matches its checksum, every split its digests"
    )


@main.command(name="gc")
@click.argument("store")
@count_option("--keep", default=3, help="Keep the history of the N newest versions.")
@click.option(
    "--tags",
    "delete_tags",
    is_flag=True,
    help="Also delete the version tags beyond the N newest (for good: a deleted tag "
    "name can never be used again in this store).",
)
@count_option(
    "--grace",
    default=600,
    minimum=0,
    metavar="SECONDS",
    help="Keep objects written this recently (a run may be starting).",
)
def collect_garbage(store, keep, delete_tags, grace):
    """Free the space of old versions and killed runs in STORE.

    Removes scratch branches of runs that are provably dead, expires history older than the
    KEEP newest versions, and deletes the chunks nothing reachable uses. Tagged versions stay
    readable unless --tags is given; other branches (the trainers' `runs`) are never touched,
    and what a recorded or a live training run reads (its snapshot, its version's tag) is
    always kept.
    """
    import datetime as dt

    from mer_prep.store.gc import collect_garbage as collect

    report = collect(store, keep=keep, delete_tags=delete_tags, grace=dt.timedelta(seconds=grace))
    for branch in report.removed_branches:
        click.echo(f"removed scratch branch {branch} (its run is gone)")
    for tag in report.deleted_tags:
        click.echo(f"deleted version tag {tag}")
    for tag, runs in report.kept_for_runs.items():
        click.echo(f"kept version tag {tag}: recorded training runs read it ({', '.join(runs)})")
    for tag, why in report.kept_history.items():
        click.echo(f"kept version tag {tag}: {why} (deleting it would free nothing)")
    for tag, leases in report.kept_for_training.items():
        click.echo(
            f"kept {tag or 'a snapshot'}: {len(leases)} live training run(s) read it "
            f"({', '.join(leases)})"
        )
    click.echo(
        f"store {store}: freed {report.chunks_deleted} chunks, "
        f"{_size(report.bytes_deleted)} ({report.snapshots_deleted} snapshots, "
        f"{report.manifests_deleted} manifests); kept "
        f"{', '.join(report.kept_versions) or 'no versions'}"
    )


def _size(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} bytes"
