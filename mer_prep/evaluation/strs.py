"""STRS (spot-then-recognise score, MEGC 2024-2025): ``F1_spot x F1_analysis``.

``F1_spot`` is the spotting F1 over every scored video (``spotting.score_spotting``: one-to-one
matching within a video and expression type, IoU >= 0.5, pooled counts). The analysis is
emotion recognition over the spotted **true positives** only: each matched pair gives the
truth's emotion and the prediction's (a prediction without an emotion is wrong). The classes
are the analysis emotions (by default every emotion that occurs among the truths); pairs whose
truth emotion is not one of them are left out. Per class ``c``: TP = pairs with both emotions
``c``, FP = predicted ``c`` but truly another, FN = truly ``c`` but predicted another; precision
and recall are 0 where their denominator is 0. As in the MEGC STRS definition,

    F1_analysis = 2 P R / (P + R),  P = mean_c precision_c,  R = mean_c recall_c

(0 when P + R = 0), i.e. the F1 of the macro-averaged precision and recall, not the mean of the
per-class F1s; the latter is reported as ``uf1`` and the mean recall as ``uar``.

``score_strs(..., compat=True)`` reproduces the public reference script (the STRS-Metric
repository) instead. It is written against a pandas API that no longer exists
(``DataFrame.append``), so it does not run on current pandas; its behaviour, read from its code,
differs in the ways below (``StrsRules``), each reported with the numbers it changed, removed
one at a time in this order so that reference = correct + the listed changes:

``skip_subjects_without_predictions``
    It loops over the subjects that have predictions: the truths of a subject without any
    prediction are not counted as FN.
``skip_videos_without_truth``
    Within a subject it loops over the videos that have truths: predictions in a video without
    any expression are not counted as FP.
``types_pooled``
    It has no expression type: a micro prediction can match a macro truth.
``several_truths_per_prediction``
    No ``break`` after a match: one prediction is a TP for every still-unmatched truth it
    overlaps, and each such pair enters the analysis.
``row_order_matching``
    Predictions take truths in row order (first come, first served), not by the best matching.
``single_class_confusion_zeroed``
    Per class it unpacks a 2x2 confusion matrix and falls back to TP = FP = FN = 0 when the
    pairs show only one value (all or none of them of that class): a class recognised perfectly
    on every pair scores 0.
``nan_analysis_f1``
    ``F1_analysis`` is 0/0 = NaN (and so STRS) when the mean precision and recall are both 0.
``uar_is_mean_precision``
    Its "UAR" is the mean of the per-class precisions (no effect on STRS).

When no prediction is a TP at all, the reference script stops with an error; here it reports
NaN (with the note that the script would fail).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields, replace

from mer_prep.errors import InvalidArgumentError
from mer_prep.evaluation.spotting_intervals import (
    MEGC_IOU_THRESHOLD,
    DefectEffect,
    QuantityChange,
    SpotCounts,
    SpotPrediction,
    SpotTruth,
    check_videos,
    iou,
    match_one_to_one,
)


@dataclass(frozen=True)
class StrsRules:
    """Which of the reference script's behaviours are in force (all, by default). The fields'
    order is the order in which the defects are removed when attributing their effects."""

    skip_subjects_without_predictions: bool = True
    skip_videos_without_truth: bool = True
    types_pooled: bool = True
    several_truths_per_prediction: bool = True
    row_order_matching: bool = True
    single_class_confusion_zeroed: bool = True
    nan_analysis_f1: bool = True
    uar_is_mean_precision: bool = True


CORRECT = StrsRules(**{f.name: False for f in fields(StrsRules)})

DEFECT_DESCRIPTIONS = {
    "skip_subjects_without_predictions": "truths of subjects without predictions are not FN",
    "skip_videos_without_truth": "predictions in videos without expressions are not FP",
    "types_pooled": "micro and macro intervals match each other",
    "several_truths_per_prediction": "one prediction is a TP for several truths",
    "row_order_matching": "predictions take truths in row order",
    "single_class_confusion_zeroed": "a class with one value on every pair scores 0",
    "nan_analysis_f1": "F1 analysis is NaN when mean precision and recall are 0",
    "uar_is_mean_precision": "'UAR' is the mean per-class precision",
}


@dataclass(frozen=True)
class ClassCounts(SpotCounts):
    """Analysis counts of one emotion over the spotted pairs (precision, recall, F1 as for
    spotting counts)."""

    emotion: str = ""


@dataclass(frozen=True)
class StrsScore:
    """STRS and its parts. ``n_pairs``: spotted pairs that entered the analysis; ``mode``:
    "correct" or "strs-metric" (the reference); ``defects``: what changed a number in the
    reference mode; ``notes``: what the reference would do that a number cannot say."""

    strs: float
    spotting: SpotCounts
    f1_analysis: float
    uf1: float
    uar: float
    per_class: tuple[ClassCounts, ...]
    n_pairs: int
    n_videos: int
    mode: str = "correct"
    defects: tuple[DefectEffect, ...] = ()
    notes: tuple[str, ...] = ()

    def as_dict(self) -> dict:
        """JSON-able view (NaN as None)."""

        def num(x: float) -> float | None:
            return None if math.isnan(x) else x

        s = self.spotting
        return {
            "mode": self.mode,
            "strs": num(self.strs),
            "n_videos": self.n_videos,
            "spotting": {
                "tp": s.tp,
                "fp": s.fp,
                "fn": s.fn,
                "precision": s.precision,
                "recall": s.recall,
                "f1": s.f1,
            },
            "analysis": {
                "f1": num(self.f1_analysis),
                "uf1": self.uf1,
                "uar": self.uar,
                "n_pairs": self.n_pairs,
                "per_class": [
                    {"emotion": c.emotion, "tp": c.tp, "fp": c.fp, "fn": c.fn}
                    for c in self.per_class
                ],
            },
            "defects": [
                {
                    "name": d.name,
                    "description": d.description,
                    "changes": [
                        {
                            "name": c.name,
                            "with_defect": num(c.with_defect),
                            "without_defect": num(c.without_defect),
                        }
                        for c in d.changes
                    ],
                }
                for d in self.defects
            ],
            "notes": list(self.notes),
        }


def _row_order_pairs(
    predictions: Sequence[SpotPrediction],
    truths: Sequence[SpotTruth],
    threshold: float,
    several: bool,
) -> list[tuple[int, int]]:
    """Each prediction in row order takes the unmatched truths (row order) it overlaps: all of
    them when ``several``, else the first."""
    taken: set[int] = set()
    pairs = []
    for i, p in enumerate(predictions):
        for j, t in enumerate(truths):
            if j not in taken and iou(p, t) >= threshold:
                taken.add(j)
                pairs.append((i, j))
                if not several:
                    break
    return pairs


def _spot(
    predictions: Sequence[SpotPrediction],
    truths: Sequence[SpotTruth],
    videos: Sequence[str],
    threshold: float,
    rules: StrsRules,
) -> tuple[SpotCounts, list[tuple[SpotPrediction, SpotTruth]], int]:
    """Spotting counts, the matched pairs and the number of videos scored, under ``rules``."""
    scored = list(videos)
    if rules.skip_videos_without_truth:
        with_truth = {t.video_key for t in truths}
        scored = [v for v in scored if v in with_truth]
    if rules.skip_subjects_without_predictions:
        predicting = {p.subject for p in predictions}
        subject_of = {t.video_key: t.subject for t in truths}
        subject_of.update({p.video_key: p.subject for p in predictions})
        scored = [v for v in scored if subject_of.get(v, "") in predicting]
    in_scope = set(scored)

    def key(x):
        return x.video_key if rules.types_pooled else (x.video_key, x.kind)

    pred_groups: dict = defaultdict(list)
    truth_groups: dict = defaultdict(list)
    for p in predictions:
        if p.video_key in in_scope:
            pred_groups[key(p)].append(p)
    for t in truths:
        if t.video_key in in_scope:
            truth_groups[key(t)].append(t)
    pairs: list[tuple[SpotPrediction, SpotTruth]] = []
    fp = fn = 0
    for group in set(pred_groups) | set(truth_groups):
        p, t = pred_groups.get(group, []), truth_groups.get(group, [])
        if rules.several_truths_per_prediction or rules.row_order_matching:
            index_pairs = _row_order_pairs(p, t, threshold, rules.several_truths_per_prediction)
        else:
            index_pairs = [(i, j) for i, j, _ in match_one_to_one(p, t, threshold)]
        pairs.extend((p[i], t[j]) for i, j in index_pairs)
        fp += len(p) - len({i for i, _ in index_pairs})
        fn += len(t) - len(index_pairs)
    return SpotCounts(len(pairs), fp, fn), pairs, len(scored)


def _analyse(
    pairs: Sequence[tuple[SpotPrediction, SpotTruth]], classes: Sequence[str], rules: StrsRules
) -> tuple[tuple[ClassCounts, ...], float, float, float, int]:
    """Per-class counts, F1 analysis, UF1, UAR and the number of pairs analysed."""
    kept = [(p.emotion, t.emotion) for p, t in pairs if t.emotion in classes]
    per_class = []
    for c in classes:
        is_true = [truth == c for _, truth in kept]
        is_pred = [pred == c for pred, _ in kept]
        if rules.single_class_confusion_zeroed and len(set(is_true) | set(is_pred)) < 2:
            per_class.append(ClassCounts(0, 0, 0, emotion=c))
            continue
        per_class.append(
            ClassCounts(
                sum(a and b for a, b in zip(is_true, is_pred, strict=True)),
                sum(b and not a for a, b in zip(is_true, is_pred, strict=True)),
                sum(a and not b for a, b in zip(is_true, is_pred, strict=True)),
                emotion=c,
            )
        )
    mean_p = sum(c.precision for c in per_class) / len(per_class)
    mean_r = sum(c.recall for c in per_class) / len(per_class)
    if mean_p + mean_r:
        f1 = 2 * mean_p * mean_r / (mean_p + mean_r)
    else:
        f1 = math.nan if rules.nan_analysis_f1 else 0.0
    uf1 = sum(c.f1 for c in per_class) / len(per_class)
    uar = mean_p if rules.uar_is_mean_precision else mean_r
    return tuple(per_class), f1, uf1, uar, len(kept)


def _score(predictions, truths, videos, threshold, classes, rules) -> StrsScore:
    counts, pairs, n_videos = _spot(predictions, truths, videos, threshold, rules)
    per_class, f1, uf1, uar, n_pairs = _analyse(pairs, classes, rules)
    return StrsScore(
        strs=counts.f1 * f1,
        spotting=counts,
        f1_analysis=f1,
        uf1=uf1,
        uar=uar,
        per_class=per_class,
        n_pairs=n_pairs,
        n_videos=n_videos,
    )


def _quantities(s: StrsScore) -> dict[str, float]:
    return {
        "STRS": s.strs,
        "F1 spotting": s.spotting.f1,
        "F1 analysis": s.f1_analysis,
        "spotting TP": s.spotting.tp,
        "spotting FP": s.spotting.fp,
        "spotting FN": s.spotting.fn,
        "UF1": s.uf1,
        "UAR": s.uar,
    }


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=0, abs_tol=1e-12)


def score_strs(
    predictions: Sequence[SpotPrediction],
    truths: Sequence[SpotTruth],
    videos: Iterable[str],
    *,
    threshold: float = MEGC_IOU_THRESHOLD,
    analysis_emotions: Sequence[str] | None = None,
    compat: bool = False,
) -> StrsScore:
    """STRS over ``videos`` (``video_key``s, those without expressions included).

    ``analysis_emotions``: the classes (default: every emotion among ``truths``, sorted).
    ``compat=True``: the reference script's number, with the defects that changed a number.
    """
    scored = check_videos(predictions, truths, videos)
    classes = (
        sorted({t.emotion for t in truths if t.emotion is not None})
        if analysis_emotions is None
        else list(dict.fromkeys(analysis_emotions))
    )
    if not classes:
        raise InvalidArgumentError(
            "STRS needs emotions: no truth has one and no analysis emotions were given"
        )
    if not compat:
        return _score(predictions, truths, scored, threshold, classes, CORRECT)
    state = StrsRules()
    result = _score(predictions, truths, scored, threshold, classes, state)
    defects = []
    current = result
    for defect in (f.name for f in fields(StrsRules)):
        state = replace(state, **{defect: False})
        lighter = _score(predictions, truths, scored, threshold, classes, state)
        before, after = _quantities(current), _quantities(lighter)
        changes = tuple(
            QuantityChange(name, before[name], after[name])
            for name in before
            if not _same(before[name], after[name])
        )
        if changes:
            defects.append(DefectEffect(defect, DEFECT_DESCRIPTIONS[defect], changes))
        current = lighter
    notes = []
    if result.spotting.tp == 0:
        notes.append(
            "the reference script stops with an error when no prediction is a true "
            "positive (it indexes the pairs' 'gt' column of an empty table)"
        )
    notes.append("the reference script needs pandas < 2.0 (DataFrame.append)")
    return replace(result, mode="strs-metric", defects=tuple(defects), notes=tuple(notes))
