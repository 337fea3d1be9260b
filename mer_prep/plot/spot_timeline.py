"""Looking at spotting runs: one timeline per video (the score curve, its threshold, the true
and the predicted intervals, hits and misses coloured), and the HTML of a store's spotting runs
(``mer-prep show``; a page of its own for a store holding spotting runs only).

    figure = timeline_figure(frames, curve, threshold, truths, predictions, title="s01/v1")
    html = spot_runs_html(list_spot_runs(store))        # Markup: a table and timelines per run

A record here is anything shaped like ``mer_prep.spotting.records.SpotRunRecord`` (``attrs``,
``run_id``, ``method``, ``leak_label``, ``video_keys``, ``curve(key)``, ``predictions()``,
``truths()``): this layer does not import the spotters. Hits are decided by the project's
evaluator (``score_spotting``: one-to-one, IoU >= 0.5, same kind).

Colours: a predicted interval that matched a truth is green, one that did not (FP) red; a true
interval that was matched is drawn green, a missed one (FN) orange; MEs sit on the lower band,
MaEs on the upper band of each row. :func:`apex_strip_figure` is the contact strip of a video's
spotted intervals at their apexes, from the video's frames (``get_frame``); with a ``get_faces``
(``GetFaces``: a long-video store's aligned faces, ``mer_prep.store.long_reader.stored_faces``)
the pages and the artifact draw one under each timeline with predictions, or say in one line
why the faces cannot be read.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Callable, Sequence

import numpy as np
from markupsafe import Markup
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from mer_prep.errors import MerPrepError
from mer_prep.evaluation.spotting import score_spotting
from mer_prep.evaluation.spotting_intervals import SpotPrediction, SpotTruth, apex_frames
from mer_prep.plot.figures import figure_png, new_figure

HIT, FALSE_POSITIVE, MISSED = "#2e9d4b", "#d62728", "#ff8c00"
_BAND = {"me": 0, "mae": 1}

#: a video's faces: (video key, the dataset's frame numbers) -> (n, H, W) or (n, H, W, 3) images
#: in that order; raises ``MerPrepError`` (one line) when they cannot be read
GetFaces = Callable[[str, Sequence[int]], np.ndarray]


def hits(
    truths: Sequence[SpotTruth], predictions: Sequence[SpotPrediction], video_key: str
) -> tuple[set[int], set[int]]:
    """(indices of matched predictions, indices of matched truths) of one video."""
    score = score_spotting(list(predictions), list(truths), [video_key])
    matched_p = {i for i, p in enumerate(predictions) for m in score.matches if m.prediction is p}
    matched_t = {j for j, t in enumerate(truths) for m in score.matches if m.truth is t}
    return matched_p, matched_t


def timeline_figure(
    frames: np.ndarray,
    curve: np.ndarray,
    threshold: float,
    truths: Sequence[SpotTruth],
    predictions: Sequence[SpotPrediction],
    *,
    title: str = "",
    width: float = 9.0,
) -> Figure:
    """The timeline of one video: ``curve`` over ``frames`` with ``threshold``; below it one row
    of true and one of predicted intervals (ME band low, MaE band high), coloured by hit."""
    video_keys = {t.video_key for t in truths} | {p.video_key for p in predictions}
    key = next(iter(video_keys)) if len(video_keys) == 1 else ""
    matched_p, matched_t = hits(truths, predictions, key) if key else (set(), set())
    figure = new_figure(width, 2.8)
    top, bottom = figure.subplots(
        2, 1, sharex=True, gridspec_kw={"height_ratios": [2.2, 1.0], "hspace": 0.08}
    )
    top.plot(frames, curve, color="#333333", linewidth=0.8, label="score")
    top.axhline(threshold, color="#1f77b4", linestyle="--", linewidth=0.8, label="threshold")
    for j, t in enumerate(truths):
        top.axvspan(t.onset, t.offset + 1, color=HIT if j in matched_t else MISSED, alpha=0.15)
    top.set_ylabel("motion score", fontsize=8)
    top.tick_params(labelsize=7)
    # above the axes, right of the title: inside, it would hide the curve's peaks
    top.legend(fontsize=7, loc="lower right", bbox_to_anchor=(1.0, 1.0), ncols=2, frameon=False)
    if title:
        top.set_title(title, fontsize=9, loc="left")
    for row, (items, matched, missed_colour) in enumerate(
        ((truths, matched_t, MISSED), (predictions, matched_p, FALSE_POSITIVE))
    ):
        for i, item in enumerate(items):
            y = row * 2 + _BAND[item.kind] * 0.9
            colour = HIT if i in matched else missed_colour
            bottom.add_patch(
                Rectangle((item.onset, y + 0.05), item.length, 0.8, color=colour, linewidth=0)
            )
    bottom.set_ylim(0, 4)
    bottom.set_yticks([0.45, 1.35, 2.45, 3.35])
    bottom.set_yticklabels(["truth ME", "truth MaE", "pred ME", "pred MaE"], fontsize=7)
    bottom.set_xlabel("frame", fontsize=8)
    bottom.tick_params(labelsize=7)
    if len(frames):
        bottom.set_xlim(float(frames[0]), float(frames[-1]) + 1)
    figure.subplots_adjust(left=0.1, right=0.98, top=0.9, bottom=0.16)
    return figure


def record_timeline(record, video_key: str) -> Figure:
    """:func:`timeline_figure` of one video of a spotting run record."""
    frames, curve, threshold = record.curve(video_key)
    truths = [t for t in record.truths() if t.video_key == video_key]
    predictions = [p for p in record.predictions() if p.video_key == video_key]
    fold = next((f for f in record.attrs["folds"] if video_key in f["videos"]), None)
    tuned = ""
    if fold is not None:
        p = fold["params"]
        tuned = f"  (fold {fold['index']}: k {p['k_me']}/{p['k_mae']}, p {p['p']})"
    leak = f" {record.leak_label}" if record.leaky else ""
    return timeline_figure(
        frames,
        curve,
        threshold,
        truths,
        predictions,
        title=f"{record.method}{leak}: {video_key}{tuned}",
    )


def _img(figure: Figure, alt: str) -> str:
    data = base64.b64encode(figure_png(figure)).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _f(value) -> str:
    return "-" if value is None else f"{float(value):.3f}"


def _videos_to_draw(record, limit: int) -> list[str]:
    """The videos with the most true and predicted intervals first (the busiest), ``limit``."""
    count: dict[str, int] = dict.fromkeys(record.video_keys, 0)
    for item in [*record.truths(), *record.predictions()]:
        count[item.video_key] = count.get(item.video_key, 0) + 1
    return sorted(count, key=lambda k: (-count[k], k))[:limit]


def record_strip(record, video_key: str, get_faces: GetFaces) -> Figure | None:
    """:func:`apex_strip_figure` of one video of a spotting run, its faces read once through
    ``get_faces`` at the apexes; None when the run predicted nothing in that video. Raises what
    ``get_faces`` raises."""
    frames, curve, _ = record.curve(video_key)
    truths = [t for t in record.truths() if t.video_key == video_key]
    predictions = [p for p in record.predictions() if p.video_key == video_key]
    if not predictions:
        return None
    apexes = apex_frames(frames, curve, predictions)
    faces = dict(zip(apexes, np.asarray(get_faces(video_key, apexes)), strict=True))
    return apex_strip_figure(
        faces.__getitem__,
        frames,
        curve,
        truths,
        predictions,
        title=f"{video_key}: aligned face at each spotted apex",
    )


def _strips(record, keys: Sequence[str], get_faces: GetFaces | None) -> dict[str, Figure | str]:
    """Per video of ``keys`` its apex strip, or the one line saying why there is none (each
    reason once per run: a version without faces would say it for every video); videos
    without predictions are left out."""
    if get_faces is None:
        return {}
    out: dict[str, Figure | str] = {}
    said: set[str] = set()
    for key in keys:
        try:
            strip = record_strip(record, key, get_faces)
        except MerPrepError as error:
            line = str(error).splitlines()[0] if str(error) else type(error).__name__
            if line not in said:
                said.add(line)
                out[key] = f"no apex strips: {line}"
            continue
        if strip is not None:
            out[key] = strip
    return out


def _strip_html(strip: Figure | str | None, key: str) -> str:
    if strip is None:
        return ""
    if isinstance(strip, str):
        return f"<p>{html.escape(strip)}</p>"
    return f"<div>{_img(strip, f'apex strip {key}')}</div>"


def spot_run_html(record, *, timelines: int = 4, get_faces: GetFaces | None = None) -> str:
    """One spotting run: its scores, each fold's tuned values, and ``timelines`` timelines,
    each with its apex strip under it when ``get_faces`` gives the video's faces."""
    a = record.attrs
    m = a["metrics"]
    leak = record.leak_label
    rows = "".join(
        f"<tr><td>{kind}</td><td>{m[kind]['tp']}</td><td>{m[kind]['fp']}</td>"
        f"<td>{m[kind]['fn']}</td><td>{_f(m[kind]['precision'])}</td>"
        f"<td>{_f(m[kind]['recall'])}</td><td>{_f(m[kind]['f1'])}</td></tr>"
        for kind in ("me", "mae", "overall")
    )
    folds = "".join(
        f"<tr><td>{f['index']}</td><td>{html.escape(f['test_subject'])}</td>"
        f"<td>{f['params']['k_me']}/{f['params']['k_mae']}</td><td>{f['params']['p']}</td>"
        f"<td>{f['params']['smooth']}</td><td>{f['params']['rel']}</td>"
        f"<td>{tuple(f['params']['me_window'])} / {tuple(f['params']['mae_window'])}</td>"
        f"<td>{_f(f['tune_f1'])}</td><td>{_f(f['metrics']['overall']['f1'])}</td></tr>"
        for f in a["folds"]
    )
    keys = _videos_to_draw(record, timelines)
    strips = _strips(record, keys, get_faces)
    pictures = "".join(
        f"<div>{_img(record_timeline(record, key), key)}{_strip_html(strips.get(key), key)}</div>"
        for key in keys
    )
    leak_html = f' <strong style="color:#d62728">{html.escape(leak)}</strong>' if leak else ""
    return (
        f"<h3>{html.escape(record.run_id)}: {html.escape(record.method)}, "
        f"{html.escape(a['split'])}, tuned on {html.escape(a['tune_on'])}{leak_html}</h3>"
        f"<p>{a['n_videos']} videos, {a['n_truths']} true and {a['n_predictions']} predicted "
        f"intervals; one-to-one, IoU &gt;= 0.5, every video scored.</p>"
        f"<table><tr><th>kind</th><th>TP</th><th>FP</th><th>FN</th><th>P</th><th>R</th>"
        f"<th>F1</th></tr>{rows}</table>"
        f"<p>Values tuned per fold (overall F1 on the tuning subjects, then on the test "
        f"subject):</p><table><tr><th>fold</th><th>test subject</th><th>k ME/MaE</th>"
        f"<th>p</th><th>smooth</th><th>rel</th><th>windows ME / MaE</th><th>tune F1</th>"
        f"<th>test F1</th></tr>{folds}</table>{pictures}"
    )


def spot_runs_html(
    records: Sequence,
    *,
    timelines: int = 4,
    faces: Callable[[object], GetFaces | None] | None = None,
) -> Markup:
    """The spotting runs of a store (newest first), each with its timelines; ``faces(record)``:
    the faces that run's apex strips are drawn from (None: no strips)."""
    if not records:
        return Markup("<p>No spotting runs are recorded on this store.</p>")
    return Markup(
        "".join(
            spot_run_html(r, timelines=timelines, get_faces=faces(r) if faces else None)
            for r in reversed(records)
        )
    )


def spot_page(
    records: Sequence,
    title: str,
    *,
    timelines: int = 4,
    videos: Sequence[Sequence[object]] = (),
    about: str = "",
    faces: Callable[[object], GetFaces | None] | None = None,
) -> str:
    """A self-contained HTML page of ``records`` (a store that holds spotting runs and no clip
    features); ``videos``: rows of a long-video store's table (video, frames, fps, pair
    distances, MEs, MaEs, face detector, status) shown first, under ``about`` (one line of
    text); ``faces``: per run, the faces of its apex strips (``spot_runs_html``)."""
    table = ""
    if videos:
        head = ("video", "frames", "fps", "k", "ME", "MaE", "face", "status")
        table = (
            f"<h2>Videos</h2><p>{html.escape(about)}</p><table><tr>"
            + "".join(f"<th>{h}</th>" for h in head)
            + "</tr>"
            + "".join(
                "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>"
                for row in videos
            )
            + "</table>"
        )
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>body{{font-family:sans-serif}}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px}</style>"
        f"</head><body><h1>{html.escape(title)}</h1>{table}<h2>Spotting runs</h2>"
        f"{spot_runs_html(records, timelines=timelines, faces=faces)}</body></html>"
    )


def apex_strip_figure(
    get_frame,
    frames: np.ndarray,
    curve: np.ndarray,
    truths: Sequence[SpotTruth],
    predictions: Sequence[SpotPrediction],
    *,
    title: str = "",
    thumb_in: float = 1.3,
) -> Figure:
    """A contact strip of one video: the frame at each spotted interval's apex
    (``get_frame(frame_number)`` -> (H, W) or (H, W, 3) image), titled with its kind, frames and
    whether it matched a truth (green) or not (red)."""
    video_keys = {t.video_key for t in truths} | {p.video_key for p in predictions}
    key = next(iter(video_keys)) if len(video_keys) == 1 else ""
    matched, _ = hits(truths, predictions, key) if key else (set(), set())
    n = max(1, len(predictions))
    # room above the thumbnails for their two-line titles and the figure's title, and wide
    # enough for that title (about 0.065 in a character at 8 pt) over one or two thumbnails
    head = 0.45 + (0.25 if title else 0.0)
    width = max(thumb_in * n, 0.065 * len(title) + 0.2)
    figure = new_figure(width, thumb_in + head + 0.05)
    figure.subplots_adjust(left=0.01, right=0.99, bottom=0.05 / (thumb_in + head + 0.05))
    figure.subplots_adjust(top=1 - head / (thumb_in + head + 0.05), wspace=0.05)
    axes = figure.subplots(1, n, squeeze=False)[0]
    for ax in axes:
        ax.axis("off")
    for i, (p, apex) in enumerate(
        zip(predictions, apex_frames(frames, curve, predictions), strict=True)
    ):
        image = np.asarray(get_frame(apex))
        axes[i].imshow(image, cmap="gray" if image.ndim == 2 else None)
        colour = HIT if i in matched else FALSE_POSITIVE
        axes[i].set_title(f"{p.kind} {p.onset}-{p.offset}\napex {apex}", fontsize=7, color=colour)
    if title:
        figure.suptitle(title, fontsize=8, y=1 - 0.04 / (thumb_in + head + 0.05), va="top")
    return figure


def spot_run_markdown(
    record, *, timelines: int = 3, dpi: int = 60, get_faces: GetFaces | None = None
) -> str:
    """Markdown of one spotting run for a Prefect artifact: the pooled scores, each fold's
    tuned values and ``timelines`` timelines as embedded PNGs (``artifact.markdown_image``),
    each followed by its apex strip when ``get_faces`` gives the video's faces (or one line
    saying why they cannot be read)."""
    from mer_prep.plot.artifact import markdown_image

    a = record.attrs
    m = a["metrics"]
    leak = f" **{record.leak_label}**" if record.leaky else ""
    out = [
        f"# spotting run {record.run_id}: {record.method}, {a['split']}, tuned on "
        f"{a['tune_on']}{leak}",
        "",
        f"{a['n_videos']} videos, {a['n_truths']} true and {a['n_predictions']} predicted "
        "intervals; one-to-one, IoU >= 0.5, every video scored.",
        "",
        "| kind | TP | FP | FN | P | R | F1 |",
        "|---|---|---|---|---|---|---|",
        *(
            f"| {k} | {m[k]['tp']} | {m[k]['fp']} | {m[k]['fn']} | {_f(m[k]['precision'])} | "
            f"{_f(m[k]['recall'])} | {_f(m[k]['f1'])} |"
            for k in ("me", "mae", "overall")
        ),
        "",
        "| fold | test subject | k ME/MaE | p | smooth | rel | windows ME / MaE | tune F1 "
        "| test F1 |",
        "|---|---|---|---|---|---|---|---|---|",
        *(
            f"| {f['index']} | {f['test_subject']} | {f['params']['k_me']}/"
            f"{f['params']['k_mae']} | {f['params']['p']} | {f['params']['smooth']} | "
            f"{f['params']['rel']} | {tuple(f['params']['me_window'])} / "
            f"{tuple(f['params']['mae_window'])} | {_f(f['tune_f1'])} | "
            f"{_f(f['metrics']['overall']['f1'])} |"
            for f in a["folds"]
        ),
        "",
    ]
    keys = _videos_to_draw(record, timelines)
    strips = _strips(record, keys, get_faces)
    for key in keys:
        png = figure_png(record_timeline(record, key), dpi=dpi, colours=128)
        out += [markdown_image(png, f"timeline {key}"), ""]
        strip = strips.get(key)
        if isinstance(strip, str):
            out += [strip, ""]
        elif strip is not None:
            png = figure_png(strip, dpi=dpi, colours=128)
            out += [markdown_image(png, f"apex strip {key}"), ""]
    return "\n".join(out)
