"""Spot-then-recognise over a recorded spotting run, leave one subject out, scored by STRS.

    outcome = recognize_spots(record, videos, RecognizerSettings(model="ststnet"))
    outcome.score.strs, outcome.score.spotting.f1, outcome.score.f1_analysis

For each fold of the spotting run (one test subject, its values tuned on the others), a
recogniser is trained on the **training subjects'** annotated micro-expressions (onset -> apex,
processed with the recogniser's clip recipe) and classifies each micro-expression the fold
spotted in the test subject's videos, cut at the spotted onset..offset with its apex at the
score's peak. The test subject's annotations are never read for it. STRS is taken over the
micro-expressions (MEGC's spot-then-recognise task): ``F1_spot`` of the ME predictions against
the ME truths of every video, ``F1_analysis`` over the spotted true positives
(``evaluation.strs.score_strs``, one-to-one). The classes are the emotions of the annotated MEs.

``shuffle_seed``: the training labels are permuted (within the training subjects) before each
fold is trained: a null experiment whose analysis should score at chance.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from mer_prep.datasets.long_video import LongVideo
from mer_prep.errors import InvalidArgumentError
from mer_prep.evaluation.spotting_intervals import SpotPrediction, apex_frames
from mer_prep.evaluation.strs import StrsScore, score_strs
from mer_prep.recipes import load_recipe
from mer_prep.recognize_spots.intervals import interval_features, interval_sample
from mer_prep.recognize_spots.recognizer import (
    LabelledIntervals,
    RecognizerSettings,
    fit_and_predict,
)

ME = "me"


@dataclass
class RecognizedSpots:
    """The run's predictions with an emotion on each recognised ME, its STRS over the MEs,
    the classes, per fold what was trained and recognised, and one line per interval that
    could not be processed."""

    predictions: tuple[SpotPrediction, ...]
    score: StrsScore
    classes: tuple[str, ...]
    settings: RecognizerSettings
    folds: list[dict] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    shuffled: bool = False

    def attrs(self) -> dict:
        """What a spotting record keeps of it (JSON): STRS and its parts, the recogniser."""
        return {
            **self.score.as_dict(),
            "kinds": [ME],
            "classes": list(self.classes),
            "recognizer": self.settings.as_dict(),
            "shuffled_labels": self.shuffled,
            "folds": self.folds,
            "problems": self.problems,
            "emotions": [p.emotion for p in self.predictions],
        }


def _truth_intervals(
    videos: Sequence[LongVideo], recipe, cache: dict | None
) -> tuple[LabelledIntervals, list, list]:
    """Every annotated ME with an emotion, processed: (intervals with their emotions as
    labels 0.. in ``classes`` order, the classes, problems)."""
    items = [(v, i) for v in videos for i in v.intervals if i.kind == ME and i.emotion]
    classes = sorted({i.emotion for _, i in items})
    samples = [
        interval_sample(v, onset=i.onset, apex=i.apex, offset=i.offset, emotion=i.emotion)
        for v, i in items
    ]
    found = interval_features(samples, recipe, cache=cache)
    kept = [items[k] for k in found.ok]
    labelled = LabelledIntervals(
        arrays=found.arrays,
        labels=np.array([classes.index(i.emotion) for _, i in kept], np.int64),
        subjects=np.array([v.subject for v, _ in kept], dtype=object).astype(str),
        ids=np.array([f"{v.key}@{i.onset}" for v, i in kept], dtype=object).astype(str),
    )
    return labelled, classes, found.problems


def recognize_spots(
    record,
    videos: Sequence[LongVideo],
    settings: RecognizerSettings,
    *,
    shuffle_seed: int | None = None,
    cache: dict | None = None,
) -> RecognizedSpots:
    """Recognise the MEs a spotting run (``record``: a ``SpotRunRecord``) spotted in
    ``videos`` (the long videos it spotted, with their frames and annotations). ``cache``: the
    processed intervals by sample id, shared by calls over one run with one recipe."""
    by_key = {v.key: v for v in videos}
    missing = [k for k in record.video_keys if k not in by_key]
    if missing:
        raise InvalidArgumentError(
            f"spotting run {record.run_id}: {len(missing)} of its videos are not among the "
            f"videos given (first {missing[0]!r})"
        )
    recipe = load_recipe(settings.recipe)
    truths, classes, problems = _truth_intervals(
        [by_key[k] for k in record.video_keys], recipe, cache
    )
    if len(classes) < 2:
        raise InvalidArgumentError(
            f"spotting run {record.run_id}: the annotated MEs show {len(classes)} emotion(s); "
            f"spot-then-recognise needs two at least"
        )
    rng = np.random.default_rng(shuffle_seed) if shuffle_seed is not None else None
    predictions = list(record.predictions())
    emotions: list[str | None] = [None] * len(predictions)
    folds = []
    for fold in record.folds:
        subject, fold_videos = fold["test_subject"], set(fold["videos"])
        train_rows = np.flatnonzero(truths.subjects != subject)
        train = LabelledIntervals(
            {k: v[train_rows] for k, v in truths.arrays.items()},
            truths.labels[train_rows],
            truths.subjects[train_rows],
            truths.ids[train_rows],
        )
        if rng is not None:
            train = dataclasses.replace(train, labels=rng.permutation(train.labels))
        mine = [j for j, p in enumerate(predictions) if p.kind == ME and p.video_key in fold_videos]
        samples, where = [], []
        for key in sorted({predictions[j].video_key for j in mine}):
            frames, curve, _ = record.curve(key)
            here = [j for j in mine if predictions[j].video_key == key]
            apexes = apex_frames(frames, curve, [predictions[j] for j in here])
            for j, apex in zip(here, apexes, strict=True):
                p = predictions[j]
                samples.append(
                    interval_sample(
                        by_key[key], onset=p.onset, apex=apex, offset=p.offset, tag=f"#{j}"
                    )
                )
                where.append(j)
        found = interval_features(samples, recipe, cache=cache)
        problems += found.problems
        test = LabelledIntervals(
            found.arrays,
            np.zeros(len(found.ok), np.int64),
            np.full(len(found.ok), subject),
            np.array([samples[k].sample_id for k in found.ok]),
        )
        predicted = fit_and_predict(train, test, tuple(classes), settings, fold=fold["index"])
        for k, label in zip(found.ok, predicted, strict=True):
            emotions[where[k]] = classes[int(label)]
        folds.append(
            {
                "index": fold["index"],
                "test_subject": subject,
                "n_trained": len(train),
                "n_spotted_me": len(mine),
                "n_recognised": len(found.ok),
            }
        )
    recognised = tuple(
        dataclasses.replace(p, emotion=e) for p, e in zip(predictions, emotions, strict=True)
    )
    score = score_strs(
        [p for p in recognised if p.kind == ME],
        [t for k in record.video_keys for t in by_key[k].truths() if t.kind == ME],
        record.video_keys,
        analysis_emotions=classes,
    )
    return RecognizedSpots(
        recognised, score, tuple(classes), settings, folds, problems, rng is not None
    )


def recognized_record(record, outcome: RecognizedSpots):
    """A new spotting record: ``record`` (the spotting run recognised) with the recognition's
    STRS, its parts and the recogniser under ``strs`` / ``recognizer``, and a run id of its
    own (its configuration differs by the recogniser: the leaderboard shows it as a row)."""
    from mer_prep.spotting.records import SpotRunRecord, new_run_id

    attrs = {
        **record.attrs,
        "run_id": new_run_id(),
        "recognised_from": record.run_id,
        "strs": outcome.attrs(),
        "recognizer": outcome.settings.as_dict(),
    }
    return SpotRunRecord(attrs=attrs, arrays=dict(record.arrays))
