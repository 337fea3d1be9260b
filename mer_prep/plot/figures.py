"""matplotlib figures (Agg canvas, never a GUI backend; pyplot is not imported).

Figures are made with ``matplotlib.figure.Figure`` and an Agg canvas, so nothing is registered
with pyplot and nothing opens a window; Jupyter displays them, :func:`figure_png` encodes them.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from mer_prep.errors import InvalidArgumentError
from mer_prep.plot.colour import colour_range, colour_wheel, flow_range, flow_to_rgb, heat, upscale
from mer_prep.plot.panels import APEX_RGB, ONSET_RGB, Curve, Panel
from mer_prep.plot.sample_view import SampleView

__all__ = [
    "new_figure",
    "figure_png",
    "draw_curve",
    "sample_figure",
    "contact_sheet_figure",
    "flow_figure",
    "counts_figure",
    "split_figure",
    "confusion_figure",
    "fold_scores_figure",
    "learning_curves_figure",
]

_MARK_STYLE = {
    "onset": ("tab:green", "--"),
    "offset": ("tab:gray", "--"),
    "motion peak": ("tab:orange", ":"),
}


def new_figure(width: float, height: float, dpi: int = 80) -> Figure:
    """A figure on an Agg canvas (inches)."""
    figure = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(figure)
    return figure


def figure_png(figure: Figure, dpi: int | None = None, colours: int | None = None) -> bytes:
    """The figure as PNG bytes (no timestamp or software metadata: same figure, same bytes);
    ``colours``: quantise to a palette of that many colours (charts: 3-4x smaller)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi or figure.dpi, metadata={"Software": None})
    if colours is None:
        return buffer.getvalue()
    from PIL import Image  # matplotlib's own image library

    buffer.seek(0)
    with Image.open(buffer) as image:
        quantised = image.convert("RGB").quantize(int(colours), method=Image.Quantize.FASTOCTREE)
    out = io.BytesIO()
    quantised.save(out, format="PNG", compress_level=9)
    return out.getvalue()


def _image_axes(ax, image: np.ndarray, title: str = "") -> None:
    ax.imshow(image, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=8)


def draw_curve(ax, curve: Curve) -> None:
    """A per-frame :class:`Curve` on ``ax``: the line, the keyframes, the marks."""
    order = np.argsort(curve.x, kind="stable")
    ax.plot(
        curve.x[order],
        curve.y[order],
        color="black",
        lw=1.2,
        marker="." if curve.points is None else None,
    )
    if curve.points is not None:
        values = np.interp(curve.points, curve.x[order], curve.y[order])
        ax.plot(curve.points, values, "o", color="tab:blue", ms=3.5, label="keyframes")
    for label, x in curve.marks.items():
        colour, style = _MARK_STYLE.get(label, ("tab:red", "-"))
        if label.startswith("apex"):
            colour = "tab:purple" if "spotted" in label else "tab:red"
        ax.axvline(x, color=colour, ls=style, lw=1, label=f"{label} {x:g}")
    ax.set_xlabel("frame", fontsize=7)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(curve.ylabel, fontsize=7)
    ax.tick_params(labelsize=6)
    ax.legend(fontsize=6, loc="upper left", framealpha=0.7)


def sample_figure(view: SampleView, panel_list: list[Panel]) -> Figure:
    """One sample: its image panels in a row, the frame strip and the curves below."""
    images = [p for p in panel_list if p.image is not None and p.key != "strip"]
    strip = next((p for p in panel_list if p.key == "strip"), None)
    curves = [p for p in panel_list if p.curve is not None]
    has_wheel = any(p.key == "flow" for p in images)
    columns = max(len(images) + has_wheel, 2)
    rows = 1 + (strip is not None) + bool(curves)
    # 100 dpi: every panel is shown at least at its raster size (no landmark dot resampled away)
    figure = new_figure(
        1.8 * columns, 2.2 + 1.3 * (strip is not None) + 2.4 * bool(curves), dpi=100
    )
    grid = figure.add_gridspec(
        rows, columns * 2, height_ratios=[2.2] + [1.3] * (strip is not None) + [2.4] * bool(curves)
    )
    for i, panel in enumerate(images):
        ax = figure.add_subplot(grid[0, 2 * i : 2 * i + 2], gid=f"{view.sample_id}|{panel.key}")
        _image_axes(ax, panel.image, panel.title)
    if has_wheel:
        ax = figure.add_subplot(grid[0, 2 * len(images) : 2 * len(images) + 2], gid="wheel")
        _image_axes(ax, colour_wheel(96), "flow key")
    row = 1
    if strip is not None:
        ax = figure.add_subplot(grid[row, :], gid=f"{view.sample_id}|strip")
        _image_axes(ax, strip.image, strip.title + " (onset green, apex red)")
        row += 1
    for i, panel in enumerate(curves):
        width = (columns * 2) // len(curves)
        ax = figure.add_subplot(
            grid[row, i * width : (i + 1) * width], gid=f"{view.sample_id}|{panel.key}"
        )
        draw_curve(ax, panel.curve)
        ax.set_title(panel.title, fontsize=8)
    figure.suptitle(f"{view.sample_id} — {view.info.get('label_name', '')}", fontsize=10)
    figure.set_layout_engine("constrained")
    return figure


def contact_sheet_figure(
    views: Sequence[SampleView], rows: Sequence[list[Panel]], title: str = ""
) -> Figure:
    """One row of image panels per sample (the tile), the panel names as column titles.

    Every axes of a sample's tile has ``gid`` ``"<sample id>|<panel key>"``.
    """
    if len(views) != len(rows):
        raise InvalidArgumentError("one panel list per sample")
    keys: list[str] = []
    titles: dict[str, str] = {}
    for panel_list in rows:
        for panel in panel_list:
            if panel.image is not None and panel.key != "strip" and panel.key not in keys:
                keys.append(panel.key)
                titles[panel.key] = panel.title
    n_rows, n_cols = max(len(views), 1), max(len(keys), 1)
    figure = new_figure(1.7 * n_cols, 1.75 * n_rows + 0.4, dpi=100)
    for r, (view, panel_list) in enumerate(zip(views, rows, strict=True)):
        by_key = {p.key: p for p in panel_list}
        for c, key in enumerate(keys):
            ax = figure.add_subplot(
                n_rows, n_cols, r * n_cols + c + 1, gid=f"{view.sample_id}|{key}"
            )
            panel = by_key.get(key)
            if panel is not None and panel.image is not None:
                _image_axes(ax, panel.image, titles[key] if r == 0 else "")
            else:
                ax.axis("off")
            if c == 0:
                ax.set_ylabel(
                    f"{view.info.get('label_name', '')}\n{view.sample_id.split('/', 1)[-1]}",
                    fontsize=7,
                )
    if title:
        figure.suptitle(title, fontsize=10)
    figure.set_layout_engine("constrained")
    return figure


def flow_figure(view: SampleView) -> Figure:
    """Every stored frame's flow from the onset: colour (one scale for the clip), magnitude and
    strain rows, with the colour key."""
    if "flow" not in view.arrays:
        raise InvalidArgumentError(f"recipe {view.recipe.name} stores no flow")
    flow = np.asarray(view.arrays["flow"], np.float32)
    strain = view.arrays.get("strain")
    n = flow.shape[0]
    flow_colours = flow_range(flow)
    scale = flow_colours.top
    magnitude = np.hypot(flow[..., 0], flow[..., 1])
    magnitude_range = colour_range(magnitude)
    mag_max = magnitude_range.top
    strain_range = colour_range(np.asarray(strain, np.float32)) if strain is not None else None
    rows = 2 + (strain is not None)
    figure = new_figure(1.1 * (n + 1), 1.25 * rows + 0.5)
    grid = figure.add_gridspec(rows, n + 1)
    f = view.factor
    for t in range(n):
        frame_no = int(view.source_frames[t]) if len(view.source_frames) == n else t
        colour = "red" if t == view.apex_pos else "green" if t == view.onset_pos else "black"
        ax = figure.add_subplot(grid[0, t], gid=f"{view.sample_id}|flow|{t}")
        _image_axes(ax, upscale(flow_to_rgb(flow[t], scale), f))
        ax.set_title(str(frame_no), fontsize=7, color=colour)
        _image_axes(
            figure.add_subplot(grid[1, t], gid=f"{view.sample_id}|magnitude|{t}"),
            upscale(heat(magnitude[t], mag_max), f),
        )
        if strain is not None:
            s = np.asarray(strain, np.float32)
            _image_axes(
                figure.add_subplot(grid[2, t], gid=f"{view.sample_id}|strain|{t}"),
                upscale(heat(s[t], strain_range.top, "viridis"), f),
            )
    _image_axes(
        figure.add_subplot(grid[0, n], gid="wheel"), colour_wheel(96), f"key: rim {scale:.2f} px"
    )
    figure.add_subplot(grid[1, n]).text(0, 0.5, f"|flow|\n0–{mag_max:.2f} px", fontsize=7)
    figure.axes[-1].axis("off")
    if strain is not None:
        figure.add_subplot(grid[2, n]).text(0, 0.5, f"strain\n0–{strain_range.top:.3f}", fontsize=7)
        figure.axes[-1].axis("off")
    ranges = [
        f"flow colour full at {flow_colours.describe('px')}",
        f"|flow| 0 to {magnitude_range.describe('px')}",
    ]
    if strain_range is not None:
        ranges.append(f"strain 0 to {strain_range.describe(digits=3)}")
    figure.suptitle(
        f"{view.sample_id}: flow from the onset (frame numbers; onset green, apex "
        f"red); one scale for the clip's frames\n" + "; ".join(ranges),
        fontsize=8,
    )
    figure.set_layout_engine("constrained")
    return figure


def _bar(
    ax,
    names: Sequence[str],
    stacks: dict[str, Sequence[float]],
    title: str,
    horizontal: bool = False,
) -> None:
    bottom = np.zeros(len(names))
    for label, values in stacks.items():
        values = np.asarray(values, dtype=float)
        if horizontal:
            ax.barh(names, values, left=bottom, label=label)
        else:
            ax.bar(names, values, bottom=bottom, label=label)
        bottom += values
    for i, total in enumerate(bottom):
        if horizontal:
            ax.text(total, i, f" {total:g}", va="center", fontsize=6)
        else:
            ax.text(i, total, f"{total:g}", ha="center", va="bottom", fontsize=6)
    ax.set_title(title, fontsize=9)
    ax.tick_params(labelsize=7)
    (ax.xaxis if horizontal else ax.yaxis).set_major_locator(MaxNLocator(integer=True))
    if not horizontal:
        for label in ax.get_xticklabels():
            label.set_rotation(45)
            label.set_ha("right")
    if len(stacks) > 1:  # beside the axes: stacked bars leave no free corner
        ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)


def counts_figure(table, class_names: Sequence[str], *, subjects: bool = True) -> Figure:
    """Samples per class (originals and augmented copies stacked) and, with ``subjects``,
    samples per subject stacked by class."""
    originals = (
        table["aug_parent"].astype(str) == ""
        if "aug_parent" in table
        else np.ones(len(table), bool)
    )
    # every class of the scheme, an empty one too: a class without samples is a finding
    present = list(class_names) + sorted(set(table["label_name"]) - set(class_names))
    stacks = {"clips": [int(((table["label_name"] == c) & originals).sum()) for c in present]}
    copies = [int(((table["label_name"] == c) & ~originals).sum()) for c in present]
    if any(copies):
        stacks["augmented copies"] = copies
    subject_names = sorted(table["subject"].unique()) if subjects else []
    figure = new_figure(
        max(4.0, 0.5 * len(present) + 2) + (max(4.0, 0.28 * len(subject_names)) if subjects else 0),
        3.0,
    )
    axes = figure.subplots(1, 2 if subjects else 1, squeeze=False)[0]
    _bar(axes[0], present, stacks, "samples per class")
    if subjects:
        clips = table[originals]
        per = {
            c: [
                int(((clips["subject"] == s) & (clips["label_name"] == c)).sum())
                for s in subject_names
            ]
            for c in present
            if (clips["label_name"] == c).any()
        }
        _bar(axes[1], [s.split("/")[-1] for s in subject_names], per, "clips per subject, by class")
    figure.set_layout_engine("constrained")
    return figure


def split_figure(
    name: str, split, table, class_names: Sequence[str], *, leaky: bool, note: str = ""
) -> Figure:
    """Test-fold sizes of a split, stacked by class; a leaky split says so in red."""
    folds = list(split.fold_names)
    present = [c for c in class_names if c in set(table["label_name"])]
    labels = table["label_name"].to_numpy()
    test = np.asarray(split.test_fold)
    stacks = {
        c: [int(((test == i) & (labels == c)).sum()) for i in range(len(folds))] for c in present
    }
    figure = new_figure(max(4.0, 0.35 * len(folds) + 2.5), 2.8)
    ax = figure.subplots()
    _bar(ax, [f.split("/")[-1] for f in folds], stacks, f"split {name}: test rows per fold")
    if leaky:
        ax.set_title(
            f"split {name}: test rows per fold — LEAKY" + (f" ({note})" if note else ""),
            fontsize=9,
            color="red",
        )
    figure.set_layout_engine("constrained")
    return figure


def confusion_figure(
    confusion: np.ndarray,
    class_names: Sequence[str],
    *,
    title: str = "pooled confusion",
    normalise: bool = False,
) -> Figure:
    """A confusion matrix (rows true, columns predicted), counts in the cells; ``normalise``
    colours by row share (recall) while still printing counts."""
    matrix = np.asarray(confusion, dtype=float)
    if (
        matrix.ndim != 2
        or matrix.shape[0] != matrix.shape[1]
        or matrix.shape[0] != len(class_names)
    ):
        raise InvalidArgumentError(
            f"a {len(class_names)}-class confusion matrix was expected, got shape {matrix.shape}"
        )
    rows = matrix.sum(axis=1, keepdims=True)
    shade = (
        np.divide(matrix, rows, out=np.zeros_like(matrix), where=rows > 0) if normalise else matrix
    )
    k = len(class_names)
    width = max(3.6, 1.2 + 0.55 * k)
    figure = new_figure(width, 1.4 + 0.5 * k)
    ax = figure.subplots()
    ax.imshow(shade, cmap="Blues", vmin=0, vmax=shade.max() or 1)
    for i in range(k):
        for j in range(k):
            dark = shade[i, j] > 0.6 * (shade.max() or 1)
            ax.text(
                j,
                i,
                f"{int(matrix[i, j])}",
                ha="center",
                va="center",
                fontsize=8,
                color="white" if dark else "black",
            )
    ax.set_xticks(range(k), class_names, rotation=45, ha="right", fontsize=7)
    ax.set_yticks(range(k), class_names, fontsize=7)
    ax.set_xlabel("predicted", fontsize=8)
    ax.set_ylabel("true", fontsize=8)
    ax.set_title(_wrap(title, width, 8), fontsize=8)
    figure.set_layout_engine("constrained")
    return figure


def fold_scores_figure(
    folds: Sequence[str],
    uf1: Sequence[float | None],
    uar: Sequence[float | None],
    title: str = "per-fold scores",
    chance: float | None = None,
) -> Figure:
    """UF1 and UAR per fold as grouped bars (a fold without a score: no bar); ``chance``: the
    UAR of guessing (1 / classes), drawn as a dashed line."""
    x = np.arange(len(folds))

    def as_float(values: Sequence[float | None]) -> np.ndarray:
        return np.array([np.nan if v is None else float(v) for v in values])

    width = max(5.0, 0.4 * len(folds) + 3)
    figure = new_figure(width, 3.0)
    ax = figure.subplots()
    ax.bar(x - 0.2, as_float(uf1), 0.4, label="UF1")
    ax.bar(x + 0.2, as_float(uar), 0.4, label="UAR")
    ax.set_xticks(x, [str(f).split("/")[-1] for f in folds], rotation=45, ha="right", fontsize=6)
    ax.set_ylim(0, 1.05)
    if chance is not None:
        ax.axhline(
            chance,
            color="black",
            ls="--",
            lw=1,
            gid="chance",
            label=f"chance UAR {chance:.2f} (1/{round(1 / chance)} classes)",
        )
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    ax.set_title(_wrap(title, width * 0.7, 8), fontsize=8)
    figure.set_layout_engine("constrained")
    return figure


def learning_curves_figure(
    curves: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
    title: str = "learning curves",
    *,
    kept: dict[str, int] | None = None,
    metric: str | None = None,
) -> Figure:
    """Per fold: training loss (left) and the validation metric (right) over epochs, each
    fold's kept epoch (``kept``: fold name -> epoch) marked with a dot on both; the metric's
    axis spans 0-1 (a score's whole range, not the few hundredths the curves move in). With no
    validation value at all the right panel says that the run had no validation part and kept
    the marked epoch.

    curves: fold name -> (epochs, loss, validation with NaN where none)."""
    kept = kept or {}
    figure = new_figure(9.0, 3.2)
    loss_ax, val_ax = figure.subplots(1, 2)
    validated = any(np.isfinite(v).any() for _, _, v in curves.values())
    for name, (epochs, loss, validation) in curves.items():
        short = str(name).split("/")[-1]
        (line,) = loss_ax.plot(epochs, loss, lw=1, label=short)
        best = kept.get(name)
        at = np.flatnonzero(epochs == best) if best is not None else []
        if len(at):
            loss_ax.plot(
                epochs[at[0]], loss[at[0]], "o", ms=5, color=line.get_color(), gid=f"kept|{short}"
            )
        if np.isfinite(validation).any():
            val_ax.plot(epochs, validation, lw=1, color=line.get_color(), label=short)
            if len(at) and np.isfinite(validation[at[0]]):
                val_ax.plot(
                    epochs[at[0]],
                    validation[at[0]],
                    "o",
                    ms=5,
                    color=line.get_color(),
                    gid=f"kept|{short}",
                )
    loss_ax.set_title("training loss (dot: kept epoch)", fontsize=9)
    if validated:
        val_ax.set_title(f"validation {metric or 'metric'} (dot: kept epoch)", fontsize=9)
        val_ax.set_ylim(0, 1.02)
    else:
        val_ax.set_title("validation", fontsize=9)
        val_ax.text(
            0.5,
            0.5,
            "no validation part:\nthe run kept the last epoch (dots)",
            ha="center",
            va="center",
            fontsize=9,
            transform=val_ax.transAxes,
            gid="no-validation",
        )
    for ax in (loss_ax, val_ax) if validated else (loss_ax,):
        ax.set_xlabel("epoch", fontsize=7)
        ax.tick_params(labelsize=6)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if not validated:
        val_ax.set_xticks([])
        val_ax.set_yticks([])
    if 0 < len(curves) <= 12:
        loss_ax.legend(fontsize=5, ncol=2)
    figure.suptitle(_wrap(title, 9.0, 9), fontsize=9)
    figure.set_layout_engine("constrained")
    return figure


def _wrap(title: str, width_in: float, fontsize: float) -> str:
    """``title`` broken into lines that fit ``width_in`` inches at ``fontsize`` points (about
    0.55 em per character), keeping its own line breaks: a run's name must not be clipped."""
    import textwrap

    chars = max(12, int(width_in * 72 / (0.55 * fontsize)))
    return "\n".join(
        textwrap.fill(line, chars, break_on_hyphens=True) or line for line in title.split("\n")
    )


def onset_apex_colours() -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """The frame colours of the strips (onset, apex), for legends."""
    return ONSET_RGB, APEX_RGB
