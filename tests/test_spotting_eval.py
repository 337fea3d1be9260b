"""The MEGC spotting evaluator on hand-made cases whose counts are worked out by hand: IoU on
inclusive frames, one-to-one matching, pooling over every video, the MEGC 2020 baseline's
scorer with each of its defects, the CSV format and ``mer-prep score-spots``."""

from __future__ import annotations

import json
import random

import pytest
from click.testing import CliRunner

from mer_prep.cli import main
from mer_prep.errors import InvalidArgumentError
from mer_prep.evaluation.spotting import (
    SpotCounts,
    SpotPrediction,
    SpotTruth,
    iou,
    match_one_to_one,
    score_spotting,
)
from mer_prep.evaluation.spotting_csv import SpotCsvError, read_spot_csv, write_spot_csv
from mer_prep.evaluation.spotting_megc2020 import MEGC2020_LENGTH_WINDOWS


def P(video, onset, offset, kind="me", **kw):
    return SpotPrediction(video, onset, offset, kind, **kw)


def T(video, onset, offset, kind="me", **kw):
    return SpotTruth(video, onset, offset, kind, **kw)


# --- IoU on inclusive frame ranges ---------------------------------------------------------------


@pytest.mark.parametrize(
    "a, b, expected",
    [
        ((0, 9), (5, 14), 5 / 15),  # 10 + 10 frames, 5 shared
        ((5, 5), (5, 5), 1.0),  # a one-frame interval is one frame, not empty
        ((0, 4), (5, 9), 0.0),  # adjacent: nothing shared
        ((0, 9), (0, 19), 10 / 20),  # exactly the MEGC threshold
        ((3, 7), (0, 10), 5 / 11),
    ],
)
def test_iou_counts_both_ends(a, b, expected):
    assert iou(T("v", *a), P("v", *b)) == pytest.approx(expected, abs=1e-12)
    assert iou(P("v", *b), T("v", *a)) == pytest.approx(expected, abs=1e-12)


def test_intervals_refuse_offset_before_onset_and_unknown_types():
    with pytest.raises(InvalidArgumentError, match="offset before onset"):
        T("v", 10, 9)
    with pytest.raises(InvalidArgumentError, match="expression type"):
        P("v", 1, 9, "micro")


# --- one-to-one matching -------------------------------------------------------------------------


def test_a_prediction_over_two_truths_counts_for_one():
    truths = [T("v", 0, 9), T("v", 1, 11)]  # IoU with the prediction 10/11 and 10/12
    score = score_spotting([P("v", 0, 10)], truths, ["v"])
    assert score.by_kind["me"] == SpotCounts(tp=1, fp=0, fn=1)
    (match,) = score.matches
    assert match.truth == truths[0] and match.iou == pytest.approx(10 / 11)


def test_two_predictions_on_one_truth_one_is_a_false_positive():
    score = score_spotting([P("v", 0, 9), P("v", 1, 10)], [T("v", 0, 9)], ["v"])
    assert score.by_kind["me"] == SpotCounts(tp=1, fp=1, fn=0)
    assert score.matches[0].prediction == P("v", 0, 9)  # the better IoU (1 vs 9/11)


def test_matching_takes_the_most_pairs_whatever_the_row_order():
    # p1 overlaps both truths (IoU 9/11 each), p2 only t1 (7/10; 5/12 with t2): taking rows in
    # order, p1 would take t1 and leave p2 without a truth; the matching pairs p1-t2, p2-t1.
    truths = [T("v", 0, 9), T("v", 2, 11)]
    predictions = [P("v", 1, 10), P("v", 0, 6)]
    assert sorted((i, j) for i, j, _ in match_one_to_one(predictions, truths)) == [(0, 1), (1, 0)]
    rng = random.Random(0)
    for _ in range(6):
        rng.shuffle(predictions)
        rng.shuffle(truths)
        assert score_spotting(predictions, truths, ["v"]).by_kind["me"] == SpotCounts(2, 0, 0)


def test_counts_pool_every_video_including_those_without_expressions():
    truths = [T("a", 10, 20), T("a", 100, 140, "mae"), T("b", 50, 60)]
    predictions = [
        P("a", 11, 21),  # TP (IoU 10/12)
        P("a", 300, 340, "mae"),  # FP: misses the macro
        P("c", 5, 15),
        P("c", 40, 50),  # video c has no expression: 2 FP
        P("d", 1, 2, "mae"),
    ]  # and d neither: 1 FP
    score = score_spotting(predictions, truths, ["a", "b", "c", "d", "e"])
    assert score.by_kind["me"] == SpotCounts(tp=1, fp=2, fn=1)
    assert score.by_kind["mae"] == SpotCounts(tp=0, fp=2, fn=1)
    assert score.overall == SpotCounts(tp=1, fp=4, fn=2)
    assert (score.n_videos, score.n_videos_without_truth) == (5, 3)
    assert score.overall.precision == pytest.approx(1 / 5)
    assert score.overall.recall == pytest.approx(1 / 3)
    assert score.overall.f1 == pytest.approx(2 * (1 / 5) * (1 / 3) / (1 / 5 + 1 / 3))


def test_a_micro_inside_a_macro_matches_only_its_own_type():
    truths = [T("v", 0, 60, "mae"), T("v", 20, 30, "me")]
    # a micro prediction covering the whole macro has IoU 1 with it, but is of another type
    score = score_spotting(
        [P("v", 0, 60, "me"), P("v", 20, 31, "me"), P("v", 1, 60, "mae")], truths, ["v"]
    )
    assert score.by_kind["me"] == SpotCounts(tp=1, fp=1, fn=0)
    assert score.by_kind["mae"] == SpotCounts(tp=1, fp=0, fn=0)


def test_intervals_outside_the_named_videos_are_refused():
    with pytest.raises(InvalidArgumentError, match="'x'.*not among the 1 scored videos"):
        score_spotting([P("x", 1, 5)], [T("v", 1, 5)], ["v"])
    with pytest.raises(InvalidArgumentError, match="megc2020 compatibility mode only"):
        score_spotting([], [T("v", 1, 5)], ["v"], length_windows={"me": (7, 16)})


# --- the MEGC 2020 baseline's scorer ------------------------------------------------------------


def _defects(score):
    return {
        d.name: {(c.name, c.with_defect, c.without_defect) for c in d.changes}
        for d in score.defects
    }


def test_megc2020_counts_a_prediction_once_per_truth_it_hits():
    truths = [T("v", 0, 9), T("v", 1, 11)]
    score = score_spotting([P("v", 0, 10)], truths, ["v"], compat="megc2020")
    assert score.by_kind["me"] == SpotCounts(tp=2, fp=-1, fn=0)  # 1 prediction - 2 TP
    assert _defects(score) == {
        "truths_hit_are_tps": {("me TP", 2, 1), ("me FP", -1, 0), ("me FN", 0, 1)}
    }


def test_megc2020_drops_predictions_outside_the_length_window():
    truths = [T("v", 100, 110)]  # an 11-frame ME
    predictions = [P("v", 100, 110), P("v", 5, 7), P("v", 20, 39)]  # 11, 3 and 20 frames
    windows = MEGC2020_LENGTH_WINDOWS["casme-sq"]  # ME 7..16 frames
    score = score_spotting(predictions, truths, ["v"], compat="megc2020", length_windows=windows)
    assert score.by_kind["me"] == SpotCounts(tp=1, fp=0, fn=0)
    assert _defects(score) == {"length_filter": {("me FP", 0, 2)}}
    assert "2 predictions dropped" in score.notes[0]
    assert score_spotting(predictions, truths, ["v"]).by_kind["me"] == SpotCounts(1, 2, 0)


def test_megc2020_never_matches_a_one_frame_interval():
    score = score_spotting([P("v", 5, 5)], [T("v", 5, 5)], ["v"], compat="megc2020")
    assert score.by_kind["me"] == SpotCounts(tp=0, fp=1, fn=1)
    assert _defects(score) == {
        "one_frame_never_matches": {("me TP", 0, 1), ("me FP", 1, 0), ("me FN", 1, 0)}
    }


def test_megc2020_gives_disjoint_intervals_one_shared_frame():
    # [0,1] and [3,4] share nothing; the baseline's formula gives 1 / (2 + 2 - 1) = 1/3, which
    # decides a match only below the MEGC threshold
    args = ([P("v", 3, 4)], [T("v", 0, 1)], ["v"])
    assert score_spotting(*args, compat="megc2020").by_kind["me"] == SpotCounts(0, 1, 1)
    low = score_spotting(*args, compat="megc2020", threshold=0.3)
    assert low.by_kind["me"] == SpotCounts(tp=1, fp=0, fn=0)
    assert set(_defects(low)) == {"disjoint_overlap_one_frame"}


def test_megc2020_equals_the_correct_counts_plus_the_named_changes():
    truths = [T("a", 0, 9), T("a", 1, 11), T("a", 40, 40), T("b", 200, 300, "mae")]
    predictions = [
        P("a", 0, 10),
        P("a", 40, 40),
        P("a", 60, 62),
        P("b", 205, 300, "mae"),
        P("c", 1, 30, "mae"),
    ]
    windows = {"me": (2, 16), "mae": (17, None)}
    compat = score_spotting(
        predictions, truths, ["a", "b", "c"], compat="megc2020", length_windows=windows
    )
    correct = score_spotting(predictions, truths, ["a", "b", "c"])
    assert [d.name for d in compat.defects] == [
        "length_filter",
        "one_frame_never_matches",
        "truths_hit_are_tps",
    ]
    for kind in ("me", "mae"):
        for name in ("tp", "fp", "fn"):
            value = getattr(compat.by_kind[kind], name)
            for defect in compat.defects:
                for change in defect.changes:
                    if change.name == f"{kind} {name.upper()}":
                        value += change.without_defect - change.with_defect
            assert value == getattr(correct.by_kind[kind], name), (kind, name)


# --- CSV and the command --------------------------------------------------------------------------


def test_csv_round_trip_keeps_intervals_and_videos_without_expressions(tmp_path):
    truths = [T("a", 10, 20, subject="s1", emotion="happy"), T("a", 30, 90, "mae", subject="s1")]
    write_spot_csv(tmp_path / "t.csv", truths, videos_without_truth=["s2/b"])
    read = read_spot_csv(tmp_path / "t.csv", truth=True)
    assert read.intervals == tuple(truths)
    assert read.videos == ("s1/a", "s2/b")
    predictions = [P("a", 11, 21, score=0.25, emotion="sad")]
    write_spot_csv(tmp_path / "p.csv", predictions)
    assert read_spot_csv(tmp_path / "p.csv", truth=False).intervals == tuple(predictions)


@pytest.mark.parametrize(
    "body, problem",
    [
        ("video,onset,offset,type\nv,12.5,20,me\n", "row 2: onset '12.5' is not a whole frame"),
        (
            "video,onset,offset,type\nv,1,20,me\nv,30,20,mae\n",
            "row 3: offset 20 is before onset 30",
        ),
        ("video,onset,offset,type\nv,1,20,blink\n", "row 2: type 'blink' is none of"),
        ("video,onset,offset\nv,1,20\n", "row 1: no column type"),
        ("video,onset,offset,type,score\nv,1,20,me,high\n", "row 2: score 'high' is not a number"),
    ],
)
def test_csv_errors_name_the_file_and_row(tmp_path, body, problem):
    path = tmp_path / "pred.csv"
    path.write_text(body)
    with pytest.raises(SpotCsvError) as caught:
        read_spot_csv(path, truth=False)
    assert str(caught.value).startswith(f"{path}, ") and problem in str(caught.value)


def _files(tmp_path):
    (tmp_path / "truth.csv").write_text(
        "video,onset,offset,type\na,10,20,me\na,100,140,mae\nb,50,60,me\nc,,,\n"
    )
    (tmp_path / "pred.csv").write_text(
        "video,onset,offset,type,score\na,11,21,me,0.9\na,300,340,mae,0.5\nc,5,15,me,0.1\n"
        "c,1,3,me,0.2\n"
    )
    return str(tmp_path / "pred.csv"), str(tmp_path / "truth.csv")


def test_score_spots_prints_the_counts_and_what_they_came_from(tmp_path):
    pred, truth = _files(tmp_path)
    result = CliRunner().invoke(main, ["score-spots", pred, "--truth", truth, "--format", "json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["source"] == {"predictions": pred, "truth": truth, "videos_file": None}
    spot = out["spotting"]
    assert (spot["mode"], spot["n_videos"], spot["n_videos_without_truth"]) == ("one-to-one", 3, 1)
    assert [spot["me"][k] for k in ("tp", "fp", "fn")] == [1, 2, 1]
    assert [spot["mae"][k] for k in ("tp", "fp", "fn")] == [0, 1, 1]
    assert [spot["overall"][k] for k in ("tp", "fp", "fn")] == [1, 3, 2]
    text = CliRunner().invoke(
        main,
        ["score-spots", pred, "--truth", truth, "--compat", "megc2020", "--lengths", "casme-sq"],
    )
    assert text.exit_code == 0, text.output
    assert "3 videos (1 without expressions), IoU >= 0.5, MEGC 2020 baseline scorer" in text.output
    assert "defect length_filter" in text.output and "me FP 1 (without it 2)" in text.output


def test_score_spots_bad_input_is_one_line_and_exit_2(tmp_path):
    pred, truth = _files(tmp_path)
    (tmp_path / "other.csv").write_text("video,onset,offset,type\nz,1,9,me\n")
    runs = [
        ["score-spots", str(tmp_path / "other.csv"), "--truth", truth],
        ["score-spots", pred, "--truth", truth, "--lengths", "samm-lv"],
        ["score-spots", str(tmp_path / "missing.csv"), "--truth", truth],
    ]
    messages = [
        "other.csv, row 2: video 'z' is not in the truth file",
        "needs --compat megc2020",
        "missing.csv: cannot be read",
    ]
    for args, message in zip(runs, messages, strict=True):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 2, result.output
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], result.output


def _baseline_checkout(root, me2_macro_true=1):
    """A two-dataset miniature in the MEGC 2020 baseline repository's layout (made up here)."""
    base = root / "MDMD_results"
    for sets, name, video, info in [
        (
            "CAS(ME)^2_Sets",
            "ME2",
            "s1 0101",
            "s1 0101 macro-expression 100.0 120.0 140.0\ns1 0101 micro-expression 10.0 15.0 20.0\n",
        ),
        (
            "SAMM_MEGC_Sets",
            "SAMM_MEGC",
            "006 1",
            "006 1 macro-expression 500 600 700\n006 1 micro-expression 10 40 80\n",
        ),
    ]:
        folder = base / "dataset_new/data" / sets
        folder.mkdir(parents=True)
        (folder / f"{name}_all.txt").write_text(video + "\n")
        (folder / "all_Info.txt").write_text(info)
    predictions = {
        ("ME2", "macro"): "100 140 1.0\n1 5 1.0\n",  # 41 frames kept, 5 dropped
        ("ME2", "micro"): "10 20 1.0\n50 52 1.0\n60 70 1.0\n",  # 11 TP, 3 dropped, 11 FP
        ("SAMM_MEGC", "macro"): "500 700 1.0\n",
        ("SAMM_MEGC", "micro"): "",
    }
    for (name, cls), text in predictions.items():
        folder = base / f"results_API/{name}_{cls}_txtClips/p1"
        folder.mkdir(parents=True)
        video = "s1_0101" if name == "ME2" else "006_1"
        (folder / f"{video}.txt").write_text(text)
    (base / "eval_res_txt").mkdir()
    (base / "eval_res_txt/MEGC2020_results.txt").write_text(
        "ME2 (number of videos: 1)----\n\n"
        "micro-expression:   predict: 2    true_predict: 1    labels: 1    recall: 1\n\n"
        f"macro-expression:  predict: 1    true_predict: {me2_macro_true}    labels: 1\n\n"
        "SAMM_MEGC (number of videos: 1)----\n\n"
        "micro-expression:   predict: 0    true_predict: 0    labels: 1\n\n"
        "macro-expression:  predict: 1    true_predict: 1    labels: 1\n"
    )
    return root


def test_the_baseline_bench_compares_our_counts_with_its_result_file(tmp_path, capsys, monkeypatch):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "bench/spotting_megc2020.py"
    spec = importlib.util.spec_from_file_location("bench_spotting_megc2020", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    monkeypatch.setattr("sys.argv", ["bench", str(_baseline_checkout(tmp_path / "ok"))])
    assert bench.main() == 0
    out = capsys.readouterr().out
    assert "compatibility counts match the result file" in out
    assert "2 predictions dropped" in out  # 1..5 and 50..52 in ME2
    monkeypatch.setattr("sys.argv", ["bench", str(_baseline_checkout(tmp_path / "bad", 0))])
    assert bench.main() == 1
    assert "2 count rows differ" in capsys.readouterr().out  # ME2 macro and overall
