"""Learned spotting speed on CPU over a CAS(ME)^2-sized set: the data path's share of a fold.

    python bench/learned_spotting.py [--folds 4] [--repeats 2] [--preset quick] [--all]

The set: planted synthetic region motion (``synth.long_motion.planted_motion_set``) of 22
subjects x 4 videos of 4,900 frames at 30 fps (431,200 frames, CAS(ME)^2's 0.43 M; 1 ME and
3 MaEs in three videos of each subject, the fourth without expressions), at ks 6 and 12.
Generating it is timed apart.

Per fold (``learned.learned_fold``, one test subject, the preset's whole schedule: a network
per k tried on the fitting subjects, the validation scored and tuned after every epoch, the
retraining on all training subjects, the test subject's curves), the seconds of:

  data      the data path: each bank's features read from the videos in bulk, divided by the
            training scale and padded (once per network), and every batch's windows cut from
            it (``learned_data.Bank``), for training and for scoring;
  train     forward, backward and optimiser steps;
  predict   the forward passes that score validation and test windows;
  tune      the rest: peaks, intervals and F1 over the grid on the validation subjects.

The chosen folds (``--folds``, spread over the 22, or ``--all``) are run in turn and the turn
repeated ``--repeats`` times (fold order a b c .. a b c ..: a slow spell of the shared machine
falls on every fold alike); each figure is the median over repeats, then the data path's share
of all the folds' seconds. torch runs on one thread (``learned_train.one_thread``).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from mer_prep.spotting.learned import learned_fold, settings_of
from mer_prep.spotting.learned_result import PRESETS
from mer_prep.spotting.learned_train import Timer, one_thread
from mer_prep.spotting.spotters import DEFAULT_REGIONS
from mer_prep.spotting.tuning import SpotGrid, group_videos, loso_folds
from mer_prep.synth.long_motion import planted_motion_set

SUBJECTS, VIDEOS, FRAMES, KS = 22, 4, 4900, (6, 12)


def casme2_sized(seed: int = 0):
    """(videos, seconds to make them)."""
    began = time.perf_counter()
    motions, truths = planted_motion_set(
        n_subjects=SUBJECTS, videos_per_subject=VIDEOS, ks=KS, seed=seed, n_frames=FRAMES,
        n_me=1, n_mae=3,
    )  # fmt: skip
    return group_videos(motions, truths), time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folds", type=int, default=4)
    parser.add_argument("--all", action="store_true", help="every one of the 22 folds")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--preset", default="quick", choices=sorted(PRESETS))
    args = parser.parse_args()
    videos, made_s = casme2_sized()
    n_frames = sum(v.first.n_frames for v in videos)
    print(f"set: {len(videos)} videos, {n_frames} frames, ks {KS}, made in {made_s:.1f} s")
    settings = PRESETS[args.preset]
    method = "mtsn" if settings.multi_k else "softnet"
    settings_of(method, settings)  # the preset fits the method
    folds = loso_folds(videos)
    n = len(folds) if args.all else min(args.folds, len(folds))
    chosen = sorted({int(i) for i in np.linspace(0, len(folds) - 1, n)})
    print(f"preset {settings.name} ({method}), folds {chosen} of {len(folds)}, "
          f"{args.repeats} repeats, torch on 1 thread")  # fmt: skip
    seconds: dict[int, list[tuple[float, float, float, float]]] = {i: [] for i in chosen}
    with one_thread():
        for _ in range(args.repeats):
            for index in chosen:
                subject, train, test = folds[index]
                timer = Timer()
                began = time.perf_counter()
                learned_fold(
                    index, subject, train, test, method, settings, SpotGrid(),
                    DEFAULT_REGIONS, 0, "train", timer,
                )  # fmt: skip
                wall = time.perf_counter() - began
                seconds[index].append((wall, timer.data_s, timer.train_s, timer.predict_s))
    print(f"{'fold':>5} {'s/fold':>8} {'data s':>8} {'data %':>7} {'train s':>8} "
          f"{'predict s':>9} {'tune s':>7}")  # fmt: skip
    totals = np.zeros(4)
    for index in chosen:
        wall, data, train, predict = (
            statistics.median(x) for x in zip(*seconds[index], strict=True)
        )
        totals += (wall, data, train, predict)
        print(f"{index:>5} {wall:8.1f} {data:8.2f} {100 * data / wall:6.2f}% {train:8.1f} "
              f"{predict:9.2f} {wall - data - train - predict:7.1f}")  # fmt: skip
    wall, data, train, predict = totals
    tune = wall - data - train - predict
    print(f"all {len(chosen)} folds: {wall:.1f} s, data path {data:.2f} s = "
          f"{100 * data / wall:.2f} % (train {100 * train / wall:.1f} %, predict "
          f"{100 * predict / wall:.1f} %, tune {100 * tune / wall:.1f} %)")  # fmt: skip
    print(f"all {len(folds)} folds, estimated: {wall / len(chosen) * len(folds) / 60:.1f} min")


if __name__ == "__main__":
    main()
