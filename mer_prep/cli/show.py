"""``mer-prep show``: the HTML report of a store version (``mer_prep.plot.report``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from mer_prep.cli import main
from mer_prep.cli.options import repeated_option, version_option

if TYPE_CHECKING:  # the CLI imports the store lazily: ``mer-prep -h`` stays fast
    from mer_prep.store.long_reader import StoredFaces


def _runs(store):
    """The run records of ``store`` (``mer_prep.train.list_runs``); None when they cannot be
    read (the report then says so rather than failing)."""
    try:
        from mer_prep.train import list_runs
    except ImportError:
        return None
    try:
        return list_runs(store)
    except Exception as error:  # noqa: BLE001 - a report without runs is still a report
        click.echo(f"warning: the store's run records cannot be read ({error})", err=True)
        return None


def _spot_runs(store):
    """The spotting run records of ``store`` (``mer_prep.spotting.records``); None when they
    cannot be read (the report then says so rather than failing)."""
    from mer_prep.spotting.records import list_spot_runs

    try:
        return list_spot_runs(store)
    except Exception as error:  # noqa: BLE001 - a report without spotting runs is still one
        click.echo(f"warning: the store's spotting runs cannot be read ({error})", err=True)
        return None


def _long_videos(store, version) -> tuple[list[tuple], str]:
    """A long-video version's table rows (``long_info.video_rows``) and one line on what it
    is; ([], "") for any other store."""
    from mer_prep.cli.long_info import video_rows
    from mer_prep.store.long_reader import is_long_video_store, open_long_store

    if not is_long_video_store(store):
        return [], ""
    opened = open_long_store(store, version)
    rows = video_rows(opened)
    info = opened.info
    about = (
        f"long videos of {info.dataset}, recipe {info.recipe.name}, version {opened.version_id}: "
        f"{info.n_ok} of {info.n_videos} computed"
    )
    return rows, about


def _spot_only(store, out, version=None):
    """The page of a store that holds spotting runs or long-video motion but no clip features
    (``mer-prep spot --synthetic``, ``mer-prep run <long-video dataset>``), or None when it
    holds neither; on a long-video store each run's timelines get apex strips from the stored
    faces (``_run_faces``)."""
    from pathlib import Path

    from mer_prep.plot.spot_timeline import spot_page

    records = _spot_runs(store) or []
    videos, about = _long_videos(store, version)
    if not records and not videos:
        return None
    name = "".join(c if c.isalnum() or c in "._-" else "-" for c in str(store).strip("/"))
    path = Path(out) if out is not None else Path(f"show-spots-{name}.html")
    path.parent.mkdir(parents=True, exist_ok=True)
    title = f"{store}: long videos and spotting runs" if videos else f"{store}: spotting runs"
    faces = _run_faces(store, version) if videos else None
    page = spot_page(records, title, videos=videos, about=about, faces=faces)
    path.write_text(page, encoding="utf-8")
    return path, len(records)


def _run_faces(store: str, version: str | None) -> Callable[[Any], StoredFaces]:
    """Per spotting run of a long-video store, the aligned faces of the version it read (the
    shown ``version`` when its record names none), each version opened once; a version gone
    or without faces says so in one line on the page (``long_reader.stored_faces``)."""
    from mer_prep.store.long_reader import stored_faces

    opened: dict[str | None, StoredFaces] = {}

    def faces(record: Any) -> StoredFaces:
        read = record.attrs.get("store") or {}
        key = read.get("version_id") or version
        if key not in opened:
            opened[key] = stored_faces(store, read, current=version)
        return opened[key]

    return faces


@main.command()
@click.argument("store")
@version_option()
@repeated_option(
    "--sample",
    "samples",
    metavar="ID",
    help="Show these samples (repeat) instead of the first of each class.",
)
@click.option(
    "--per-class",
    default=3,
    show_default=True,  # = plot.report.DEFAULT_PER_CLASS
    help="Samples per class in the contact sheets.",
)
@click.option(
    "--out",
    default=None,
    metavar="PATH",
    help="Report file [default: ./show-<dataset>-<recipe>-<version>.html].",
)
@click.option("--png", is_flag=True, help="Also write every image as a PNG beside the report.")
@repeated_option(
    "--root",
    "roots",
    metavar="PATH",
    help="Dataset root to find failed files under (when the store records none).",
)
def show(store, version, samples, per_class, out, png, roots):
    """Write a self-contained HTML report of STORE: overview, failures, splits, a contact
    sheet per class, training runs, spotting runs (timelines; on a long-video store with
    aligned faces, the face at each spotted apex under them)."""
    from mer_prep.errors import StoreError
    from mer_prep.plot.report import write_report
    from mer_prep.plot.spot_timeline import spot_runs_html
    from mer_prep.store import open_store

    try:
        opened = open_store(store, version)
    except StoreError:
        spotted = _spot_only(store, out, version)
        if spotted is None:
            raise
        click.echo(f"report: {spotted[0].resolve()} ({spotted[1]} spotting runs; no features)")
        return
    spot_records = _spot_runs(opened)
    report = write_report(
        opened,
        out,
        samples=list(samples) or None,
        per_class=per_class,
        png=png,
        runs=_runs(opened),
        roots=roots,
        spots=spot_runs_html(spot_records) if spot_records else None,
    )
    click.echo(
        f"report: {report.path.resolve()} ({report.n_bytes / 1e6:.2f} MB, "
        f"{report.n_images} images, {report.seconds:.1f} s)"
    )
    if report.png_dir is not None:
        click.echo(f"images: {report.png_dir.resolve()}")
