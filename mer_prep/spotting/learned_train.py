"""Training a learned spotter on one bank of pairs, and its score curves.

    timer = Timer()
    net = fit(bank, settings, seed=0, epochs=10, timer=timer, on_epoch=lambda e, net: ...)
    curves = frame_curves(net, bank, k, timer)     # {video key: (n_frames,) float32}

Seeded: the network's initial weights come from ``torch.manual_seed(seed)`` inside a forked
torch RNG (the caller's RNG state is left as it was) and the windows' order and the drawn
negatives from ``numpy.random.default_rng(seed)``; on CPU the same seed gives the same weights
and the same curves. Loss: mean squared error against the pseudo-labels (SOFTNet regresses
them). ``timer`` adds the seconds spent cutting windows (the data path) apart from the
forward and backward passes.

Both run on one CPU thread (:func:`one_thread`): the networks are a few thousand weights, too
small for intra-op threads to pay, and on a busy CPU their spin-waits made a step 10-20 times
slower (measured: 6 ms against 100 ms a step, batch 64, 2 cores under load).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from mer_prep.spotting.learned_data import Bank
from mer_prep.spotting.learned_model import build_spot_net
from mer_prep.spotting.learned_result import LearnedSettings
from mer_prep.spotting.spotters import frame_difference

#: windows scored per forward pass when predicting (memory, not results)
PREDICT_ROWS = 8192


@dataclass
class Timer:
    """Seconds: ``data_s`` reading features and cutting windows, ``train_s`` forward and
    backward passes and optimiser steps, ``predict_s`` scoring windows."""

    data_s: float = 0.0
    train_s: float = 0.0
    predict_s: float = 0.0

    def as_dict(self) -> dict[str, float]:
        return {"data_s": self.data_s, "train_s": self.train_s, "predict_s": self.predict_s}


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """torch on one intra-op thread for the duration (the caller's count restored after)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def epoch_rows(
    labels: NDArray[np.float32], negatives_per_positive: float | None, rng: np.random.Generator
) -> NDArray[np.int64]:
    """The rows one epoch trains on, shuffled: every row, or every positive and at most
    ``negatives_per_positive`` times as many negatives drawn without replacement."""
    if negatives_per_positive is None:
        return rng.permutation(len(labels)).astype(np.int64)
    positive = np.flatnonzero(labels > 0.5)
    negative = np.flatnonzero(labels <= 0.5)
    n = min(len(negative), max(1, int(round(negatives_per_positive * len(positive)))))
    drawn = rng.choice(negative, size=n, replace=False) if n else negative[:0]
    return rng.permutation(np.concatenate([positive, drawn])).astype(np.int64)


def _optimizer(net: nn.Module, settings: LearnedSettings) -> torch.optim.Optimizer:
    if settings.optimizer == "adam":
        return torch.optim.Adam(net.parameters(), lr=settings.lr)
    return torch.optim.SGD(net.parameters(), lr=settings.lr, momentum=settings.momentum)


def fit(
    bank: Bank,
    settings: LearnedSettings,
    *,
    seed: int,
    epochs: int,
    timer: Timer,
    on_epoch: Callable[[int, nn.Module], None] | None = None,
) -> nn.Module:
    """A network trained ``epochs`` epochs on ``bank`` (``on_epoch(epoch, net)`` after each,
    epochs counted from 1)."""
    n_streams, n_regions = bank.values.shape[1], bank.values.shape[2]
    n_ks = n_streams // 3
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = build_spot_net(
            n_ks, n_regions, bank.window, settings.widths, settings.hidden, settings.multi_k
        )
    rng = np.random.default_rng(seed)
    optimizer = _optimizer(net, settings)
    labels = torch.from_numpy(bank.labels)
    loss_of = nn.MSELoss()
    for epoch in range(1, epochs + 1):
        net.train()
        rows = torch.from_numpy(epoch_rows(bank.labels, settings.negatives_per_positive, rng))
        for start in range(0, len(rows), settings.batch_size):
            began = time.perf_counter()
            chosen = rows[start : start + settings.batch_size]
            x, y = bank.windows(chosen), labels[chosen]
            cut = time.perf_counter()
            loss = loss_of(net(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            timer.data_s += cut - began
            timer.train_s += time.perf_counter() - cut
        if on_epoch is not None:
            on_epoch(epoch, net)
    return net


def pair_scores(net: nn.Module, bank: Bank, timer: Timer) -> dict[str, NDArray[np.float32]]:
    """{video key: (n_pairs,) float32}, the net's score of every pair of ``bank``."""
    net.eval()
    parts = []
    with torch.no_grad():
        for start in range(0, len(bank), PREDICT_ROWS):
            began = time.perf_counter()
            x = bank.windows(torch.arange(start, min(start + PREDICT_ROWS, len(bank))))
            cut = time.perf_counter()
            parts.append(net(x).numpy())
            timer.data_s += cut - began
            timer.predict_s += time.perf_counter() - cut
    scores = np.concatenate(parts) if parts else np.zeros(0, np.float32)
    return {key: scores[span] for key, span in bank.spans}


def frame_curves(
    net: nn.Module, bank: Bank, k: int, timer: Timer
) -> dict[str, NDArray[np.float32]]:
    """{video key: (n_frames,) float32}: each frame's score, the mean of its pair from the
    head frame ``j - k`` and its pair to the tail frame ``j + k`` (``frame_difference``: as
    the training-free spotters turn pairs into frames)."""
    return {
        key: frame_difference(scores.astype(np.float64), k).astype(np.float32)
        for key, scores in pair_scores(net, bank, timer).items()
    }
