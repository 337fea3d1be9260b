"""Choosing a spotter's values on training subjects only, fold by fold (leave one subject out).

    videos = [SpotVideo(motions={4: m4, 8: m8}, truths=(...)), ...]
    result = spot_loso(videos, "mdmd")          # SpotResult: folds, pooled predictions, score

For each fold (one test subject), every tuned value of :class:`~mer_prep.spotting.spotters.
SpotParams` (``k_me`` / ``k_mae`` among the stored pair distances, ``p``, ``smooth``, ``rel``,
the ME / MaE length windows) is the point of :class:`SpotGrid` with the highest **overall F1**
(``mer_prep.evaluation.spotting.score_spotting``, one-to-one, every video scored) on the
videos of the fold's *training* subjects; ties go to the first point in the grid's order. The
test subject's videos are then spotted with those values. :func:`tune` is given the training
videos only: the test subject's motion and truths are never passed to it (by construction),
so they cannot change a tuned value.

The predictions of all folds are pooled and scored once over every video. ``tune_on="test"``
chooses each fold's values on its *test* subject instead (how the field's per-subject
"best threshold" numbers were obtained): such a result is ``leaky`` and recorded LEAKY.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Self

import numpy as np

from mer_prep.errors import InvalidArgumentError
from mer_prep.evaluation.spotting import score_spotting
from mer_prep.evaluation.spotting_intervals import SpotPrediction, SpottingScore, SpotTruth
from mer_prep.motion.video_motion import VideoMotion
from mer_prep.spotting.methods import METHODS
from mer_prep.spotting.spotters import (
    DEFAULT_REGIONS,
    Candidates,
    SpotParams,
    assemble,
    peak_extents,
    score_curve,
    smooth_curve,
)

TUNE_ON = ("train", "test")


@dataclass(frozen=True, eq=False)
class SpotVideo:
    """One long video to spot: its motion at every stored pair distance ({k: VideoMotion},
    all of one video) and its truths (``SpotTruth``s, possibly none)."""

    motions: dict[int, VideoMotion]
    truths: tuple[SpotTruth, ...] = ()

    def __post_init__(self) -> None:
        if not self.motions:
            raise InvalidArgumentError("a video to spot needs its motion at one k at least")
        ids = {m.video_id for m in self.motions.values()}
        if len(ids) != 1:
            raise InvalidArgumentError(f"the motions of one video name several: {sorted(ids)}")

    @property
    def first(self) -> VideoMotion:
        return self.motions[min(self.motions)]

    @property
    def key(self) -> str:
        return self.first.video_id

    @property
    def subject(self) -> str:
        return self.first.subject

    @property
    def fps(self) -> float:
        return self.first.fps


@dataclass(frozen=True)
class SpotGrid:
    """The values tried: pair distances (None: every k the videos share), thresholds ``ps``,
    smoothing widths, extent levels ``rels``, and ME/MaE boundaries ``splits_s`` in seconds:
    ME ``min_s * fps .. split * fps`` frames, MaE ``split * fps + 1 .. max_s * fps``."""

    ks: tuple[int, ...] | None = None
    ps: tuple[float, ...] = (0.1, 0.2, 0.3, 0.5)
    smooths: tuple[int, ...] = (1, 3)
    rels: tuple[float, ...] = (0.3, 0.5)
    splits_s: tuple[float, ...] = (0.4, 0.5, 0.6)
    min_s: float = 0.1
    max_s: float = 4.0

    def points(self, ks: Sequence[int], fps: float) -> Iterator[SpotParams]:
        """Every point, in a fixed order (ties in F1 go to the first)."""
        chosen = sorted(k for k in (self.ks or ks) if k in ks)
        if not chosen:
            raise InvalidArgumentError(
                f"none of the grid's pair distances {self.ks} is stored (stored: {sorted(ks)})"
            )
        shortest = max(1, round(self.min_s * fps))
        longest = max(shortest + 1, round(self.max_s * fps))
        for k_me, k_mae in itertools.product(chosen, chosen):
            if k_mae < k_me:
                continue
            for split, p, smooth, rel in itertools.product(
                self.splits_s, self.ps, self.smooths, self.rels
            ):
                boundary = min(max(shortest, round(split * fps)), longest - 1)
                yield SpotParams(
                    k_me=k_me,
                    k_mae=k_mae,
                    p=p,
                    smooth=smooth,
                    rel=rel,
                    me_window=(shortest, boundary),
                    mae_window=(boundary + 1, longest),
                )

    def as_dict(self) -> dict:
        return {
            "ks": None if self.ks is None else list(self.ks),
            "ps": list(self.ps),
            "smooths": list(self.smooths),
            "rels": list(self.rels),
            "splits_s": list(self.splits_s),
            "min_s": self.min_s,
            "max_s": self.max_s,
        }


class _Cache:
    """Per video, the candidates of each (k, smooth, p, rel): the grid's points share them."""

    def __init__(self, method: str, regions: Sequence[str]) -> None:
        self.method, self.regions = method, tuple(regions)
        self._curves: dict[tuple[str, int, int], np.ndarray] = {}
        self._found: dict[tuple[str, int, int, float, float], Candidates] = {}

    def curve(self, video: SpotVideo, k: int, smooth: int) -> np.ndarray:
        key = (video.key, k, smooth)
        if key not in self._curves:
            raw = score_curve(video.motions[k], self.method, self.regions)
            self._curves[key] = smooth_curve(raw, smooth)
        return self._curves[key]

    def found(self, video: SpotVideo, k: int, params: SpotParams) -> Candidates:
        key = (video.key, k, params.smooth, params.p, params.rel)
        if key not in self._found:
            curve = self.curve(video, k, params.smooth)
            self._found[key] = peak_extents(curve, video.motions[k], params.p, params.rel)
        return self._found[key]

    def spot(self, video: SpotVideo, params: SpotParams) -> tuple[SpotPrediction, ...]:
        return assemble(
            video.key,
            self.found(video, params.k_me, params),
            self.found(video, params.k_mae, params),
            params,
        )


def group_videos(
    motions: Mapping[int, Sequence[VideoMotion]], truths: Sequence[SpotTruth]
) -> list[SpotVideo]:
    """One ``SpotVideo`` per video of ``motions`` ({k: motions, in one video order at every
    k}, as ``synth.long_motion.planted_motion_set`` gives them) with its truths."""
    ks = sorted(motions)
    return [
        SpotVideo(
            {k: motions[k][i] for k in ks},
            tuple(t for t in truths if t.video_key == first.video_id),
        )
        for i, first in enumerate(motions[ks[0]])
    ]


def shared_ks(videos: Sequence[SpotVideo]) -> list[int]:
    """The pair distances every video has."""
    common = set.intersection(*(set(v.motions) for v in videos)) if videos else set()
    if not common:
        raise InvalidArgumentError("the videos share no pair distance k")
    return sorted(common)


def spot_videos(
    videos: Sequence[SpotVideo],
    method: str,
    params: SpotParams,
    regions: Sequence[str] = DEFAULT_REGIONS,
) -> list[SpotPrediction]:
    """Every video spotted with ``params``."""
    cache = _Cache(method, regions)
    return [p for v in videos for p in cache.spot(v, params)]


def score_videos(
    predictions: Sequence[SpotPrediction], videos: Sequence[SpotVideo]
) -> SpottingScore:
    """``score_spotting`` of ``predictions`` over ``videos`` (all of them scored)."""
    truths = [t for v in videos for t in v.truths]
    return score_spotting(predictions, truths, [v.key for v in videos])


@dataclass(frozen=True)
class Tuned:
    """The values chosen on ``videos`` (their keys), the overall F1 they reached there, and
    how many grid points were tried."""

    params: SpotParams
    f1: float
    videos: tuple[str, ...]
    n_points: int


def tune(
    videos: Sequence[SpotVideo],
    method: str,
    grid: SpotGrid | None = None,
    regions: Sequence[str] = DEFAULT_REGIONS,
    *,
    _cache: _Cache | None = None,
) -> Tuned:
    """The grid point with the highest overall F1 on ``videos`` (the first of equals). Reads
    nothing but ``videos``."""
    if method not in METHODS:
        raise InvalidArgumentError(
            f"unknown spotting method {method!r} (known: {', '.join(METHODS)})"
        )
    if not videos:
        raise InvalidArgumentError("tuning needs at least one video")
    grid = grid or SpotGrid()
    cache = _cache or _Cache(method, regions)
    return best_point(videos, grid.points(shared_ks(videos), videos[0].fps), cache)


def best_point(videos: Sequence[SpotVideo], points: Iterable[SpotParams], cache: _Cache) -> Tuned:
    """The point of ``points`` with the highest overall F1 on ``videos`` (the first of equals),
    each video spotted through ``cache`` (its curves: a method's, or a learned spotter's)."""
    truths = [t for v in videos for t in v.truths]
    keys = [v.key for v in videos]
    best: tuple[float, SpotParams] | None = None
    n = 0
    for params in points:
        n += 1
        predictions = [p for v in videos for p in cache.spot(v, params)]
        f1 = score_spotting(predictions, truths, keys).overall.f1
        if best is None or f1 > best[0]:
            best = (f1, params)
    if best is None:
        raise InvalidArgumentError("tuning needs at least one grid point")
    return Tuned(params=best[1], f1=best[0], videos=tuple(keys), n_points=n)


@dataclass(frozen=True, eq=False)
class SpotFold:
    """One fold: its test subject, the subjects the values were tuned on, the values, the F1
    they reached there, and the test subject's predictions and score."""

    index: int
    test_subject: str
    tuned_on: tuple[str, ...]
    tuned: Tuned
    videos: tuple[str, ...]
    predictions: tuple[SpotPrediction, ...]
    score: SpottingScore


@dataclass(frozen=True, eq=False)
class SpotResult:
    """A spotting run's results: per fold, and pooled over folds (``score``: every video)."""

    method: str
    tune_on: str
    grid: SpotGrid
    regions: tuple[str, ...]
    folds: tuple[SpotFold, ...]
    predictions: tuple[SpotPrediction, ...]
    score: SpottingScore
    duration_s: float
    videos: tuple[SpotVideo, ...] = field(repr=False, default=())

    @property
    def leaky(self) -> bool:
        """True when the values were chosen on the test subjects."""
        return self.tune_on != "train"

    @classmethod
    def pooled(
        cls,
        method: str,
        tune_on: str,
        grid: SpotGrid,
        regions: Sequence[str],
        folds: Sequence[SpotFold],
        videos: Sequence[SpotVideo],
        started: float,
        **extra: Any,
    ) -> Self:
        """The result of ``folds``: their predictions pooled in fold order and scored over
        every video, the seconds since ``started`` (``time.perf_counter``); ``extra``: a
        subclass's fields."""
        pooled = tuple(p for f in folds for p in f.predictions)
        return cls(
            method=method,
            tune_on=tune_on,
            grid=grid,
            regions=tuple(regions),
            folds=tuple(folds),
            predictions=pooled,
            score=score_videos(pooled, videos),
            duration_s=time.perf_counter() - started,
            videos=tuple(videos),
            **extra,
        )


def loso_folds(videos: Sequence[SpotVideo]) -> list[tuple[str, list[SpotVideo], list[SpotVideo]]]:
    """(test subject, training videos, test videos) per subject, in subject order."""
    subjects = sorted({v.subject for v in videos})
    if len(subjects) < 2:
        raise InvalidArgumentError(
            f"leave-one-subject-out needs two subjects at least, got {len(subjects)}"
        )
    return [
        (s, [v for v in videos if v.subject != s], [v for v in videos if v.subject == s])
        for s in subjects
    ]


def spot_loso(
    videos: Sequence[SpotVideo],
    method: str,
    grid: SpotGrid | None = None,
    regions: Sequence[str] = DEFAULT_REGIONS,
    *,
    tune_on: str = "train",
) -> SpotResult:
    """Leave-one-subject-out spotting: per fold, values tuned on the training subjects'
    videos (``tune_on="test"``: on the test subject's, LEAKY), the test subject spotted with
    them; every fold's predictions pooled and scored over every video."""
    if tune_on not in TUNE_ON:
        raise InvalidArgumentError(f"tune_on must be one of {TUNE_ON}, got {tune_on!r}")
    grid = grid or SpotGrid()
    started = time.perf_counter()
    cache = _Cache(method, regions)
    folds = []
    for index, (subject, train, test) in enumerate(loso_folds(videos)):
        tuning_videos = train if tune_on == "train" else test
        tuned = tune(tuning_videos, method, grid, regions, _cache=cache)
        predictions = [p for v in test for p in cache.spot(v, tuned.params)]
        folds.append(
            SpotFold(
                index=index,
                test_subject=subject,
                tuned_on=tuple(sorted({v.subject for v in tuning_videos})),
                tuned=tuned,
                videos=tuple(v.key for v in test),
                predictions=tuple(predictions),
                score=score_videos(predictions, test),
            )
        )
    return SpotResult.pooled(method, tune_on, grid, regions, folds, videos, started)
