"""The self-contained HTML report of one store version (``mer-prep show``).

One HTML file, every image embedded as a base64 PNG (``data:`` URIs), no script, no external
resource: it opens offline in any browser. Sections: overview (dataset, recipe and parameters,
version and snapshot, samples per class and subject, apex annotated/spotted, the low-confidence
face boxes and how each was confirmed, failures with a
thumbnail of the failing file where it can be read, stored splits with fold sizes per class and
leaks marked), a contact sheet per class (``panels``), and the training runs recorded on the
store when the caller passes them (``runs``: ``mer_prep.train.list_runs(store)``).

Size: face panels are stored at up to 160 px (64 px faces doubled) and shown at least 200 px wide
(click one to enlarge it: a CSS checkbox, no script), charts at 80 dpi quantised to
128 colours, PNGs at zlib level 9 (a palette where it is smaller), and the contact sheets show
``per_class`` samples per class (3 by default); ``samples`` picks the samples instead.

Layout: each section gathers what it shows (pictures as :class:`~mer_prep.plot.html.Picture`,
rows as small records) and renders its Jinja2 template, ``mer_prep/plot/templates/<section>
.html.j2`` (autoescaped: text from the store is never markup); ``report.html.j2`` is the page.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from markupsafe import Markup

from mer_prep.errors import InvalidArgumentError, UnknownNameError
from mer_prep.face.mask import REGION_GROUPS
from mer_prep.plot import figures
from mer_prep.plot.colour import LANDMARK_RGB, REGION_RGB, colour_wheel
from mer_prep.plot.html import CHART_COLOURS, Captioned, Images, Picture, png_bytes, render
from mer_prep.plot.panels import APEX_RGB, ONSET_RGB, Panel, panels
from mer_prep.plot.runs import RunLike, RunPlots, leaderboard
from mer_prep.plot.sample_view import pick_samples, sample_view
from mer_prep.plot.seed_board import seed_board
from mer_prep.plot.sources import (
    IMAGE_SUFFIXES,
    VIDEO_SUFFIXES,
    DatasetSamples,
    dataset_roots,
    read_thumbnail,
    resolve_file,
)
from mer_prep.plot.store_plots import subject_leaks

__all__ = [
    "Report",
    "write_report",
    "report_html",
    "png_bytes",
    "dataset_roots",
    "resolve_file",
    "DEFAULT_PER_CLASS",
]

DEFAULT_PER_CLASS = 3
#: Most runs drawn in detail (confusion, folds, curves); the leaderboard lists every run.
DETAILED_RUNS = 5
#: Width of the face panels of the contact sheets: larger faces are reduced to it, 128/134 px
#: faces stay at their stored size and 64 px ones are doubled (``display_scale``); the page
#: then shows every face panel at least ``FACE_DISPLAY_PX`` wide and a click enlarges it.
THUMBNAIL_FACE_PX = 160
#: Smallest width (CSS px) a face panel is shown at: smaller rasters are magnified, pixelated.
FACE_DISPLAY_PX = 200


@dataclass
class Report:
    """What :func:`write_report` wrote: the HTML file, its size, the images, the seconds it
    took, and the folder of PNG copies (``png=True``)."""

    path: Path
    n_bytes: int
    n_images: int
    seconds: float
    png_dir: Path | None = None
    notes: list[str] = field(default_factory=list)


# --- sections: each gathers what its template (mer_prep/plot/templates/<key>.html.j2) shows ----


def _overview(store) -> Markup:
    attrs = store.attrs
    table_all = store.table_all
    try:
        snapshot = store.session.snapshot_id
    except Exception:  # noqa: BLE001 - a session without a snapshot id: say so
        snapshot = "unknown"
    reuse = attrs.get("reuse") or {}
    params = yaml.safe_dump(
        attrs["recipe"].get("parameters", {}), sort_keys=False, width=100, default_flow_style=None
    )
    return render(
        "overview.html.j2",
        store=store,
        attrs=attrs,
        recipe=attrs["recipe"],
        class_names=list(store.class_names),
        snapshot=snapshot,
        n_processed=len(store.table),
        n_rows=len(table_all),
        n_failed=int((table_all["status"] != "ok").sum()),
        n_subjects=len(store.subjects),
        reuse=", ".join(f"{k} {v}" for k, v in reuse.items()),
        parameters=params,
    )


def _counts(store, images: Images) -> Markup:
    table = store.table
    counts = images.figure(
        figures.counts_figure(table, store.class_names),
        "counts",
        "samples per class and per subject",
    )
    originals = table[table["aug_parent"].astype(str) == ""] if "aug_parent" in table else table
    sources = originals["apex_source"].astype(str).value_counts()
    rows = [(name, int(sources.get(name, 0))) for name in ("annotated", "spotted", "none")]
    return render(
        "samples.html.j2",
        counts=counts,
        apex_rows=rows,
        needs_apex=store.recipe.needs_apex,
        low_confidence=_low_confidence(table),
    )


def low_confidence_html(table) -> Markup:
    """The report's table of low-confidence faces of ``table`` (the sample table)."""
    return render("low_confidence.html.j2", low_confidence=_low_confidence(table))


def _low_confidence(table) -> list:
    """The samples whose face box was a low-confidence one: the sample table's rows as named
    tuples of ``sample_id``, ``detector``, ``score`` and ``confirmation`` (empty for stores
    written before boxes were confirmed)."""
    from mer_prep.face.cascade import is_low_confidence

    rows = pd.DataFrame(
        {
            "sample_id": table["sample_id"].astype(str),
            "detector": table["detector"].astype(str),
            "score": table["detector_score"].astype(float) if "detector_score" in table else np.nan,
            "confirmation": (
                table["detector_confirmation"].astype(str)
                if "detector_confirmation" in table
                else ""
            ),
        }
    )
    low = [is_low_confidence(d, c) for d, c in zip(rows.detector, rows.confirmation, strict=True)]
    return list(rows[np.array(low, dtype=bool)].itertuples(index=False, name="LowConfidence"))


@dataclass(frozen=True)
class _Failure:
    """A failed sample and the frame shown for it: ``thumbnail`` (with ``shown`` naming the
    onset frame when the failure named none), else whether its file ``exists`` undecodable."""

    sample_id: str
    stage: str
    file: str
    message: str
    thumbnail: Picture | None
    shown: str
    exists: bool


def _failures(store, images: Images, roots: Sequence[Path], dataset: DatasetSamples) -> Markup:
    rows = []
    for i, failure in enumerate(store.failures.itertuples(index=False)):
        path = resolve_file(str(failure.file), roots)
        thumbnail = read_thumbnail(path) if path is not None else None
        what = ""
        if (
            thumbnail is None
            and roots
            and (path is None or path.suffix.lower() not in IMAGE_SUFFIXES | VIDEO_SUFFIXES)
        ):
            # the failure names no frame (no face found, a bad annotation row): show the
            # sample's onset frame, the one detection ran on
            onset = dataset.onset_frame(str(failure.sample_id))
            thumbnail = read_thumbnail(Path(onset)) if onset else None
            what = f"onset frame {onset}" if thumbnail is not None else ""
        picture = (
            images.raster(thumbnail, f"failure-{i}", what or f"{failure.file}", css="")
            if thumbnail is not None
            else None
        )
        rows.append(
            _Failure(
                str(failure.sample_id),
                str(failure.stage),
                str(failure.file),
                str(failure.message),
                picture,
                what,
                path is not None,
            )
        )
    return render("failures.html.j2", failures=rows, has_roots=bool(roots))


@dataclass(frozen=True)
class _Split:
    """A stored split as shown: its head, why it is leaky, its figure and fold sizes."""

    name: str
    kind: str
    n_folds: int
    seed: int | None
    smote: bool
    leaky: bool
    why: list[str]
    figure: Picture
    fold_rows: list[tuple]


def _splits(store, images: Images) -> Markup:
    table = store.table
    shown = []
    for name in store.split_names:
        split = store.split(name)
        stored = store.split_info(name)
        leaks = subject_leaks(split, table)
        recorded = split.leaky or (stored is not None and stored.leaky)
        leaky = bool(recorded or leaks)
        why = []
        if recorded:
            why.append("recorded as leaky (sample-level split)")
        if leaks:
            why.append(
                f"subjects in several test folds: {', '.join(leaks[:8])}"
                + (" …" if len(leaks) > 8 else "")
            )
        figure = figures.split_figure(name, split, table, store.class_names, leaky=leaky)
        labels = table["label_name"].to_numpy()
        rows = [
            (
                fold,
                *[int(((split.test_fold == i) & (labels == c)).sum()) for c in store.class_names],
                int((split.test_fold == i).sum()),
            )
            for i, fold in enumerate(split.fold_names)
        ]
        shown.append(
            _Split(
                name,
                split.kind,
                split.n_folds,
                split.seed,
                stored is not None and stored.smote is not None,
                leaky,
                why,
                images.figure(figure, f"split-{name}", f"split {name}"),
                rows,
            )
        )
    return render("splits.html.j2", splits=shown, fold_header=["fold", *store.class_names, "total"])


def _mask_names(recipe) -> set[str]:
    return {part for name in recipe.mask.regions for part in REGION_GROUPS.get(name, (name,))}


def _curves_png(curve_panels: list[Panel]) -> bytes:
    # a fixed layout: the constrained engine doubles the drawing time of these small figures
    figure = figures.new_figure(3.6 * len(curve_panels), 2.3, dpi=80)
    figure.subplots_adjust(
        left=0.1 / len(curve_panels) + 0.04, right=0.98, bottom=0.17, top=0.9, wspace=0.32
    )
    for i, panel in enumerate(curve_panels, start=1):
        ax = figure.add_subplot(1, len(curve_panels), i)
        figures.draw_curve(ax, panel.curve)
        ax.set_title(panel.title, fontsize=8)
    return figures.figure_png(figure, colours=CHART_COLOURS)


@dataclass(frozen=True)
class _Card:
    """One sample's card: its table row (``info``), face panels and full-width strips/curves."""

    sample_id: str
    info: dict
    faces: list[Captioned]
    wide: list[Captioned]


def _sample_card(store, row: int, images: Images, dataset: DatasetSamples) -> _Card:
    view = sample_view(store, row, thumb=THUMBNAIL_FACE_PX)
    source = dataset.samples.get(view.sample_id) if store.recipe.magnify is not None else None
    faces, wide, curve_panels = [], [], []
    for panel in panels(view, source=source):
        name = f"{view.sample_id}-{panel.key}"
        if panel.curve is not None:
            curve_panels.append(panel)
        elif panel.key == "strip":
            strip = images.raster(panel.image, name, f"{view.sample_id}: {panel.title}")
            wide.append(Captioned(strip, panel.title, panel.caption, wide=True))
        else:
            shown = max(1, -(-FACE_DISPLAY_PX // panel.image.shape[1]))  # ceil
            faces.append(
                Captioned(
                    images.raster(
                        panel.image, name, f"{view.sample_id}: {panel.title}", display=shown
                    ),
                    panel.title,
                    panel.caption,
                    width=panel.image.shape[1] * shown,
                )
            )
    if curve_panels:
        png = _curves_png(curve_panels)
        caption = " | ".join(f"{p.title}: {p.caption}" for p in curve_panels)
        wide.append(
            Captioned(
                images.tag(png, f"{view.sample_id}-curves", f"{view.sample_id}: curves", "chart"),
                "curves",
                caption,
                wide=True,
            )
        )
    return _Card(view.sample_id, view.info, faces, wide)


@dataclass(frozen=True)
class _ClassSheet:
    """The cards of one class; ``n_class``: its clips in the store (augmented copies aside)."""

    label: str
    anchor: str
    n_class: int
    cards: list[_Card]


def _contact_sheets(
    store, images: Images, samples: Sequence[str] | None, per_class: int, dataset: DatasetSamples
) -> Markup:
    table = store.table
    if samples:
        ids = table["sample_id"].to_numpy(dtype=str)
        rows = []
        for sample in samples:
            hits = np.flatnonzero(ids == str(sample))
            if not hits.size:
                raise UnknownNameError(f"store {store.path} has no processed sample {sample!r}")
            rows.append(int(hits[0]))
        groups: dict[str, list[int]] = {}
        for r in rows:
            groups.setdefault(str(table["label_name"].iloc[r]), []).append(r)
    else:
        present = set(table["label_name"].astype(str))
        order = [c for c in store.class_names if c in present] + sorted(
            present - set(store.class_names)
        )
        groups = {c: pick_samples(table, c, per_class) for c in order}
    recipe = store.recipe
    mask = (
        [(r, REGION_RGB.get(r, (255, 0, 255))) for r in sorted(_mask_names(recipe))]
        if recipe.mask is not None
        else []
    )
    flow_key = None
    if recipe.flow is not None:
        flow_key = Captioned(
            images.raster(colour_wheel(96), "flow-key", "flow colour key"),
            "flow colour key",
            "hue = direction as displayed (right red, up "
            "yellow-green, left cyan, down violet), saturation = magnitude; "
            "white = no motion",
            width=260,
        )
    sheets = []
    for label, rows in groups.items():
        n_class = int(
            (
                (table["label_name"].astype(str) == label) & (table["aug_parent"].astype(str) == "")
            ).sum()
        )
        sheets.append(
            _ClassSheet(
                label,
                re.sub(r"[^A-Za-z0-9_-]", "_", label),
                n_class,
                [_sample_card(store, r, images, dataset) for r in rows],
            )
        )
    return render(
        "sheets.html.j2",
        landmark_rgb=LANDMARK_RGB,
        onset_rgb=ONSET_RGB,
        apex_rgb=APEX_RGB,
        mask_colours=mask,
        flow_key=flow_key,
        groups=sheets,
    )


@dataclass(frozen=True)
class _RunDetail:
    """A run drawn in detail: its title, settings line, selection warning and charts."""

    run_id: str
    title: str
    settings: str | None
    warning: str | None
    pictures: list[Picture]


def _selection_leak(run: RunLike) -> str:
    """``LEAKY (test-subject epoch selection)`` for a test-oracle run ("" otherwise; the
    split's leak has its own mark)."""
    return "LEAKY (test-subject epoch selection)" if getattr(run, "leaky_selection", False) else ""


def _runs(store, runs: Sequence[RunLike] | None, images: Images) -> Markup:
    if not runs:
        return render("runs.html.j2", board=None if runs is None else [])
    board = leaderboard(runs)
    warnings = {r.run_id: getattr(r, "selection_warning", None) for r in runs}
    by_id = {r.run_id: r for r in runs}
    detailed = []
    # an AU run (multi-label) has no confusion matrix nor per-fold UF1 / UAR to draw
    drawn = [i for i in board["run_id"] if getattr(by_id[i], "target", "emotion") != "aus"]
    for run_id in drawn[:DETAILED_RUNS]:
        run = by_id[run_id]
        plots = RunPlots(run)
        pictures = [
            images.figure(
                plots.confusion(), f"run-{run_id}-confusion", f"{run_id}: pooled confusion matrix"
            )
        ]
        if run.folds:
            pictures.append(
                images.figure(
                    plots.folds(), f"run-{run_id}-folds", f"{run_id}: per-fold UF1 and UAR"
                )
            )
            if any(f.curves for f in run.folds):
                pictures.append(
                    images.figure(
                        plots.learning_curves(),
                        f"run-{run_id}-curves",
                        f"{run_id}: learning curves",
                    )
                )
        settings = getattr(run, "settings", None)
        detailed.append(
            _RunDetail(
                run_id,
                getattr(run, "name", None) or run.model + " / " + run.variant,
                settings() if callable(settings) else None,
                warnings.get(run_id),
                pictures,
            )
        )
    return render(
        "runs.html.j2",
        seeds=seed_board(runs, store.table),
        leak_labels={r.run_id: _selection_leak(r) for r in runs},
        board=list(board.itertuples(index=False)),
        warnings=warnings,
        version_id=store.version_id,
        detailed=detailed,
        n_more=len(board) - DETAILED_RUNS,
    )


@dataclass(frozen=True)
class _Section:
    """A section of the page: its anchor, heading and rendered body."""

    key: str
    name: str
    body: Markup


def report_html(
    store,
    *,
    samples: Sequence[str] | None = None,
    per_class: int = DEFAULT_PER_CLASS,
    runs: Sequence[RunLike] | None = None,
    roots: Sequence[str | Path] = (),
    png_dir: Path | None = None,
    spots: Markup | None = None,
) -> tuple[str, int]:
    """The report's HTML text and its number of images (see the module docstring); ``spots``:
    the store's spotting runs (``spot_timeline.spot_runs_html``), a section when given."""
    if per_class < 1:
        raise InvalidArgumentError(f"per_class must be >= 1, got {per_class}")
    images = Images(png_dir)
    attrs = store.attrs
    all_roots = [Path(r) for r in roots] + dataset_roots(attrs)
    dataset = DatasetSamples(store, all_roots)
    # built in page order: the images are numbered (and their PNG copies named) as made
    sections = [
        _Section("overview", "Overview", _overview(store)),
        _Section("samples", "Samples per class and subject", _counts(store, images)),
        _Section(
            "failures",
            f"Failures ({len(store.failures)})",
            _failures(store, images, all_roots, dataset),
        ),
        _Section("splits", f"Stored splits ({len(store.split_names)})", _splits(store, images)),
        _Section(
            "sheets",
            "Contact sheets per class",
            _contact_sheets(store, images, samples, per_class, dataset),
        ),
        _Section("runs", "Training runs", _runs(store, runs, images)),
    ]
    if spots is not None:
        sections.append(_Section("spots", "Spotting runs", spots))
    title = f"{store.info.dataset} / {store.info.recipe.name} — {store.version_id}"
    document = render(
        "report.html.j2",
        title=title,
        when=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        sections=sections,
    )
    return str(document), images.count


def default_report_path(store) -> Path:
    """``show-<dataset>-<recipe>-<version>.html`` in the working directory."""
    info = store.info
    name = f"show-{info.dataset}-{info.recipe.name}-{store.version_id}.html"
    return Path(re.sub(r"[^A-Za-z0-9._-]+", "-", name))


def write_report(
    store,
    out: str | Path | None = None,
    *,
    samples: Sequence[str] | None = None,
    per_class: int = DEFAULT_PER_CLASS,
    png: bool = False,
    runs: Sequence[RunLike] | None = None,
    roots: Sequence[str | Path] = (),
    spots: Markup | None = None,
) -> Report:
    """Write the HTML report of ``store`` to ``out`` (default :func:`default_report_path`);
    with ``png`` every image also goes to ``<out stem>_png/`` beside it."""
    started = time.perf_counter()
    path = Path(out) if out is not None else default_report_path(store)
    if path.suffix.lower() not in (".html", ".htm"):
        path = path / default_report_path(store) if path.is_dir() else path.with_suffix(".html")
    path.parent.mkdir(parents=True, exist_ok=True)
    png_dir = path.with_name(f"{path.stem}_png") if png else None
    document, n_images = report_html(
        store,
        samples=samples,
        per_class=per_class,
        runs=runs,
        roots=roots,
        png_dir=png_dir,
        spots=spots,
    )
    path.write_text(document, encoding="utf-8")
    return Report(
        path=path,
        n_bytes=path.stat().st_size,
        n_images=n_images,
        seconds=time.perf_counter() - started,
        png_dir=png_dir,
    )
