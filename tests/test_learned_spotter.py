"""Learned spotters (issue 24 item 1): the SOFTNet-like and MTSN-like networks trained per LOSO
fold on planted synthetic motion spot far above random intervals of the same count and above
the training-free spotters; trained on shuffled truths they score at chance; a fold's choices
never read its test subject; the same seed gives the same predictions; the run is recorded
like the training-free ones (LEAKY when tuned on the test subject)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from mer_prep.errors import InvalidArgumentError
from mer_prep.evaluation.spotting import score_spotting
from mer_prep.evaluation.spotting_intervals import SpotTruth
from mer_prep.spotting import learned_data
from mer_prep.spotting.learned import (
    candidate_ks,
    inner_split,
    settings_of,
    spot_any,
    spot_learned_loso,
)
from mer_prep.spotting.learned_data import Bank, pair_features, pseudo_labels
from mer_prep.spotting.learned_model import MultiTemporalSpotNet, ShallowSpotNet
from mer_prep.spotting.learned_result import PRESETS, LearnedSettings
from mer_prep.spotting.records import list_spot_runs, save_spot_run, spot_record
from mer_prep.spotting.spotters import smooth_curve
from mer_prep.spotting.tuning import SpotGrid, SpotVideo, group_videos, spot_loso
from mer_prep.store.repo import StoreLocation, open_repository
from mer_prep.synth.long_motion import planted_motion_set

KS = (4, 8)
#: a small grid and a short schedule: the fast tier's runs take a second or two each
GRID = SpotGrid(ps=(0.3, 0.5), smooths=(1,), rels=(0.5,), splits_s=(0.5,))
TINY = dataclasses.replace(
    PRESETS["quick"], name="tiny", epochs=2, hidden=16, negatives_per_positive=2.0
)
TINY_MTSN = dataclasses.replace(TINY, name="tiny-mtsn", multi_k=True)


def _videos(n_subjects: int, seed: int = 0, n_frames: int = 600) -> list[SpotVideo]:
    motions, truths = planted_motion_set(n_subjects=n_subjects, ks=KS, seed=seed, n_frames=n_frames)
    return group_videos(motions, truths)


@pytest.fixture(scope="module")
def small() -> list[SpotVideo]:
    return _videos(3, n_frames=300)


@pytest.fixture(scope="module")
def tiny_run(small):
    return spot_learned_loso(small, "softnet", grid=GRID, seed=3, preset=TINY)


def _keys(videos):
    return [v.key for v in videos]


def _truths(videos):
    return [t for v in videos for t in v.truths]


def _moved_at_random(intervals, videos, rng) -> list:
    """Every interval moved to a random place of its video, same kind and length."""
    n_frames = {v.key: v.first.n_frames for v in videos}
    starts = [int(rng.integers(1, n_frames[i.video_key] - i.length + 2)) for i in intervals]
    return [
        dataclasses.replace(i, onset=s, offset=s + i.length - 1)
        for i, s in zip(intervals, starts, strict=True)
    ]


def _random_baseline(predictions, videos, n: int = 50) -> float:
    """Overall F1 of ``predictions`` each moved to a random place (same count, kinds and
    lengths), averaged over ``n`` draws."""
    rng = np.random.default_rng(0)
    f1 = [
        score_spotting(_moved_at_random(predictions, videos, rng), _truths(videos), _keys(videos))
        for _ in range(n)
    ]
    return float(np.mean([s.overall.f1 for s in f1]))


# --- inputs: pseudo-labels, streams, windows ----------------------------------------------------


def test_pseudo_labels_mark_the_pairs_whose_frames_overlap_a_truth(small):
    video = small[0]
    motion = video.motions[4]
    first = int(motion.frame_numbers[0])
    truth = SpotTruth(video=video.key.rpartition("/")[2], subject=video.subject,
                      onset=first + 20, offset=first + 24, kind="me")  # fmt: skip
    labels = pseudo_labels(dataclasses.replace(video, truths=(truth,)), 4)
    # pair i spans frames i .. i + 4: it overlaps 20..24 for i in 16..24
    assert np.flatnonzero(labels).tolist() == list(range(16, 25))
    assert labels.dtype == np.float32 and len(labels) == motion.n_pairs


def test_streams_are_aligned_by_first_frame_and_windows_padded(small):
    video = small[0]
    feats = pair_features(video, (4, 8), ("brow_left", "mouth_left"))
    m4, m8 = video.motions[4], video.motions[8]
    assert feats.shape == (m4.n_pairs, 6, 2)
    assert np.array_equal(feats[:, 0, 1], m4.magnitude[:, m4.column("mouth_left")])
    assert np.array_equal(feats[: m8.n_pairs, 5, 0], m8.strain[:, m8.column("brow_left")])
    assert not feats[m8.n_pairs :, 3:].any()  # past k=8's last pair: zeros
    bank = Bank.of([video], (4, 8), ("brow_left", "mouth_left"), window=5)
    x = bank.windows(torch.tensor([0, 10]))
    assert x.shape == (2, 6, 2, 5)
    assert not x[0, :, :, :2].any()  # the first pair's two earlier rows: padding
    expected = feats[8:13] / bank.scale[None, :, None]
    assert np.allclose(x[1].permute(2, 0, 1).numpy(), expected)


def test_the_networks_score_each_window_in_the_unit_interval():
    x = torch.randn(7, 6, 4, 9)
    for net in (ShallowSpotNet(4, 9, hidden=8, n_streams=6), MultiTemporalSpotNet(2, 4, 9)):
        with torch.no_grad():
            score = net(x)
        assert score.shape == (7,) and score.dtype == torch.float32
        assert float(score.min()) >= 0.0 and float(score.max()) <= 1.0


def test_settings_and_method_checks(small):
    assert settings_of("softnet", None).name == "softnet"
    assert settings_of("mtsn", None).multi_k
    with pytest.raises(InvalidArgumentError, match="single-k"):
        settings_of("mtsn", "softnet")
    with pytest.raises(InvalidArgumentError, match="unknown learned"):
        settings_of("nope", None)
    with pytest.raises(InvalidArgumentError, match="window"):
        LearnedSettings(name="x", window=4)
    with pytest.raises(InvalidArgumentError, match="two training subjects"):
        inner_split(["s1"], 0.4, 0)
    # SOFTNet's k: (mean truth length + 1) / 2 = (14 + 1) / 2 = 7.5 -> the stored 8
    video = small[0]
    truths = tuple(
        SpotTruth(video=video.key.rpartition("/")[2], subject=video.subject, onset=10,
                  offset=10 + length - 1, kind="me")
        for length in (13, 15)
    )  # fmt: skip
    with_truths = [dataclasses.replace(video, truths=truths)]
    assert candidate_ks(with_truths, PRESETS["softnet"], SpotGrid()) == [8]
    assert candidate_ks(with_truths, PRESETS["quick"], SpotGrid()) == [4, 8]
    fit_on, val_on = inner_split(["a", "b", "c", "d", "e"], 0.4, 0)
    assert len(val_on) == 2 and sorted(fit_on + val_on) == ["a", "b", "c", "d", "e"]
    # a training-free method goes to spot_loso unchanged
    assert (
        spot_any(small, "threshold", grid=GRID, seed=1).score
        == spot_loso(small, "threshold", GRID).score
    )


# --- the folds: training subjects only, seeds, records ------------------------------------------


def test_a_fold_never_reads_its_test_subject_before_spotting_it(small, monkeypatch):
    calls: list[tuple[frozenset, bool]] = []
    real = Bank.of.__func__  # type: ignore[attr-defined]

    def spy(cls, videos, ks, regions, window, scale=None, memo=None):
        calls.append((frozenset(v.subject for v in videos), scale is not None))
        return real(cls, videos, ks, regions, window, scale, memo)

    monkeypatch.setattr(learned_data.Bank, "of", classmethod(spy))
    result = spot_learned_loso(small, "softnet", grid=GRID, seed=3, preset=TINY)
    subjects = sorted({v.subject for v in small})
    per_fold = 2 * len(KS) + 2  # (fit, validate) per k tried, then (train, test)
    assert len(calls) == per_fold * len(subjects)
    for index, fold in enumerate(result.folds):
        mine = calls[index * per_fold : (index + 1) * per_fold]
        assert all(fold.test_subject not in seen for seen, _ in mine[:-1])
        assert mine[-1] == (frozenset({fold.test_subject}), True)  # the training scale
        others = set(subjects) - {fold.test_subject}
        assert set(fold.tuned_on) == others == set(fold.fit_on) | set(fold.validated_on)
        assert not set(fold.fit_on) & set(fold.validated_on)
        assert 1 <= fold.epochs <= TINY.epochs and fold.ks[0] in KS


def test_the_same_seed_gives_the_same_predictions(small, tiny_run):
    again = spot_learned_loso(small, "softnet", grid=GRID, seed=3, preset=TINY)
    assert list(again.predictions) == list(tiny_run.predictions)
    assert tiny_run.cache is not None and again.cache is not None
    for key, curve in tiny_run.cache.raw.items():
        assert np.array_equal(curve, again.cache.raw[key])
    other = spot_learned_loso(small, "softnet", grid=GRID, seed=4, preset=TINY)
    assert other.cache is not None
    assert any(
        not np.array_equal(curve, other.cache.raw.get(key, curve * 0))
        for key, curve in tiny_run.cache.raw.items()
    )


def test_a_learned_run_is_recorded_with_its_training(tmp_path, small, tiny_run):
    path = tmp_path / "store"
    open_repository(StoreLocation.parse(str(path)), create=True)
    record = spot_record(tiny_run, store={"location": str(path)})
    baseline = spot_record(spot_loso(small, "threshold", GRID), store={"location": str(path)})
    save_spot_run(str(path), record)
    (back,) = list_spot_runs(str(path))
    assert back.method == "softnet" and not back.leaky
    assert set(baseline.attrs) <= set(back.attrs)  # the training-free fields, unchanged
    assert set(baseline.folds[0]) <= set(back.folds[0])
    assert back.training is not None and back.training["settings"]["name"] == "tiny"
    assert back.training["seed"] == 3 and baseline.training is None
    assert [f["epochs"] for f in back.folds] == [f.epochs for f in tiny_run.folds]
    assert back.metrics["overall"]["f1"] == pytest.approx(tiny_run.score.overall.f1)
    # the curve drawn is the network's curve the test subject was spotted on
    video = small[0]
    fold = next(f for f in tiny_run.folds if video.key in f.videos)
    _, curve, _ = back.curve(video.key)
    assert tiny_run.cache is not None
    raw = tiny_run.cache.raw[(video.key, fold.ks[0])]
    assert np.allclose(curve, smooth_curve(raw, fold.tuned.params.smooth))


def test_choosing_on_the_test_subject_is_leaky(small):
    leaky = spot_learned_loso(small, "softnet", grid=GRID, seed=3, preset=TINY, tune_on="test")
    assert leaky.leaky
    assert all(f.validated_on == (f.test_subject,) for f in leaky.folds)
    assert spot_record(leaky, store={}).leaky


def test_the_multi_temporal_spotter_reads_every_k(small):
    result = spot_learned_loso(small, "mtsn", grid=GRID, seed=1, preset=TINY_MTSN)
    assert all(sorted(f.ks) == list(KS) for f in result.folds)
    assert result.cache is not None and len(result.cache.raw) == len(small)


# --- spotting quality against ground truth ------------------------------------------------------


def test_even_two_epochs_on_two_subjects_spot_far_above_random_intervals(small, tiny_run):
    # 3 subjects of 300 frames: each fold fits 1 subject, validates on 1 (F1 0.6-0.77 over
    # seeds 0, 1, 3; random intervals of the same count about 0.07)
    f1 = tiny_run.score.overall.f1
    assert f1 > 0.5 and f1 > 5 * _random_baseline(list(tiny_run.predictions), small)


@pytest.fixture(scope="module")
def six() -> list[SpotVideo]:
    return _videos(6)


@pytest.mark.slow  # 6 folds x 3 networks and the training-free runs: 1.5-8 min on 2 busy cores
@pytest.mark.parametrize("method,preset", [("softnet", "quick"), ("mtsn", "quick-mtsn")])
def test_learned_spotters_beat_random_intervals_and_the_training_free_ones(six, method, preset):
    result = spot_learned_loso(six, method, seed=0, preset=preset)
    f1 = result.score.overall.f1
    random_f1 = _random_baseline(list(result.predictions), six)
    training_free = max(spot_loso(six, m).score.overall.f1 for m in ("mdmd", "threshold"))
    assert f1 > 0.8 and f1 > 10 * random_f1
    assert f1 > training_free  # the score floor chosen on training subjects: docs/spotting.md


@pytest.mark.slow
def test_trained_on_shuffled_truths_the_learned_spotter_scores_at_chance(six):
    rng = np.random.default_rng(1)
    shuffled = [
        dataclasses.replace(v, truths=tuple(_moved_at_random(v.truths, six, rng))) for v in six
    ]
    result = spot_learned_loso(shuffled, "softnet", seed=0, preset="quick")
    real = score_spotting(list(result.predictions), _truths(six), _keys(six)).overall.f1
    honest = spot_learned_loso(six, "softnet", seed=0, preset="quick").score.overall.f1
    assert real < 0.2 and real < honest / 4
