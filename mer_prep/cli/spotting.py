"""``mer-prep score-spots``: MEGC spotting scores (and STRS) of a prediction CSV against a truth
CSV (``mer_prep.evaluation.spotting``, ``.strs``, ``.spotting_csv``)."""

from __future__ import annotations

import json
import math

import click

from mer_prep.cli import main
from mer_prep.cli.options import choice_option


def _video_list(path: str) -> list[str]:
    from mer_prep.evaluation.spotting_csv import SpotCsvError

    try:
        with open(path, encoding="utf-8-sig") as handle:
            return [line.strip() for line in handle if line.strip()]
    except OSError as error:
        raise SpotCsvError(f"cannot be read ({error.strerror or error})", file=path) from None


def _check_prediction_videos(predictions, known: set[str]) -> None:
    from mer_prep.evaluation.spotting_csv import SpotCsvError

    for interval, line in zip(predictions.intervals, predictions.lines, strict=True):
        if interval.video_key not in known:
            raise SpotCsvError(
                f"video {interval.video_key!r} is not in the truth file (nor in "
                "--videos): name every scored video there",
                file=str(predictions.path),
                row=line,
            )


def _counts_table(score) -> list[str]:
    from mer_prep.evaluation.spotting import KINDS

    rows = [f"  {'type':8}{'TP':>7}{'FP':>8}{'FN':>7}{'precision':>11}{'recall':>8}{'F1':>8}"]
    for name, c in [*((k, score.by_kind[k]) for k in KINDS), ("overall", score.overall)]:
        rows.append(
            f"  {name:8}{c.tp:>7}{c.fp:>8}{c.fn:>7}{c.precision:>11.4f}{c.recall:>8.4f}{c.f1:>8.4f}"
        )
    return rows


def _num(x: float) -> str:
    return "NaN" if math.isnan(x) else f"{x:.4f}"


@main.command("score-spots")
@click.argument("predictions_csv", metavar="PRED.csv")
@click.option(
    "--truth",
    "truth_csv",
    required=True,
    metavar="TRUTH.csv",
    help="Annotated intervals; a row with only the video names a video without "
    "expressions (docs/spotting.md).",
)
@click.option(
    "--videos",
    "videos_file",
    default=None,
    metavar="FILE",
    help="More scored videos, one id per line (subject/video with subjects).",
)
@choice_option(
    "--compat",
    ["megc2020", "strs-metric"],
    help="Reproduce a reference scorer, defects included, and name each defect that "
    "changed a number: megc2020 (spotting counts) or strs-metric (STRS).",
)
@choice_option(
    "--lengths",
    ["casme-sq", "samm-lv"],
    help="With --compat megc2020: the baseline's length windows of this dataset.",
)
@click.option(
    "--strs",
    "with_strs",
    is_flag=True,
    help="Also STRS (needs emotions); implied by --compat strs-metric.",
)
@click.option(
    "--iou", "threshold", type=float, default=0.5, show_default=True, help="IoU a match needs."
)
@choice_option("--default-type", ["me", "mae"], help="Type of rows in files without a type column.")
@choice_option("--format", ["text", "json"], default="text", dest="fmt")
def score_spots(
    predictions_csv,
    truth_csv,
    videos_file,
    compat,
    lengths,
    with_strs,
    threshold,
    default_type,
    fmt,
):
    """Score PRED.csv against --truth: TP/FP/FN, precision, recall and F1 for macro, micro and
    overall, pooled over every video (IoU >= 0.5 on inclusive frames, one-to-one)."""
    from mer_prep.errors import InvalidArgumentError
    from mer_prep.evaluation.spotting import score_spotting
    from mer_prep.evaluation.spotting_csv import read_spot_csv
    from mer_prep.evaluation.spotting_megc2020 import MEGC2020_LENGTH_WINDOWS
    from mer_prep.evaluation.strs import score_strs

    if lengths and compat != "megc2020":
        raise InvalidArgumentError(
            "--lengths drops predictions by length, as the MEGC 2020 "
            "baseline does: it needs --compat megc2020"
        )
    truth = read_spot_csv(truth_csv, truth=True, default_kind=default_type)
    predictions = read_spot_csv(predictions_csv, truth=False, default_kind=default_type)
    videos = list(truth.videos) + (_video_list(videos_file) if videos_file else [])
    _check_prediction_videos(predictions, set(videos))
    spotting = score_spotting(
        predictions.intervals,
        truth.intervals,
        videos,
        threshold=threshold,
        compat="megc2020" if compat == "megc2020" else None,
        length_windows=MEGC2020_LENGTH_WINDOWS[lengths] if lengths else None,
    )
    strs = None
    if with_strs or compat == "strs-metric":
        strs = score_strs(
            predictions.intervals,
            truth.intervals,
            videos,
            threshold=threshold,
            compat=compat == "strs-metric",
        )
    source = {
        "predictions": str(predictions.path),
        "truth": str(truth.path),
        "videos_file": videos_file,
    }
    if fmt == "json":
        out = {"source": source, "spotting": spotting.as_dict()}
        if strs is not None:
            out["strs"] = strs.as_dict()
        click.echo(json.dumps(out, indent=2))
        return
    mode = (
        "MEGC 2020 baseline scorer (compatibility, defects reproduced)"
        if spotting.mode == "megc2020"
        else "one-to-one matching"
    )
    click.echo(
        f"spotting of {predictions.path} against {truth.path}: {spotting.n_videos} videos "
        f"({spotting.n_videos_without_truth} without expressions), IoU >= {threshold:g}, "
        f"{mode}"
    )
    for line in _counts_table(spotting):
        click.echo(line)
    for note in spotting.notes:
        click.echo(f"  note: {note}")
    for defect in spotting.defects:
        click.echo(f"  defect {defect.line()}")
    if strs is not None:
        how = (
            "the STRS-Metric reference's behaviour (compatibility)"
            if strs.mode != "correct"
            else "one-to-one spotting, analysis over its true positives"
        )
        s = strs.spotting
        click.echo(
            f"STRS {_num(strs.strs)} = F1 spotting {s.f1:.4f} (TP {s.tp}, FP {s.fp}, "
            f"FN {s.fn}) x F1 analysis {_num(strs.f1_analysis)} ({how}; "
            f"{strs.n_pairs} spotted pairs analysed, "
            f"{len(strs.per_class)} emotions; UF1 {strs.uf1:.4f}, UAR {strs.uar:.4f})"
        )
        for note in strs.notes:
            click.echo(f"  note: {note}")
        for defect in strs.defects:
            click.echo(f"  defect {defect.line()}")
