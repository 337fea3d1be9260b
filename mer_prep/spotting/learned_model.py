"""The learned spotters' networks: shallow multi-stream CNNs regressing a per-pair score.

    net = ShallowSpotNet(n_regions=4, window=9)            # SOFTNet-like, one k
    net = MultiTemporalSpotNet(n_ks=2, n_regions=4, window=9)   # MTSN-like, two ks
    score = net(x)      # x (B, 3 n_ks, R, T) float32 -> (B,) float32 in [0, 1]

Input: a window of T pairs (frame ``i`` to ``i + k``) centred on the pair scored, three
streams (flow magnitude, main-directional magnitude, optical strain) over R regions: the
region time series of a long-video store, where SOFTNet reads 42x42 flow and strain crops of
one pair. Each stream has its own small branch (a 1-D convolution along time with the regions
as channels: SOFTNet's one 2-D convolution per stream, on the regions' time series); the
branches are concatenated, max-pooled over time, and a dense layer regresses the score
(sigmoid; SOFTNet's output is linear: a sigmoid keeps the score in [0, 1], the range of its
pseudo-labels). The MTSN-like net has one such trunk per k and one head over all of them.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class StreamTrunk(nn.Module):
    """One branch per stream (Conv1d over time, regions as channels, ReLU), concatenated and
    max-pooled by 2 over time: (B, S, R, T) -> (B, features) float32."""

    def __init__(self, n_streams: int, n_regions: int, window: int, widths: Sequence[int]):
        super().__init__()
        chosen = [widths[s % len(widths)] for s in range(n_streams)]
        self.branches = nn.ModuleList(
            nn.Sequential(nn.Conv1d(n_regions, w, kernel_size=3, padding=1), nn.ReLU())
            for w in chosen
        )
        self.pool = nn.MaxPool1d(2, ceil_mode=True)
        self.features = sum(chosen) * ((window + 1) // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        streams = [branch(x[:, s]) for s, branch in enumerate(self.branches)]
        return self.pool(torch.cat(streams, dim=1)).flatten(1)


def _head(features: int, hidden: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(features, hidden), nn.ReLU(), nn.Linear(hidden, 1))


class ShallowSpotNet(nn.Module):
    """SOFTNet-like: three streams at one k. ``forward``: (B, 3, R, T) float32 -> (B,) float32
    in [0, 1], the score of each window's centre pair."""

    def __init__(
        self,
        n_regions: int,
        window: int,
        widths: Sequence[int] = (3, 5, 8),
        hidden: int = 400,
        n_streams: int = 3,
    ):
        super().__init__()
        self.trunk = StreamTrunk(n_streams, n_regions, window, widths)
        self.head = _head(self.trunk.features, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.head(self.trunk(x))).squeeze(1)


class MultiTemporalSpotNet(nn.Module):
    """MTSN-like: one three-stream trunk per pair distance (the streams of ``x`` k after k,
    aligned by the pair's first frame) and one head over their features. ``forward``:
    (B, 3 n_ks, R, T) float32 -> (B,) float32 in [0, 1]."""

    def __init__(
        self,
        n_ks: int,
        n_regions: int,
        window: int,
        widths: Sequence[int] = (3, 5, 8),
        hidden: int = 400,
    ):
        super().__init__()
        self.trunks = nn.ModuleList(StreamTrunk(3, n_regions, window, widths) for _ in range(n_ks))
        self.head = _head(sum(t.features for t in self.trunks), hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = [trunk(x[:, 3 * j : 3 * j + 3]) for j, trunk in enumerate(self.trunks)]
        return torch.sigmoid(self.head(torch.cat(parts, dim=1))).squeeze(1)


def build_spot_net(
    n_ks: int, n_regions: int, window: int, widths: Sequence[int], hidden: int, multi_k: bool
) -> nn.Module:
    """The SOFTNet-like net (``multi_k`` False, ``n_ks`` 1) or the MTSN-like one."""
    if multi_k:
        return MultiTemporalSpotNet(n_ks, n_regions, window, widths, hidden)
    return ShallowSpotNet(n_regions, window, widths, hidden, n_streams=3 * n_ks)
