"""Learned spotters, leave one subject out: a shallow network per fold, trained on the
training subjects only, and everything it is spotted with chosen on them too.

    result = spot_learned_loso(videos, "softnet", seed=0)            # LearnedSpotResult
    result = spot_any(videos, "threshold")   # any method: training-free ones go to spot_loso

Per fold (one test subject), with the run's ``seed`` turned into the fold's seed as the
recognition models do (``fold_seed``):

1. the training subjects are split: ``val_fraction`` of them (one at least; drawn from the
   fold's seed) *validate*, the rest *fit*;
2. for each candidate pair distance k (every stored k of the grid, or SOFTNet's rule on the
   training subjects' mean expression length), a network is fitted for ``settings.epochs``
   epochs; after every epoch the validation videos are scored and the spotting values
   (``p``, ``smooth``, ``rel``, the ME/MaE length windows: the grid of the training-free
   spotters) tuned on them (``tuning.best_point``); the (k, epoch, values) of the highest
   validation F1 wins (the first of equals: smaller k, earlier epoch);
3. a network is trained again on *all* training subjects for that many epochs, at that k,
   with the fold's seed, and the test subject's videos are spotted with it and the values.

The test subject's motion and truths are read in step 3 only, after every choice
(``LearnedFold.tuned_on`` lists the subjects that trained and chose: the test subject is never
among them). ``tune_on="test"`` instead fits on all training subjects and chooses the epoch,
k and values on the test subject (LEAKY, as for the training-free spotters).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from mer_prep.errors import InvalidArgumentError
from mer_prep.spotting.learned_result import (
    PRESETS,
    CurveCache,
    LearnedFold,
    LearnedSettings,
    LearnedSpotResult,
)
from mer_prep.spotting.methods import LEARNED_METHODS, METHODS
from mer_prep.spotting.spotters import DEFAULT_REGIONS
from mer_prep.spotting.tuning import (
    TUNE_ON,
    SpotGrid,
    SpotResult,
    SpotVideo,
    Tuned,
    best_point,
    loso_folds,
    score_videos,
    shared_ks,
    spot_loso,
)

if TYPE_CHECKING:  # torch is imported when a network is trained, not with this module
    from mer_prep.spotting.learned_train import Timer


def fold_seed(seed: int, index: int) -> int:
    """The seed of fold ``index``: the recognition models' derivation (``train.data.
    fold_seed``; spotting sits beside ``train`` in the layers and cannot import it)."""
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1)[0])


def settings_of(method: str, preset: str | LearnedSettings | None) -> LearnedSettings:
    """The settings of ``method``: its paper preset by default, a preset's name, or given."""
    if method not in LEARNED_METHODS:
        raise InvalidArgumentError(
            f"unknown learned spotting method {method!r} (known: {', '.join(LEARNED_METHODS)})"
        )
    if isinstance(preset, LearnedSettings):
        chosen = preset
    elif (preset or method) in PRESETS:
        chosen = PRESETS[preset or method]
    else:
        raise InvalidArgumentError(f"unknown preset {preset!r} (known: {', '.join(PRESETS)})")
    if chosen.multi_k != (method == "mtsn"):
        raise InvalidArgumentError(
            f"preset {chosen.name} is {'multi' if chosen.multi_k else 'single'}-k; method "
            f"{method} needs {'several ks' if method == 'mtsn' else 'one k'}"
        )
    return chosen


def inner_split(subjects: Sequence[str], fraction: float, seed: int) -> tuple[list, list]:
    """(fitting subjects, validating subjects) of ``subjects``: ``round(fraction n)`` of them
    (one at least, all but one at most) validate, drawn with ``seed``."""
    ordered = sorted(subjects)
    if len(ordered) < 2:
        raise InvalidArgumentError(
            f"a learned spotter needs two training subjects at least (one to fit, one to "
            f"choose the epochs and values on), got {len(ordered)}"
        )
    n_val = min(len(ordered) - 1, max(1, round(fraction * len(ordered))))
    drawn = np.random.default_rng(seed).permutation(len(ordered))
    val = sorted(ordered[i] for i in drawn[:n_val])
    return [s for s in ordered if s not in val], val


def candidate_ks(videos: Sequence[SpotVideo], settings: LearnedSettings, grid: SpotGrid) -> list:
    """The ks tried: the grid's stored ks, or (``k_rule="softnet"``) the one nearest to
    ``(mean truth length + 1) / 2`` over ``videos`` (a fold's training subjects; smaller of
    equals; the first stored k when they hold no truth)."""
    stored = shared_ks(videos)
    allowed = [k for k in (grid.ks or stored) if k in stored]
    if not allowed:
        raise InvalidArgumentError(f"none of the grid's ks {grid.ks} is stored ({stored})")
    lengths = [t.offset - t.onset + 1 for v in videos for t in v.truths]
    if settings.k_rule == "tuned" or not lengths:
        return allowed
    target = (float(np.mean(lengths)) + 1.0) / 2.0
    return [min(allowed, key=lambda k: (abs(k - target), k))]


def stream_ks(k: int, stored: Sequence[int], settings: LearnedSettings) -> tuple[int, ...]:
    """The ks the network reads: ``k`` alone, or ``k`` then every other stored k (MTSN)."""
    if not settings.multi_k:
        return (k,)
    others = tuple(s for s in sorted(stored) if s != k)
    if not others:
        raise InvalidArgumentError(f"the multi-temporal spotter needs two ks, stored: {stored}")
    return (k, *others)


@dataclass
class _Choice:
    k: int
    epoch: int
    streams: tuple[int, ...]
    tuned: Tuned
    floor: float
    raw: dict


def _choose(
    ks: Sequence[int],
    fit_videos: Sequence[SpotVideo],
    val_videos: Sequence[SpotVideo],
    method: str,
    settings: LearnedSettings,
    grid: SpotGrid,
    regions: Sequence[str],
    seed: int,
    timer: Timer,
    memo: dict,
) -> tuple[_Choice, tuple[tuple[int, int, float], ...]]:
    """The (k among ``ks``, epoch, spotting values) of the highest F1 on ``val_videos`` for
    networks fitted on ``fit_videos``, and every (k, epoch, best F1) tried (``memo``: the
    fold's features read so far, ``Bank.of``)."""
    from mer_prep.spotting.learned_data import Bank
    from mer_prep.spotting.learned_train import fit, frame_curves

    stored = shared_ks([*fit_videos, *val_videos])
    best: list[_Choice] = []
    tried: list[tuple[int, int, float]] = []
    for k in ks:
        streams = stream_ks(k, stored, settings)
        began = time.perf_counter()
        fit_bank = Bank.of(fit_videos, streams, regions, settings.window, memo=memo)
        val_bank = Bank.of(val_videos, streams, regions, settings.window, fit_bank.scale, memo)
        timer.data_s += time.perf_counter() - began
        points = list(grid.points([k], val_videos[0].fps))

        def on_epoch(epoch, net, k=k, streams=streams, val_bank=val_bank, points=points):
            curves = frame_curves(net, val_bank, k, timer)
            raw = {(key, k): c for key, c in curves.items()}
            cache = CurveCache(method, regions, raw)
            f1 = 0.0
            for floor in settings.floors:  # one cache: the peaks do not depend on the floor
                cache.floor = floor
                tuned = best_point(val_videos, points, cache)
                f1 = max(f1, tuned.f1)
                if not best or tuned.f1 > best[0].tuned.f1:
                    best[:] = [_Choice(k, epoch, streams, tuned, floor, raw)]
            tried.append((k, epoch, f1))

        fit(fit_bank, settings, seed=seed, epochs=settings.epochs, timer=timer, on_epoch=on_epoch)
    return best[0], tuple(tried)


def learned_fold(
    index: int,
    subject: str,
    train: Sequence[SpotVideo],
    test: Sequence[SpotVideo],
    method: str,
    settings: LearnedSettings,
    grid: SpotGrid,
    regions: Sequence[str],
    seed: int,
    tune_on: str,
    timer: Timer,
) -> tuple[LearnedFold, dict[tuple[str, int], NDArray[np.float32]]]:
    """Fold ``index`` (test subject ``subject``; ``train`` / ``test`` its videos, as
    ``tuning.loso_folds`` gives them) with the run's ``seed``: the fold and the test videos'
    raw curves {(video key, k): (n_frames,) float32}. ``timer`` adds the fold's seconds."""
    from mer_prep.spotting.learned_data import Bank
    from mer_prep.spotting.learned_train import fit, frame_curves

    seed = fold_seed(seed, index)
    train_subjects = sorted({v.subject for v in train})
    memo: dict = {}  # each video's features read once in the fold, whatever network reads them
    ks = candidate_ks(train, settings, grid)  # SOFTNet's rule: over every training subject
    if tune_on == "test":  # LEAKY: the test subject chooses the epoch, k and values
        fit_on, val_on = train_subjects, [subject]
        choice, tried = _choose(ks, train, test, method, settings, grid, regions, seed, timer, memo)
        raw = choice.raw
    else:
        fit_on, val_on = inner_split(train_subjects, settings.val_fraction, seed)
        fitting = [v for v in train if v.subject in fit_on]
        validating = [v for v in train if v.subject in val_on]
        choice, tried = _choose(
            ks, fitting, validating, method, settings, grid, regions, seed, timer, memo
        )
        began = time.perf_counter()
        bank = Bank.of(train, choice.streams, regions, settings.window, memo=memo)
        test_bank = Bank.of(test, choice.streams, regions, settings.window, bank.scale, memo)
        timer.data_s += time.perf_counter() - began
        net = fit(bank, settings, seed=seed, epochs=choice.epoch, timer=timer)
        curves = frame_curves(net, test_bank, choice.k, timer)
        raw = {(key, choice.k): c for key, c in curves.items()}
    cache = CurveCache(method, regions, raw, choice.floor)
    predictions = [p for v in test for p in cache.spot(v, choice.tuned.params)]
    fold = LearnedFold(
        index=index,
        test_subject=subject,
        tuned_on=tuple(sorted({*fit_on, *val_on})),
        tuned=choice.tuned,
        videos=tuple(v.key for v in test),
        predictions=tuple(predictions),
        score=score_videos(predictions, test),
        epochs=choice.epoch,
        ks=choice.streams,
        fit_on=tuple(fit_on),
        validated_on=tuple(val_on),
        floor=choice.floor,
        val_f1=tried,
        seed=seed,
    )
    return fold, raw


def spot_learned_loso(
    videos: Sequence[SpotVideo],
    method: str,
    *,
    seed: int = 0,
    preset: str | LearnedSettings | None = None,
    tune_on: str = "train",
    grid: SpotGrid | None = None,
    regions: Sequence[str] = DEFAULT_REGIONS,
) -> LearnedSpotResult:
    """Leave-one-subject-out learned spotting (module docstring); ``preset``: the method's
    paper preset by default (:data:`~mer_prep.spotting.learned_result.PRESETS`)."""
    from mer_prep.spotting.learned_train import Timer, one_thread

    settings = settings_of(method, preset)
    if tune_on not in TUNE_ON:
        raise InvalidArgumentError(f"tune_on must be one of {TUNE_ON}, got {tune_on!r}")
    grid = grid or SpotGrid()
    started, timer = time.perf_counter(), Timer()
    with one_thread():
        folds = [
            learned_fold(
                index, subject, train, test, method, settings, grid, regions, seed, tune_on, timer
            )
            for index, (subject, train, test) in enumerate(loso_folds(videos))
        ]
    raw = {key: curve for _, curves in folds for key, curve in curves.items()}
    return LearnedSpotResult.pooled(
        method,
        tune_on,
        grid,
        regions,
        [fold for fold, _ in folds],
        videos,
        started,
        settings=settings,
        seed=seed,
        timings=timer.as_dict(),
        cache=CurveCache(method, regions, raw),
    )


def spot_any(videos: Sequence[SpotVideo], method: str, **options: Any) -> SpotResult:
    """Leave-one-subject-out spotting with any method of ``methods.ALL_METHODS``: a
    training-free one (``spot_loso``; ``options``: ``grid``, ``regions``, ``tune_on``) or a
    learned one (:func:`spot_learned_loso`; also ``seed`` and ``preset``, which a
    training-free method has no use for and drops)."""
    if method in METHODS:
        options.pop("seed", None)
        options.pop("preset", None)
        return spot_loso(videos, method, **options)
    return spot_learned_loso(videos, method, **options)
