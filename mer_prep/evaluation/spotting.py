"""MEGC spotting scores: intervals in long videos matched to the annotated ones by IoU.

An interval is a pair of **inclusive** frame numbers ``onset <= offset`` (a one-frame interval
has ``onset == offset``) in one video, of one expression type: ``"me"`` (micro) or ``"mae"``
(macro). A prediction is a true positive when it is matched to a truth of the same video and
type with ``iou >= threshold`` (0.5 in every MEGC):

    iou = inter / ((e1 - s1 + 1) + (e2 - s2 + 1) - inter),  inter = frames in both

Matching is **one-to-one**: a prediction counts for at most one truth and a truth for at most
one prediction. Of all one-to-one matchings the one with the most pairs is taken and, among
those, the one with the largest summed IoU (an assignment problem, solved exactly per video and
type). The counts therefore depend neither on the order of the rows nor on the scores; a
prediction that overlaps two truths is a TP for one of them, and the other truth is a FN unless
another prediction takes it.

TP, FP and FN are pooled over **every** video the caller names, those without any expression
included (their predictions are all FP), then precision ``TP / (TP + FP)``, recall
``TP / (TP + FN)`` and F1 are taken for micro, macro and both types together ("overall"). A
ratio whose denominator is 0 is 0, as in the MEGC scorers.

``score_spotting(..., compat="megc2020")`` reproduces the MEGC 2020 baseline's scorer instead,
defects included, and names each defect that changed a count (``spotting_megc2020``).
The records (``Interval``, ``SpotPrediction``, ``SpottingScore``, ...) live in
``spotting_intervals``; the ones a caller of ``score_spotting`` needs are named here too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from mer_prep.errors import InvalidArgumentError
from mer_prep.evaluation.spotting_intervals import (
    KINDS,
    MEGC_IOU_THRESHOLD,
    SpotCounts,
    SpotMatch,
    SpotPrediction,
    SpottingScore,
    SpotTruth,
    check_videos,
    group_by_video_and_kind,
    iou,
    match_one_to_one,
)
from mer_prep.evaluation.spotting_megc2020 import score_megc2020

__all__ = [
    "KINDS",
    "MEGC_IOU_THRESHOLD",
    "SpotCounts",
    "SpotMatch",
    "SpotPrediction",
    "SpottingScore",
    "SpotTruth",
    "check_videos",
    "group_by_video_and_kind",
    "iou",
    "match_one_to_one",
    "score_spotting",
]


def score_spotting(
    predictions: Sequence[SpotPrediction],
    truths: Sequence[SpotTruth],
    videos: Iterable[str],
    *,
    threshold: float = MEGC_IOU_THRESHOLD,
    compat: str | None = None,
    length_windows: Mapping[str, tuple[int, int | None]] | None = None,
) -> SpottingScore:
    """Pooled TP / FP / FN per expression type over ``videos`` (``video_key``s; videos without
    expressions included: name them all).

    ``compat=None`` scores one-to-one (module docstring). ``compat="megc2020"`` reproduces the
    MEGC 2020 baseline's scorer, with ``length_windows`` ``{kind: (shortest, longest or None)}``
    in frames (``spotting_megc2020.MEGC2020_LENGTH_WINDOWS``; None: no length filter), and lists
    the defects that changed a count. ``length_windows`` is refused without a compat mode: the
    correct scorer counts every prediction.
    """
    if not 0.0 < threshold <= 1.0:
        raise InvalidArgumentError(f"IoU threshold must be in (0, 1], got {threshold}")
    scored = check_videos(predictions, truths, videos)
    if compat is not None:
        if compat != "megc2020":
            raise InvalidArgumentError(
                f"unknown spotting compatibility mode {compat!r} (known: megc2020)"
            )
        return score_megc2020(
            predictions, truths, scored, threshold=threshold, length_windows=length_windows
        )
    if length_windows:
        raise InvalidArgumentError(
            "length windows drop predictions before scoring; they belong "
            "to the megc2020 compatibility mode only"
        )
    preds = group_by_video_and_kind(predictions)
    truth_groups = group_by_video_and_kind(truths)
    counts = {kind: [0, 0, 0] for kind in KINDS}
    matches: list[SpotMatch] = []
    for video in scored:
        for kind in KINDS:
            p, t = preds.get((video, kind), []), truth_groups.get((video, kind), [])
            pairs = match_one_to_one(p, t, threshold)
            matches.extend(SpotMatch(p[i], t[j], value) for i, j, value in pairs)
            counts[kind][0] += len(pairs)
            counts[kind][1] += len(p) - len(pairs)
            counts[kind][2] += len(t) - len(pairs)
    with_truth = {t.video_key for t in truths}
    return SpottingScore(
        by_kind={k: SpotCounts(*counts[k]) for k in KINDS},
        n_videos=len(scored),
        n_videos_without_truth=sum(v not in with_truth for v in scored),
        threshold=threshold,
        matches=tuple(matches),
    )
