"""The MEGC 2020 baseline's spotting scorer, reproduced with its defects, each named.

The MEGC 2020 spotting baseline (MDMD) scores its predictions with a script whose behaviour
differs from the one-to-one scorer of ``spotting`` in four ways. Its published counts
(CAS(ME)^2 and SAMM-LV) can only be reproduced with all four, so this mode keeps them and
reports, for each one that changed a count, the counts with and without it:

``length_filter``
    Before scoring, predictions outside a length window (frames, both ends included) are
    dropped: they are neither TP nor FP. The windows are per dataset and type
    (``MEGC2020_LENGTH_WINDOWS``); they come from the expressions' known lengths, i.e. from the
    test annotations.
``one_frame_never_matches``
    Its IoU is 0 whenever an interval has ``offset <= onset``: a one-frame interval never
    matches, not even itself.
``disjoint_overlap_one_frame``
    Its intersection is ``max(0, min(offsets) - max(onsets)) + 1``: two disjoint intervals share
    one frame. (At the MEGC threshold 0.5 this never decides a match: two intervals of at
    least two frames sharing one frame have IoU <= 1/3.)
``truths_hit_are_tps``
    TP is the number of truths hit by at least one prediction, and FP the number of
    predictions minus TP. A prediction that overlaps two truths therefore counts twice (FP can
    even become negative); several predictions on one truth count once, the others as FP.

The defects are removed one at a time in the order above; each step's change is attributed
to the defect removed, so the reference counts are the correct counts plus the listed changes.
What the script also does but a CSV cannot express: a video whose prediction file is missing
is skipped with a warning (its truths are not counted as FN); here every named video is scored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace

import numpy as np

from mer_prep.evaluation.spotting_intervals import (
    KINDS,
    DefectEffect,
    Interval,
    QuantityChange,
    SpotCounts,
    SpotMatch,
    SpotPrediction,
    SpottingScore,
    SpotTruth,
    group_by_video_and_kind,
    iou_matrix,
    match_one_to_one,
)

LengthWindows = Mapping[str, tuple[int, int | None]]

MEGC2020_LENGTH_WINDOWS: dict[str, dict[str, tuple[int, int | None]]] = {
    # {dataset: {kind: (shortest, longest or None)}}, frames, as the baseline's evaluation has them
    "casme-sq": {"me": (7, 16), "mae": (17, None)},
    "samm-lv": {"me": (47, 105), "mae": (106, None)},
}


@dataclass(frozen=True)
class Megc2020Rules:
    """Which of the baseline scorer's defects are in force (all, by default)."""

    length_filter: bool = True
    one_frame_never_matches: bool = True
    disjoint_overlap_one_frame: bool = True
    truths_hit_are_tps: bool = True


DEFECT_DESCRIPTIONS = {
    "length_filter": "predictions outside the length window are dropped before scoring",
    "one_frame_never_matches": "an interval with offset <= onset has IoU 0 with everything",
    "disjoint_overlap_one_frame": "disjoint intervals are given one shared frame",
    "truths_hit_are_tps": "TP = truths hit by any prediction, FP = predictions - TP (one "
    "prediction over several truths counts several times)",
}


def megc2020_iou_matrix(
    predictions: Sequence[Interval],
    truths: Sequence[Interval],
    rules: Megc2020Rules = Megc2020Rules(),
) -> np.ndarray:
    """(n_predictions, n_truths) float64 IoU as the baseline computes it under ``rules``."""
    if not (rules.one_frame_never_matches or rules.disjoint_overlap_one_frame):
        return iou_matrix(predictions, truths)
    ps = np.array([[p.onset, p.offset] for p in predictions], dtype=np.int64).reshape(-1, 2)
    ts = np.array([[t.onset, t.offset] for t in truths], dtype=np.int64).reshape(-1, 2)
    span = np.minimum(ps[:, None, 1], ts[None, :, 1]) - np.maximum(ps[:, None, 0], ts[None, :, 0])
    inter = np.maximum(span, 0) + 1 if rules.disjoint_overlap_one_frame else np.maximum(span + 1, 0)
    union = (ps[:, 1] - ps[:, 0] + 1)[:, None] + (ts[:, 1] - ts[:, 0] + 1)[None, :] - inter
    value = np.divide(inter, union, out=np.zeros(inter.shape), where=union > 0)
    if rules.one_frame_never_matches:
        degenerate = (ps[:, 1] <= ps[:, 0])[:, None] | (ts[:, 1] <= ts[:, 0])[None, :]
        value[degenerate | (union <= 0)] = 0.0
    return value


def _in_window(length: int, window: tuple[int, int | None] | None) -> bool:
    if window is None:
        return True
    shortest, longest = window
    return length >= shortest and (longest is None or length <= longest)


def _count(
    predictions: Sequence[SpotPrediction],
    truths: Sequence[SpotTruth],
    videos: Sequence[str],
    threshold: float,
    windows: LengthWindows | None,
    rules: Megc2020Rules,
) -> tuple[dict[str, SpotCounts], list[SpotMatch], int]:
    """Counts per type under ``rules``, the TP pairs, and how many predictions the length
    filter dropped."""
    preds = group_by_video_and_kind(predictions)
    truth_groups = group_by_video_and_kind(truths)
    counts = {kind: SpotCounts(0, 0, 0) for kind in KINDS}
    matches: list[SpotMatch] = []
    dropped = 0
    for video in videos:
        for kind in KINDS:
            p = preds.get((video, kind), [])
            t = truth_groups.get((video, kind), [])
            if rules.length_filter and windows:
                kept = [x for x in p if _in_window(x.length, windows.get(kind))]
                dropped += len(p) - len(kept)
                p = kept
            if rules.truths_hit_are_tps:
                overlap = (
                    megc2020_iou_matrix(p, t, rules) if p and t else np.zeros((len(p), len(t)))
                )
                hits = overlap >= threshold
                hit_truths = [j for j in range(len(t)) if hits[:, j].any()]
                for j in hit_truths:
                    i = int(np.argmax(hits[:, j]))  # the first prediction (row order) on it
                    matches.append(SpotMatch(p[i], t[j], float(overlap[i, j])))
                tp = len(hit_truths)
            else:
                pairs = match_one_to_one(
                    p, t, threshold, lambda a, b: megc2020_iou_matrix(a, b, rules)
                )
                matches.extend(SpotMatch(p[i], t[j], value) for i, j, value in pairs)
                tp = len(pairs)
            counts[kind] = counts[kind] + SpotCounts(tp, len(p) - tp, len(t) - tp)
    return counts, matches, dropped


def _changes(
    with_defect: dict[str, SpotCounts], without: dict[str, SpotCounts]
) -> tuple[QuantityChange, ...]:
    out = []
    for kind in KINDS:
        for name in ("tp", "fp", "fn"):
            a, b = getattr(with_defect[kind], name), getattr(without[kind], name)
            if a != b:
                out.append(QuantityChange(f"{kind} {name.upper()}", a, b))
    return tuple(out)


def score_megc2020(
    predictions: Sequence[SpotPrediction],
    truths: Sequence[SpotTruth],
    videos: Sequence[str],
    *,
    threshold: float = 0.5,
    length_windows: LengthWindows | None = None,
) -> SpottingScore:
    """The baseline's counts over ``videos`` (checked ``video_key``s), with the defects that
    changed them (module docstring). Call it through ``spotting.score_spotting``."""
    rules = Megc2020Rules()
    counts, matches, dropped = _count(predictions, truths, videos, threshold, length_windows, rules)
    defects = []
    state, state_counts = rules, counts
    for defect in (f.name for f in fields(Megc2020Rules)):
        lighter = replace(state, **{defect: False})
        lighter_counts, _, _ = _count(
            predictions, truths, videos, threshold, length_windows, lighter
        )
        changes = _changes(state_counts, lighter_counts)
        if changes:
            defects.append(DefectEffect(defect, DEFECT_DESCRIPTIONS[defect], changes))
        state, state_counts = lighter, lighter_counts
    if length_windows:
        windows = ", ".join(
            f"{kind} {lo}..{hi if hi is not None else ''} frames"
            for kind, (lo, hi) in sorted(length_windows.items())
        )
        notes = (f"length windows {windows}: {dropped} predictions dropped before scoring",)
    else:
        notes = (
            "no length windows given: the baseline drops predictions by length "
            f"({', '.join(MEGC2020_LENGTH_WINDOWS)} windows)",
        )
    with_truth = {t.video_key for t in truths}
    return SpottingScore(
        by_kind=counts,
        n_videos=len(videos),
        n_videos_without_truth=sum(v not in with_truth for v in videos),
        threshold=threshold,
        mode="megc2020",
        matches=tuple(matches),
        defects=tuple(defects),
        notes=notes,
    )
