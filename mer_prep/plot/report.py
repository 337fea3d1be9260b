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
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from mer_prep.errors import InvalidArgumentError, UnknownNameError
from mer_prep.face.mask import REGION_GROUPS
from mer_prep.plot import figures
from mer_prep.plot.html import (CHART_COLOURS, CSS, Images, esc, figure_html, fmt, kv_html,
                                png_bytes, table_html)
from mer_prep.plot.sources import (IMAGE_SUFFIXES, VIDEO_SUFFIXES, DatasetSamples, dataset_roots,
                                   read_thumbnail, resolve_file)
from mer_prep.plot.colour import REGION_RGB, LANDMARK_RGB, colour_wheel
from mer_prep.plot.panels import APEX_RGB, ONSET_RGB, Panel, panels
from mer_prep.plot.sample_view import pick_samples, sample_view
from mer_prep.plot.runs import RunLike, RunPlots, leaderboard
from mer_prep.plot.store_plots import subject_leaks

__all__ = ["Report", "write_report", "report_html", "png_bytes", "dataset_roots",
           "resolve_file", "DEFAULT_PER_CLASS"]

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


# --- sections ------------------------------------------------------------------------------------

def _overview(store, images: Images) -> str:
    attrs = store.attrs
    recipe = attrs["recipe"]
    table_all = store.table_all
    try:
        snapshot = store.session.snapshot_id
    except Exception:  # noqa: BLE001 - a session without a snapshot id: say so
        snapshot = "unknown"
    reuse = attrs.get("reuse") or {}
    out = [kv_html([
        ("store", esc(store.path)), ("dataset", esc(attrs["dataset"])),
        ("labels", esc(attrs["labels"]) + f" ({len(store.class_names)} classes: "
                   f"{esc(', '.join(store.class_names))})"),
        ("recipe", f"<b>{esc(recipe['name'])}</b> — {esc(recipe.get('paper', ''))} "
                   f"<span class=muted>hash {esc(recipe.get('hash', ''))}</span>"),
        ("version", f"<code>{esc(store.version_id)}</code>"),
        ("snapshot", f"<code>{esc(snapshot)}</code>"),
        ("created", esc(attrs.get("created", ""))),
        ("code / inputs", f"<code>{esc(attrs.get('code_version', ''))}</code> / "
                          f"<code>{esc(attrs.get('input_fingerprint', ''))}</code>"),
        ("samples", f"{len(store.table)} processed of {len(table_all)} rows, "
                    f"{int((table_all['status'] != 'ok').sum())} failed rows, "
                    f"{len(store.subjects)} subjects"),
        ("reuse", esc(", ".join(f"{k} {v}" for k, v in reuse.items()) or "—")),
        ("arrays", "<br>".join(f"<code>{esc(n)}</code> ({esc(', '.join(s['dims']))}) "
                               f"{'×'.join(str(d) for d in s['shape'])} {esc(s['dtype'])}"
                               for n, s in attrs["arrays"].items())),
    ])]
    params = yaml.safe_dump(recipe.get("parameters", {}), sort_keys=False, width=100,
                            default_flow_style=None)
    out.append(f"<details open><summary>recipe parameters</summary><pre>{esc(params)}</pre>"
               f"</details>")
    return "".join(out)


def _counts(store, images: Images) -> str:
    table = store.table
    out = [images.figure(figures.counts_figure(table, store.class_names), "counts",
                         "samples per class and per subject")]
    originals = table[table["aug_parent"].astype(str) == ""] if "aug_parent" in table else table
    sources = originals["apex_source"].astype(str).value_counts()
    needs = store.recipe.needs_apex
    rows = [(esc(name), int(sources.get(name, 0))) for name in ("annotated", "spotted", "none")]
    why = ("This recipe needs the apex: where the annotation has none it is spotted (or the "
           "sample fails with apex.spot false)." if needs else
           "This recipe does not need the apex; it is recorded where annotated.")
    out.append("<h3>apex</h3>" + table_html(["apex_source", "clips"], rows)
               + f"<p class=muted>{why}</p>")
    out.append(_low_confidence(table))
    return "".join(out)


def _low_confidence(table) -> str:
    """The samples whose face box was a low-confidence one, with score and confirmation."""
    from mer_prep.face.cascade import is_low_confidence

    confirmations = (table["detector_confirmation"].astype(str)
                     if "detector_confirmation" in table else [""] * len(table))
    scores = table["detector_score"] if "detector_score" in table else [float("nan")] * len(table)
    rows = [(esc(sid), esc(det), f"{score:.3f}", esc(conf) if conf else
             "<span class=bad>unconfirmed (store written before confirmation)</span>")
            for sid, det, score, conf in zip(table["sample_id"], table["detector"], scores,
                                             confirmations) if is_low_confidence(str(det), conf)]
    note = ("<p class=muted>Boxes from the cascade's low-confidence stages (hog-low, haar, HOG "
            "under its confirmation score) are kept only when dlib's CNN detector confirms "
            "them.</p>")
    if not rows:
        return "<h3>low-confidence faces</h3><p>None.</p>" + note
    return ("<h3>low-confidence faces</h3>"
            + table_html(["sample", "detector", "score", "confirmation"], rows) + note)


def _failures(store, images: Images, roots: Sequence[Path], dataset: DatasetSamples) -> str:
    failures = store.failures
    if failures.empty:
        return "<p>No failures.</p>"
    rows = []
    for i, failure in enumerate(failures.itertuples(index=False)):
        path = resolve_file(str(failure.file), roots)
        thumbnail = read_thumbnail(path) if path is not None else None
        what = ""
        if thumbnail is None and roots and (path is None or path.suffix.lower()
                                            not in IMAGE_SUFFIXES | VIDEO_SUFFIXES):
            # the failure names no frame (no face found, a bad annotation row): show the
            # sample's onset frame, the one detection ran on
            onset = dataset.onset_frame(str(failure.sample_id))
            thumbnail = read_thumbnail(Path(onset)) if onset else None
            what = f"onset frame {onset}" if thumbnail is not None else ""
        if thumbnail is not None:
            cell = images.raster(thumbnail, f"failure-{i}", what or f"{failure.file}", css="")
            cell += f"<br><span class=muted>{esc(what)}</span>" if what else ""
        elif path is not None:
            cell = "<span class=bad>file exists but cannot be decoded</span>"
        else:
            cell = "<span class=muted>file not readable here</span>"
        rows.append((esc(failure.sample_id), esc(failure.stage),
                     f"<code>{esc(failure.file)}</code>", esc(failure.message), cell))
    note = ("" if roots else "<p class=muted>The store records no dataset root: relative file "
            "paths are looked up from the working directory (<code>mer-prep show --root "
            "PATH</code> names the root).</p>")
    return table_html(["sample", "stage", "file", "error", "frame"], rows) + note


def _splits(store, images: Images) -> str:
    names = store.split_names
    if not names:
        return ("<p>No stored splits (<code>loso</code> and <code>megc2019</code> are computed on "
                "demand; <code>mer-prep split</code> stores others).</p>")
    out = []
    table = store.table
    for name in names:
        split = store.split(name)
        attrs = store.split_attrs(name)
        leaks = subject_leaks(split, table)
        leaky = bool(split.leaky or attrs.get("leaky") or leaks)
        why = []
        if split.leaky or attrs.get("leaky"):
            why.append("recorded as leaky (sample-level split)")
        if leaks:
            why.append(f"subjects in several test folds: {', '.join(leaks[:8])}"
                       + (" …" if len(leaks) > 8 else ""))
        head = (f"<h3>{esc(name)} <span class=muted>({esc(split.kind)}, {split.n_folds} folds"
                + (f", seed {split.seed}" if split.seed is not None else "")
                + (", SMOTE" if attrs.get("smote") else "") + ")</span>"
                + (" <span class=leaky>LEAKY</span>" if leaky else "") + "</h3>")
        figure = figures.split_figure(name, split, table, store.class_names, leaky=leaky)
        labels = table["label_name"].to_numpy()
        rows = [(esc(fold), *[int(((split.test_fold == i) & (labels == c)).sum())
                               for c in store.class_names], int((split.test_fold == i).sum()))
                for i, fold in enumerate(split.fold_names)]
        out.append(head + (f"<p class=leaky>{esc('; '.join(why))}</p>" if why else "")
                   + images.figure(figure, f"split-{name}", f"split {name}")
                   + "<details><summary>fold sizes per class</summary>"
                   + table_html(["fold", *store.class_names, "total"], rows) + "</details>")
    return "".join(out)


def _legend(store, images: Images) -> str:
    recipe = store.recipe
    parts = [f'<span style="background:rgb{LANDMARK_RGB}"></span>landmarks'
             f'<span style="background:rgb{ONSET_RGB}"></span>onset'
             f'<span style="background:rgb{APEX_RGB}"></span>apex']
    if recipe.mask is not None:
        parts += [f'<span style="background:rgb{REGION_RGB.get(r, (255, 0, 255))}"></span>'
                  f'mask {esc(r)}' for r in sorted(_mask_names(recipe))]
    key = f"<p class=key>{''.join(parts)}</p>"
    if recipe.flow is not None:
        key += figure_html(images.raster(colour_wheel(96), "flow-key", "flow colour key"),
                       "flow colour key", "hue = direction as displayed (right red, up "
                       "yellow-green, left cyan, down violet), saturation = magnitude; white = "
                       "no motion", width=260)
    return key


def _mask_names(recipe) -> set[str]:
    return {part for name in recipe.mask.regions for part in REGION_GROUPS.get(name, (name,))}


def _curves_png(view_id: str, curve_panels: list[Panel]) -> bytes:
    # a fixed layout: the constrained engine doubles the drawing time of these small figures
    figure = figures.new_figure(3.6 * len(curve_panels), 2.3, dpi=80)
    figure.subplots_adjust(left=0.1 / len(curve_panels) + 0.04, right=0.98, bottom=0.17,
                           top=0.9, wspace=0.32)
    for i, panel in enumerate(curve_panels, start=1):
        ax = figure.add_subplot(1, len(curve_panels), i)
        figures.draw_curve(ax, panel.curve)
        ax.set_title(panel.title, fontsize=8)
    return figures.figure_png(figure, colours=CHART_COLOURS)


def _sample_card(store, row: int, images: Images, dataset: DatasetSamples) -> str:
    view = sample_view(store, row, thumb=THUMBNAIL_FACE_PX)
    source = dataset.samples.get(view.sample_id) if store.recipe.magnify is not None else None
    info = view.info
    head = (f"<div class=card-head><b>{esc(view.sample_id)}</b> · subject "
            f"{esc(info.get('subject', ''))} · {esc(info.get('label_name', ''))} · onset "
            f"{info.get('onset')} · apex "
            f"{info.get('apex') if info.get('apex') is not None else '—'}"
            f" ({esc(info.get('apex_source', ''))}) · offset {info.get('offset')} · "
            f"{esc(info.get('emotion', ''))} {esc(info.get('action_units', ''))}</div>")
    figures_html = []
    wide = []
    curve_panels = []
    for panel in panels(view, source=source):
        name = f"{view.sample_id}-{panel.key}"
        if panel.curve is not None:
            curve_panels.append(panel)
        elif panel.key == "strip":
            strip = images.raster(panel.image, name, f"{view.sample_id}: {panel.title}")
            wide.append(figure_html(strip, panel.title, panel.caption, wide=True))
        else:
            shown = max(1, -(-FACE_DISPLAY_PX // panel.image.shape[1]))  # ceil
            figures_html.append(figure_html(images.raster(panel.image, name,
                                                      f"{view.sample_id}: {panel.title}",
                                                      display=shown),
                                        panel.title, panel.caption,
                                        width=panel.image.shape[1] * shown))
    if curve_panels:
        png = _curves_png(view.sample_id, curve_panels)
        caption = " | ".join(f"{p.title}: {p.caption}" for p in curve_panels)
        wide.append(figure_html(images.tag(png, f"{view.sample_id}-curves",
                                       f"{view.sample_id}: curves", "chart"),
                            "curves", caption, wide=True))
    return (f"<div class=card>{head}<div class=panels>{''.join(figures_html)}</div>"
            f"<div class=panels>{''.join(wide)}</div></div>")


def _contact_sheets(store, images: Images, samples: Sequence[str] | None,
                    per_class: int, dataset: DatasetSamples) -> str:
    table = store.table
    if samples:
        ids = table["sample_id"].to_numpy(dtype=str)
        rows = []
        for sample in samples:
            hits = np.flatnonzero(ids == str(sample))
            if not hits.size:
                raise UnknownNameError(f"store {store.path} has no processed sample {sample!r}")
            rows.append(int(hits[0]))
        groups = {}
        for r in rows:
            groups.setdefault(str(table["label_name"].iloc[r]), []).append(r)
    else:
        present = set(table["label_name"].astype(str))
        order = [c for c in store.class_names if c in present] + sorted(
            present - set(store.class_names))
        groups = {c: pick_samples(table, c, per_class) for c in order}
    out = [_legend(store, images)]
    for label, rows in groups.items():
        n_class = int(((table["label_name"].astype(str) == label)
                       & (table["aug_parent"].astype(str) == "")).sum())
        out.append(f"<h3 id=\"class-{esc(re.sub(r'[^A-Za-z0-9_-]', '_', label))}\">"
                   f"{esc(label)} <span class=muted>({len(rows)} of {n_class} clips)</span></h3>")
        out.extend(_sample_card(store, r, images, dataset) for r in rows)
    return "".join(out)


def _runs(store, runs: Sequence[RunLike] | None, images: Images) -> str:
    if runs is None:
        return "<p class=muted>Run records were not read.</p>"
    if not runs:
        return ("<p>No training runs recorded on this store yet (<code>mer-prep train</code> "
                "records them).</p>")
    board = leaderboard(runs)
    warnings = {r.run_id: getattr(r, "selection_warning", None) for r in runs}
    rows = [(f"<code>{esc(r.run_id)}</code>", esc(r.name)
             + (f" <span class=bad title=\"{esc(warnings[r.run_id])}\">EPOCH1</span>"
                if warnings.get(r.run_id) else ""), esc(r.model), esc(r.variant),
             esc(r.split) + (" <span class=leaky>LEAKY</span>" if r.leaky else ""),
             f"<code>{esc(r.version_id)}</code>"
             + ("" if r.version_id == store.version_id
                else " <span class=muted>(other version)</span>"),
             fmt(r.uf1), fmt(r.uar), fmt(r.accuracy), esc(r.n), esc(r.folds), esc(r.created))
            for r in board.itertuples(index=False)]
    out = ["<h3>leaderboard (pooled over folds, best UF1 first)</h3>",
           table_html(["run", "name", "model", "variant", "split", "version", "UF1", "UAR",
                       "accuracy", "n",
                   "folds", "created"], rows)]
    by_id = {r.run_id: r for r in runs}
    for run_id in list(board["run_id"])[:DETAILED_RUNS]:
        run = by_id[run_id]
        plots = RunPlots(run)
        parts = [images.figure(plots.confusion(), f"run-{run_id}-confusion",
                               f"{run_id}: pooled confusion matrix")]
        if run.folds:
            parts.append(images.figure(plots.folds(), f"run-{run_id}-folds",
                                       f"{run_id}: per-fold UF1 and UAR"))
            if any(f.curves for f in run.folds):
                parts.append(images.figure(plots.learning_curves(), f"run-{run_id}-curves",
                                           f"{run_id}: learning curves"))
        settings = getattr(run, "settings", None)
        about = f"<p>{esc(settings())}</p>" if callable(settings) else ""
        if warnings.get(run_id):
            about += f"<p class=bad>warning: {esc(warnings[run_id])}</p>"
        out.append(f"<h3>{esc(getattr(run, 'name', None) or run.model + ' / ' + run.variant)} "
                   f"<span class=muted>{esc(run_id)}</span></h3>{about}"
                   f"<div class=panels>{''.join(parts)}</div>")
    if len(board) > DETAILED_RUNS:
        out.append(f"<p class=muted>{len(board) - DETAILED_RUNS} more runs in the leaderboard "
                   f"only.</p>")
    return "".join(out)


def report_html(store, *, samples: Sequence[str] | None = None,
                per_class: int = DEFAULT_PER_CLASS, runs: Sequence[RunLike] | None = None,
                roots: Sequence[str | Path] = (), png_dir: Path | None = None,
                ) -> tuple[str, int]:
    """The report's HTML text and its number of images (see the module docstring)."""
    if per_class < 1:
        raise InvalidArgumentError(f"per_class must be >= 1, got {per_class}")
    images = Images(png_dir)
    attrs = store.attrs
    all_roots = [Path(r) for r in roots] + dataset_roots(attrs)
    dataset = DatasetSamples(store, all_roots)
    recipe = attrs["recipe"]["name"]
    title = f"{attrs['dataset']} / {recipe} — {store.version_id}"
    sections = [
        ("overview", "Overview", _overview(store, images)),
        ("samples", "Samples per class and subject", _counts(store, images)),
        ("failures", f"Failures ({len(store.failures)})",
         _failures(store, images, all_roots, dataset)),
        ("splits", f"Stored splits ({len(store.split_names)})", _splits(store, images)),
        ("sheets", "Contact sheets per class",
         _contact_sheets(store, images, samples, per_class, dataset)),
        ("runs", "Training runs", _runs(store, runs, images)),
    ]
    toc = " · ".join(f'<a href="#{key}">{esc(name)}</a>' for key, name, _ in sections)
    body = "".join(f'<h2 id="{key}">{esc(name)}</h2>{content}' for key, name, content in sections)
    when = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    notes = ("<h2>What is drawn</h2><ul>"
             "<li>Only arrays the recipe stores, read from this version; landmarks are drawn at "
             "their stored coordinates (pixel centres on integers).</li>"
             "<li>Masks are recomputed with <code>region_mask</code> from the stored landmarks "
             "and the recipe's regions and margin.</li>"
             "<li>Keyframe curves: slice change between successive stored keyframes, recomputed "
             "on the stored (magnified) frames; the selection score over every frame of the "
             "clip is not stored.</li>"
             "<li>Apex curves: the spotter's motion measure over the stored frames (from stored "
             "flow where there is one, else TV-L1 on the stored frames).</li>"
             "<li>Differences apex − onset are of the stored frames: magnified where the recipe "
             "magnifies. Unmagnified frames are not stored: with the dataset at hand "
             "(<code>--root</code>) the unmagnified difference is recomputed from its frames "
             "(landmarks refitted in the stored face box, the recipe's alignment) and drawn "
             "beside it at the same scale.</li></ul>")
    document = (f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8>"
                f"<meta name=viewport content=\"width=device-width, initial-scale=1\">"
                f"<link rel=icon href=\"data:,\"><title>{esc(title)}</title>"
                f"<style>{CSS}</style></head><body><h1>{esc(title)}</h1>"
                f"<p class=muted>mer-prep show, {when}. {toc}</p>{body}{notes}</body></html>\n")
    return document, images.count


def default_report_path(store) -> Path:
    """``show-<dataset>-<recipe>-<version>.html`` in the working directory."""
    attrs = store.attrs
    name = f"show-{attrs['dataset']}-{attrs['recipe']['name']}-{store.version_id}.html"
    return Path(re.sub(r"[^A-Za-z0-9._-]+", "-", name))


def write_report(store, out: str | Path | None = None, *, samples: Sequence[str] | None = None,
                 per_class: int = DEFAULT_PER_CLASS, png: bool = False,
                 runs: Sequence[RunLike] | None = None,
                 roots: Sequence[str | Path] = ()) -> Report:
    """Write the HTML report of ``store`` to ``out`` (default :func:`default_report_path`);
    with ``png`` every image also goes to ``<out stem>_png/`` beside it."""
    started = time.perf_counter()
    path = Path(out) if out is not None else default_report_path(store)
    if path.suffix.lower() not in (".html", ".htm"):
        path = path / default_report_path(store) if path.is_dir() else path.with_suffix(".html")
    path.parent.mkdir(parents=True, exist_ok=True)
    png_dir = path.with_name(f"{path.stem}_png") if png else None
    document, n_images = report_html(store, samples=samples, per_class=per_class, runs=runs,
                                     roots=roots, png_dir=png_dir)
    path.write_text(document, encoding="utf-8")
    return Report(path=path, n_bytes=path.stat().st_size, n_images=n_images,
                  seconds=time.perf_counter() - started, png_dir=png_dir)
