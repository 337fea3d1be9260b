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
spotted intervals at their apexes, from the video's frames (``get_frame``).
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence

import numpy as np
from markupsafe import Markup
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from mer_prep.evaluation.spotting import score_spotting
from mer_prep.evaluation.spotting_intervals import SpotPrediction, SpotTruth, apex_frames
from mer_prep.plot.figures import figure_png, new_figure

HIT, FALSE_POSITIVE, MISSED = "#2e9d4b", "#d62728", "#ff8c00"
_BAND = {"me": 0, "mae": 1}


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


def spot_run_html(record, *, timelines: int = 4) -> str:
    """One spotting run: its scores, each fold's tuned values, and ``timelines`` timelines."""
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
    pictures = "".join(
        f"<div>{_img(record_timeline(record, key), key)}</div>"
        for key in _videos_to_draw(record, timelines)
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


def spot_runs_html(records: Sequence, *, timelines: int = 4) -> Markup:
    """The spotting runs of a store (newest first), each with its timelines."""
    if not records:
        return Markup("<p>No spotting runs are recorded on this store.</p>")
    return Markup("".join(spot_run_html(r, timelines=timelines) for r in reversed(records)))


def spot_page(
    records: Sequence,
    title: str,
    *,
    timelines: int = 4,
    videos: Sequence[Sequence[object]] = (),
    about: str = "",
) -> str:
    """A self-contained HTML page of ``records`` (a store that holds spotting runs and no clip
    features); ``videos``: rows of a long-video store's table (video, frames, fps, pair
    distances, MEs, MaEs, face detector, status) shown first, under ``about`` (one line of text)."""
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
        f"{spot_runs_html(records, timelines=timelines)}</body></html>"
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
    figure = new_figure(thumb_in * n, thumb_in + 0.5)
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
        figure.suptitle(title, fontsize=8)
    return figure


def spot_run_markdown(record, *, timelines: int = 3, dpi: int = 60) -> str:
    """Markdown of one spotting run for a Prefect artifact: the pooled scores, each fold's
    tuned values and ``timelines`` timelines as embedded PNGs (``artifact.markdown_image``)."""
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
    for key in _videos_to_draw(record, timelines):
        png = figure_png(record_timeline(record, key), dpi=dpi, colours=128)
        out += [markdown_image(png, f"timeline {key}"), ""]
    return "\n".join(out)
