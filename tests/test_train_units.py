"""The trainer's pure parts, without a store: validation subjects and pooling fold results."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from run_parts import fold_result, run_header

from mer_prep.evaluation.metrics import confusion_matrix, uar, uf1
from mer_prep.train import TrainSetupError, combine_folds
from mer_prep.train.selection import validation_subjects


def _clips(n_subjects: int, per_subject: int = 3):
    subjects = np.repeat([f"d/s{i:02d}" for i in range(n_subjects)], per_subject)
    labels = (np.arange(subjects.size) + np.repeat(np.arange(n_subjects), per_subject)) % 3
    return subjects, labels


@pytest.mark.parametrize("n_subjects, expected", [(2, 1), (7, 1), (20, 2), (67, 7)])
def test_validation_takes_about_a_tenth_of_the_subjects(n_subjects, expected):
    subjects, labels = _clips(n_subjects)
    held = validation_subjects(subjects, labels, seed=0)
    assert len(held) == expected and set(held) <= set(subjects)
    assert held == validation_subjects(subjects, labels, seed=0)  # deterministic in the seed
    draws = {tuple(validation_subjects(subjects, labels, seed=s)) for s in range(6)}
    assert len(draws) > 1  # and the seed matters


def test_validation_is_stratified_where_the_subjects_allow():
    subjects, labels = _clips(40)
    held = validation_subjects(subjects, labels, seed=3)
    assert set(labels[np.isin(subjects, held)]) == {0, 1, 2}


def test_validation_needs_two_subjects_and_handles_one_class():
    subjects, labels = _clips(1)
    with pytest.raises(TrainSetupError, match="at least 2 training subjects"):
        validation_subjects(subjects, labels, seed=0)
    subjects, _ = _clips(5)
    assert len(validation_subjects(subjects, np.zeros(subjects.size, np.int64), seed=0)) == 1


def _fold(index, y_true, y_pred, k=3):
    n = len(y_true)
    proba = np.eye(k, dtype=np.float32)[y_pred]
    return fold_result(
        index,
        f"s{index}",
        ("a", "b", "c"),
        np.array([f"x{index}-{i}" for i in range(n)]),
        np.asarray(y_true),
        np.asarray(y_pred),
        proba,
        seed=index,
    )


def _header(n_folds: int):
    store = {"class_names": ["a", "b", "c"], "version_id": "v-1", "snapshot_id": "S"}
    return run_header("r", store, n_folds, variant="apex", aggregation="")


def test_pooled_metrics_sum_confusions_over_folds_first():
    header = _header(n_folds=2)
    folds = [_fold(1, [0, 1], [0, 0]), _fold(0, [2, 2, 1], [2, 1, 1])]
    record = combine_folds(folds, header)
    pooled = confusion_matrix(np.array([2, 2, 1, 0, 1]), np.array([2, 1, 1, 0, 0]), 3)
    assert record.uf1 == pytest.approx(uf1(pooled)) and record.uar == pytest.approx(uar(pooled))
    assert [f.index for f in record.folds] == [0, 1]  # any order in, fold order out
    assert record.metrics["confusion"] == pooled.tolist()
    table = record.fold_table()
    assert list(table["fold"]) == ["s0", "s1", "pooled"] and table["n"].iloc[-1] == 5
    assert len(record.predictions()) == 5


class _Weights:
    """Stands for a model: ``state_dict()`` of mutable weights (what BestEpoch copies)."""

    def __init__(self) -> None:
        self.w = [0.0]

    def state_dict(self) -> dict:
        return {"w": self.w}


def test_best_epoch_keeps_a_copy_of_the_first_best_and_always_one():
    from mer_prep.train.selection import BestEpoch

    model, best = _Weights(), BestEpoch()
    model.w[0] = 1.0
    assert best.offer(float("-inf"), 1, model)  # nothing kept yet: -inf is kept
    model.w[0] = 2.0
    assert best.offer(0.5, 2, model)
    model.w[0] = 3.0
    assert not best.offer(0.5, 3, model)  # a tie keeps the earlier epoch
    model.w[0] = 4.0
    assert not best.offer(0.25, 4, model)
    assert (best.epoch, best.score, best.state) == (2, 0.5, {"w": [2.0]})  # a copy, not the live


def test_first_steps_report_once_leaving_the_first_step_out():
    from mer_prep.train.timing import FirstSteps, StepsContext, first_batches

    context = StepsContext(
        fold_index=0,
        fold_name="s01",
        parameters=10,
        device="cpu",
        threads=1,
        steps_per_epoch=3,
        fit_rows=9,
        validation_rows=0,
        epochs=2,
    )
    event = first_batches(context, [1.5, 2.0, 2.25], epoch_start=1.0)
    assert event.steps == 3 and event.seconds_per_step == pytest.approx(0.375)
    assert first_batches(context, [1.5], epoch_start=1.0).seconds_per_step == pytest.approx(0.5)
    reported = []
    first = FirstSteps(context, reported.append)
    for _epoch in range(2):
        first.epoch_started(0.0)
        for _step in range(3):
            first.step_ended()
    assert len(reported) == 1 and reported[0].steps == 3 == len(first.ends)


def test_a_run_record_is_its_typed_parts_and_reads_as_before():
    """``RunRecord`` = header + folds + pooled scores + durations: the header's fields read as
    the record's own, ``metrics`` is the stored dict, ``summary()`` (what is stored) is flat as
    before, and a stored ``metrics`` (NaN written as None, keys this type does not name) reads
    back whole."""
    from mer_prep.train.pooled import PooledScores

    header = _header(n_folds=1)
    record = combine_folds([_fold(0, [0, 1, 2, 2], [0, 1, 1, 2])], header, duration_s=3.0)
    assert record.header is header and isinstance(record.scores, PooledScores)
    assert (record.model, record.version_id, record.snapshot_id, record.n_folds) == (
        "mbcc",
        "v-1",
        "S",
        1,
    )
    assert record.name == header.name and record.settings() == header.settings()
    assert record.scores.n == 4 and record.scores.confusion == [[1, 0, 0], [0, 1, 0], [0, 1, 1]]
    assert record.metrics == PooledScores.from_dict(record.metrics).as_dict()
    assert record.metrics["per_class_recall"] == {"a": 1.0, "b": 1.0, "c": 0.5}
    summary = record.summary()
    assert summary["model"] == "mbcc" and summary["metrics"] == record.metrics
    assert "header" not in summary and "scores" not in summary and summary["duration_s"] == 3.0
    with pytest.raises(AttributeError):
        record.no_such_field  # noqa: B018 - the lookup is the test
    renamed = record.with_header(run_id="r2")
    assert (renamed.run_id, record.run_id, renamed.scores) == ("r2", "r", record.scores)
    stored = {"uf1": None, "uar": None, "accuracy": None, "n": 0, "later_key": [1]}
    assert PooledScores.from_dict(stored).as_dict() == stored
    empty = combine_folds([_fold(0, [], [])], header)
    assert (
        empty.scores.n == 0
        and np.isnan(empty.uf1)
        and set(empty.metrics) == {"uf1", "uar", "accuracy", "n"}
    )


def test_a_run_that_scored_no_clip_reads_back_with_nan_scores():
    """JSON has no NaN: the record stores an empty run's scores as None (``_jsonable``), and the
    record read back answers NaN for them, as the run itself did, not a TypeError."""
    from mer_prep.train.pooled import PooledScores
    from mer_prep.train.runs_store import _jsonable

    empty = combine_folds([_fold(0, [], [])], _header(n_folds=1))
    stored = _jsonable(empty.summary())["metrics"]
    assert stored == {"uf1": None, "uar": None, "accuracy": None, "n": 0}
    read = dataclasses.replace(empty, scores=PooledScores.from_dict(stored))
    assert all(np.isnan(score) for score in (read.uf1, read.uar, read.accuracy))
