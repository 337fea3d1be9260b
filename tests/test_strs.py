"""STRS on hand-made cases worked out by hand: the correct one-to-one version, and the reference
script's behaviour with the defect that changed each number. (The reference-mode values below
were also those of the public STRS-Metric script, run once on these cases with
``DataFrame.append`` restored; nothing of it is used here.)"""

from __future__ import annotations

import math

import pytest

from mer_prep.errors import InvalidArgumentError
from mer_prep.evaluation.spotting import SpotCounts, SpotPrediction, SpotTruth, score_spotting
from mer_prep.evaluation.strs import score_strs


def P(video, onset, offset, emotion=None, kind="me", subject=""):
    return SpotPrediction(video, onset, offset, kind, subject, emotion)


def T(video, onset, offset, emotion=None, kind="me", subject=""):
    return SpotTruth(video, onset, offset, kind, subject, emotion)


def _changes(score):
    return {
        d.name: {c.name: (c.with_defect, c.without_defect) for c in d.changes}
        for d in score.defects
    }


def test_one_prediction_over_two_truths():
    # in A the prediction overlaps both truths (IoU 10/11 and 10/12); B is a plain hit
    truths = [T("A", 0, 9, "happy"), T("A", 1, 11, "happy"), T("B", 100, 120, "sad")]
    predictions = [P("A", 0, 10, "happy"), P("B", 100, 120, "sad")]
    correct = score_strs(predictions, truths, ["A", "B"])
    assert correct.spotting == SpotCounts(tp=2, fp=0, fn=1)  # F1 = 0.8
    assert correct.f1_analysis == pytest.approx(1.0)
    assert correct.strs == pytest.approx(0.8)
    reference = score_strs(predictions, truths, ["A", "B"], compat=True)
    assert reference.spotting == SpotCounts(tp=3, fp=0, fn=0)  # counted twice
    assert reference.strs == pytest.approx(1.0)
    assert _changes(reference) == {
        "several_truths_per_prediction": {
            "STRS": (1.0, pytest.approx(0.8)),
            "F1 spotting": (1.0, pytest.approx(0.8)),
            "spotting TP": (3, 2),
            "spotting FN": (0, 1),
        }
    }


def test_an_emotion_mismatch_costs_the_analysis_not_the_spotting():
    truths = [T("A", 0, 10, "happy"), T("B", 50, 60, "sad")]
    predictions = [P("A", 0, 10, "sad"), P("B", 50, 60, "sad")]
    s = score_strs(predictions, truths, ["A", "B"])
    assert s.spotting.f1 == 1.0
    # happy: P 0 (nothing predicted), R 0; sad: P 1/2, R 1 -> mean P 1/4, mean R 1/2
    assert [(c.emotion, c.tp, c.fp, c.fn) for c in s.per_class] == [
        ("happy", 0, 0, 1),
        ("sad", 1, 1, 0),
    ]
    assert s.f1_analysis == pytest.approx(2 * 0.25 * 0.5 / 0.75)
    assert s.strs == pytest.approx(1 / 3)
    assert s.uf1 == pytest.approx((0 + 2 / 3) / 2)
    assert s.uar == pytest.approx(0.5)  # mean recall
    reference = score_strs(predictions, truths, ["A", "B"], compat=True)
    assert reference.strs == pytest.approx(1 / 3)
    assert _changes(reference) == {"uar_is_mean_precision": {"UAR": (0.25, 0.5)}}


def test_no_predictions():
    truths = [T("A", 0, 10, "happy"), T("B", 50, 60, "sad")]
    s = score_strs([], truths, ["A", "B"])
    assert s.spotting == SpotCounts(tp=0, fp=0, fn=2)
    assert (s.strs, s.f1_analysis, s.n_pairs) == (0.0, 0.0, 0)
    reference = score_strs([], truths, ["A", "B"], compat=True)
    assert math.isnan(reference.strs)
    assert reference.spotting == SpotCounts(0, 0, 0)  # no subject with predictions: no FN
    changes = _changes(reference)
    assert changes["skip_subjects_without_predictions"]["spotting FN"] == (0, 2)
    assert math.isnan(changes["nan_analysis_f1"]["STRS"][0])
    assert changes["nan_analysis_f1"]["STRS"][1] == 0.0
    assert any("stops with an error" in note for note in reference.notes)


def test_no_truths():
    predictions = [P("A", 0, 10, "happy")]
    with pytest.raises(InvalidArgumentError, match="STRS needs emotions"):
        score_strs(predictions, [], ["A"])
    s = score_strs(predictions, [], ["A"], analysis_emotions=["happy", "sad"])
    assert s.spotting == SpotCounts(tp=0, fp=1, fn=0)
    assert s.strs == 0.0
    reference = score_strs(predictions, [], ["A"], analysis_emotions=["happy", "sad"], compat=True)
    assert reference.spotting == SpotCounts(0, 0, 0)  # a video without truth is skipped
    assert _changes(reference)["skip_videos_without_truth"]["spotting FP"] == (0, 1)
    assert math.isnan(reference.strs)


def test_a_perfectly_recognised_single_class_scores_zero_in_the_reference():
    truths, predictions = [T("A", 0, 10, "happy")], [P("A", 0, 10, "happy")]
    assert score_strs(predictions, truths, ["A"]).strs == 1.0
    reference = score_strs(predictions, truths, ["A"], compat=True)
    assert math.isnan(reference.f1_analysis)
    assert set(_changes(reference)) == {"single_class_confusion_zeroed"}
    assert _changes(reference)["single_class_confusion_zeroed"]["UF1"] == (0.0, 1.0)


def test_row_order_matching_and_subject_and_type_pooling():
    # p1 overlaps both truths (9/11 each), p2 only t1 (7/10): in row order p1 takes both (no
    # break) or t1 (with a break); the one-to-one matching pairs p1-t2 and p2-t1.
    truths = [T("A", 0, 9, "happy"), T("A", 2, 11, "sad")]
    predictions = [P("A", 1, 10, "sad"), P("A", 0, 6, "happy")]
    s = score_strs(predictions, truths, ["A"])
    assert (s.spotting, s.strs) == (SpotCounts(2, 0, 0), 1.0)
    reference = score_strs(predictions, truths, ["A"], compat=True)
    assert reference.spotting == SpotCounts(tp=2, fp=1, fn=0)
    assert reference.strs == pytest.approx(0.8 / 3)
    changes = _changes(reference)
    assert list(changes) == ["several_truths_per_prediction", "row_order_matching"]
    assert changes["row_order_matching"]["spotting TP"] == (1, 2)
    # a macro prediction on a micro truth matches only when types are pooled
    mixed = score_strs(
        [P("A", 0, 10, "happy", kind="mae")], [T("A", 0, 10, "happy")], ["A"], compat=True
    )
    assert "types_pooled" in _changes(mixed)


def test_correct_strs_spots_like_the_spotting_evaluator():
    truths = [
        T("A", 0, 9, "happy"),
        T("A", 2, 11, "sad"),
        T("B", 100, 200, "sad", "mae"),
        T("C", 5, 15, "happy", subject="s2"),
    ]
    predictions = [
        P("A", 1, 10, "sad"),
        P("A", 0, 6, "happy"),
        P("B", 100, 190, "sad", "mae"),
        P("D", 3, 9, "happy"),
    ]
    videos = ["A", "B", "s2/C", "D"]
    assert (
        score_strs(predictions, truths, videos).spotting
        == score_spotting(predictions, truths, videos).overall
    )
