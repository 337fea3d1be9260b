"""What a learned spotter reads: per pair, the three motion streams over the regions, the
pseudo-label, and the windows of T pairs around each pair, cut in bulk.

    bank = Bank.of(videos, (4, 8), DEFAULT_REGIONS, window=9)   # per network, in bulk
    x, y = bank.windows(rows), bank.labels[rows]   # (B, S, R, T) float32, (B,) float32

The input of pair ``i`` (frame ``i`` to ``i + k``) is ``magnitude``, ``main_direction`` and
``strain`` of the regions (the store's region time series; SOFTNet reads 42x42 flow and strain
crops instead, which a long-video store does not keep) at each k of ``ks`` (``ks[0]``: the k
the score is learned at; the others aligned by the pair's first frame and zero past their
last pair), divided by each stream's standard deviation over the fitting videos (``scale``:
taken on the training subjects, then applied to any video).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import NDArray

from mer_prep.errors import InvalidArgumentError
from mer_prep.motion.video_motion import VideoMotion
from mer_prep.spotting.tuning import SpotVideo

STREAMS: tuple[str, ...] = ("magnitude", "main_direction", "strain")


def region_columns(motion: VideoMotion, regions: Sequence[str]) -> list[int]:
    """The columns of ``regions`` the video has (all of them when it has none: as
    ``spotters.score_curve``)."""
    columns = [motion.roi_names.index(r) for r in regions if r in motion.roi_names]
    return columns or list(range(len(motion.roi_names)))


def pair_features(
    video: SpotVideo, ks: Sequence[int], regions: Sequence[str]
) -> NDArray[np.float32]:
    """(n_pairs at ``ks[0]``, 3 len(ks), R) float32: per pair, the streams (``STREAMS`` order,
    k after k) of the regions; NaN and inf read as 0."""
    missing = [k for k in ks if k not in video.motions]
    if missing:
        raise InvalidArgumentError(
            f"{video.key}: no motion at k={missing} (stored: {sorted(video.motions)})"
        )
    head = video.motions[ks[0]]
    columns = region_columns(head, regions)
    out = np.zeros((head.n_pairs, 3 * len(ks), len(columns)), np.float32)
    for j, k in enumerate(ks):
        motion = video.motions[k]
        n = min(head.n_pairs, motion.n_pairs)
        for s, name in enumerate(STREAMS):
            out[:n, 3 * j + s] = np.asarray(getattr(motion, name), np.float32)[:n, columns]
    return np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0)


def pseudo_labels(video: SpotVideo, k: int) -> NDArray[np.float32]:
    """(n_pairs,) float32 at pair distance ``k``: 1 where the pair's frames (its first frame
    to its last, inclusive) overlap a truth of either kind, else 0 (SOFTNet's pseudo-label;
    one score for both kinds, whose kind the spotted extent's length decides)."""
    motion = video.motions[k]
    numbers = motion.frame_numbers
    first, last = numbers[: motion.n_pairs], numbers[k:]
    labels = np.zeros(motion.n_pairs, np.float32)
    for truth in video.truths:
        labels[(first <= truth.offset) & (last >= truth.onset)] = 1.0
    return labels


def stream_scale(features: Sequence[NDArray[np.float32]]) -> NDArray[np.float32]:
    """(S,) float32: each stream's standard deviation over every pair and region of
    ``features`` (1 where it is 0: a stream without motion stays 0)."""
    stacked = np.concatenate([f.reshape(len(f), f.shape[1], -1) for f in features])
    scale = stacked.transpose(1, 0, 2).reshape(stacked.shape[1], -1).std(axis=1)
    return np.where(scale > 0, scale, 1.0).astype(np.float32)


@dataclass(frozen=True, eq=False)
class Bank:
    """Every pair of some videos, ready to be cut into windows: ``values`` (rows, S, R) float32
    (each video's pairs with ``window // 2`` zero rows before and after), ``centres`` (n,)
    int64 the row of each pair, ``labels`` (n,) float32, ``spans`` each video's key and its
    slice of ``centres``."""

    values: torch.Tensor
    centres: torch.Tensor
    labels: NDArray[np.float32]
    spans: tuple[tuple[str, slice], ...]
    window: int
    scale: NDArray[np.float32]

    @classmethod
    def of(
        cls,
        videos: Sequence[SpotVideo],
        ks: Sequence[int],
        regions: Sequence[str],
        window: int,
        scale: NDArray[np.float32] | None = None,
        memo: dict[tuple[str, tuple[int, ...]], NDArray[np.float32]] | None = None,
    ) -> Bank:
        """Read ``videos`` once (``scale`` None: theirs; give the fitting videos' scale to a
        validation or test bank). ``memo``: features already read, by (video key, ks), and
        filled with those read here (a fold reads each video once for all its networks)."""
        memo = {} if memo is None else memo
        for v in videos:
            if (v.key, tuple(ks)) not in memo:
                memo[(v.key, tuple(ks))] = pair_features(v, ks, regions)
        feats = [memo[(v.key, tuple(ks))] for v in videos]
        if scale is None:
            scale = stream_scale(feats)
        half = window // 2
        width = feats[0].shape[1:] if feats else (3 * len(ks), len(regions))
        pad = np.zeros((half, *width), np.float32)
        parts, centres, spans, start, row = [], [], [], 0, 0
        for video, f in zip(videos, feats, strict=True):
            parts.extend([pad, f / scale[None, :, None], pad])
            centres.append(np.arange(row + half, row + half + len(f), dtype=np.int64))
            spans.append((video.key, slice(start, start + len(f))))
            start, row = start + len(f), row + len(f) + 2 * half
        labels = [pseudo_labels(v, ks[0]) for v in videos]
        return cls(
            values=torch.from_numpy(np.concatenate(parts) if parts else pad),
            centres=torch.from_numpy(np.concatenate(centres) if centres else np.zeros(0, np.int64)),
            labels=np.concatenate(labels) if labels else np.zeros(0, np.float32),
            spans=tuple(spans),
            window=window,
            scale=scale,
        )

    def __len__(self) -> int:
        return len(self.centres)

    def windows(self, rows: torch.Tensor) -> torch.Tensor:
        """(B, S, R, T) float32: the windows of the pairs ``rows`` (indices into ``centres``)."""
        # unfold: a strided view of every window (no copy); one gather copies the B chosen
        # ones out, already (B, S, R, T) and contiguous
        starts = self.centres[rows] - self.window // 2
        return self.values.unfold(0, self.window, 1)[starts]
