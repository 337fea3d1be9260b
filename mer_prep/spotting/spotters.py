"""Training-free spotters: a score curve from a video's region motion, a threshold, peaks, and
one interval per peak whose length decides its kind (ME or MaE).

    params = SpotParams(k_me=4, k_mae=8, p=0.3, smooth=3)
    spotted = spot_video({4: m4, 8: m8}, "threshold", params)  # Spotted: curve, intervals

Both methods read a :class:`~mer_prep.motion.video_motion.VideoMotion` (row ``i``: the motion
from frame ``i`` to frame ``i + k``) and differ in the curve they build:

- ``mdmd`` (the main-directional mean flow of the MEGC 2020 baseline): per pair, each region's
  *main-directional* mean magnitude (``main_direction``: the flow vectors in the most populated
  of 8 direction bins), and the curve is the mean of the largest third of the regions' values
  (the baseline's "top third of the ROIs"): a movement of a few regions stands out of the
  still ones, and a region's value does not cancel opposite vectors.
- ``threshold`` (Moilanen-style thresholding of smoothed region motion): per pair, the mean
  flow ``magnitude`` over the regions.

Then, for both, per frame ``j``: the mean of the pair from its head frame ``j - k`` to it and
the pair from it to its tail frame ``j + k`` (:func:`frame_difference`: Moilanen's difference of
the current frame against the head and tail frames; one value per frame, the rise and the fall
of one movement merge into one peak at its apex when ``k`` spans them); a centred moving average
of ``smooth`` frames; the threshold ``mean + p (max - mean)`` of the video's curve; peaks above
it at least ``k`` frames apart (``scipy.signal.find_peaks(distance=k)``); each peak's extent is
where the curve stays above ``baseline + rel (peak - baseline)`` (``baseline`` the curve's
median), and the extent's length decides the kind: inside ``me_window`` an ME, inside
``mae_window`` an MaE, otherwise no interval. Each kind is spotted on its own pair distance
(``k_me``, ``k_mae``: the MEGC 2020 baseline also spots MEs and MaEs at two distances); an ME
interval overlapping an MaE interval is dropped. Frames are the video's own numbers
(``frame_numbers``), the numbering of its truths.

The regions read are ``regions`` (default: brows and mouth corners, :data:`DEFAULT_REGIONS`;
the eyes are left out, as blinks move them, and the nose is the head-motion reference).
Everything here is a pure function of its arguments; the values worth tuning are the fields of
:class:`SpotParams` (``mer_prep.spotting.tuning`` chooses them on training subjects).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.signal import find_peaks

from mer_prep.errors import InvalidArgumentError
from mer_prep.evaluation.spotting_intervals import SpotPrediction
from mer_prep.motion.video_motion import VideoMotion
from mer_prep.spotting.methods import METHODS

#: the regions read by default: brows and mouth corners (eyes blink; the nose is the reference)
DEFAULT_REGIONS: tuple[str, ...] = ("brow_left", "brow_right", "mouth_left", "mouth_right")


@dataclass(frozen=True)
class SpotParams:
    """The values a spotter is run with (each one tunable).

    - ``k_me`` / ``k_mae``: the pair distance of the motion each kind is spotted on (a stored
      ``VideoMotion.k``; the MEGC 2020 baseline spots MEs and MaEs at two distances);
    - ``p``: threshold ``mean + p (max - mean)`` of the curve, in [0, 1];
    - ``smooth``: moving-average width in frames (1: none);
    - ``rel``: a peak's extent is where the curve is above ``baseline + rel (peak - baseline)``;
    - ``me_window`` / ``mae_window``: inclusive (shortest, longest) lengths in frames of an
      interval of each kind; an extent in neither window gives no interval;
    """

    k_me: int
    k_mae: int
    p: float
    smooth: int = 1
    rel: float = 0.5
    me_window: tuple[int, int] = (4, 15)
    mae_window: tuple[int, int] = (16, 120)

    def __post_init__(self) -> None:
        if not 0.0 <= self.p <= 1.0:
            raise InvalidArgumentError(f"p must be in [0, 1], got {self.p}")
        if min(self.smooth, self.k_me, self.k_mae) < 1:
            raise InvalidArgumentError(
                f"k and smooth must be >= 1, got {self.k_me}, {self.k_mae} and {self.smooth}"
            )
        if not 0.0 < self.rel < 1.0:
            raise InvalidArgumentError(f"rel must be in (0, 1), got {self.rel}")
        for name in ("me_window", "mae_window"):
            low, high = getattr(self, name)
            if not 1 <= low <= high:
                raise InvalidArgumentError(
                    f"{name} must be 1 <= shortest <= longest, got {low, high}"
                )

    def as_dict(self) -> dict:
        values = asdict(self)
        values["me_window"] = list(self.me_window)
        values["mae_window"] = list(self.mae_window)
        return values

    @classmethod
    def from_dict(cls, values: dict) -> SpotParams:
        return cls(
            **{
                **values,
                "me_window": tuple(values["me_window"]),
                "mae_window": tuple(values["mae_window"]),
            }
        )


@dataclass(frozen=True, eq=False)
class Spotted:
    """One video spotted: its ME score ``curve`` (n_frames,) float32 (at ``k_me``) over
    ``frames`` (the video's frame numbers), that curve's ``threshold`` and
    peaks' rows, and the ``intervals`` of both kinds (``SpotPrediction``s; ``score`` is the
    peak's height)."""

    video_key: str
    curve: NDArray[np.float32]
    frames: NDArray[np.float64]
    threshold: float
    peaks: NDArray[np.int64]
    intervals: tuple[SpotPrediction, ...]


def _split_key(video_id: str) -> tuple[str, str]:
    """(subject, video) of a ``<dataset>/<subject>/<video>`` id: the prediction's ``subject``
    and ``video`` such that ``video_key`` is the id itself."""
    head, _, video = video_id.rpartition("/")
    return head, video


def score_curve(
    motion: VideoMotion, method: str, regions: Sequence[str] = DEFAULT_REGIONS
) -> NDArray[np.float32]:
    """The raw (unsmoothed) per-frame score of ``method`` over ``regions`` (those of the video
    that exist; all regions when none of them does): each pair's value, then
    :func:`frame_difference`."""
    if method not in METHODS:
        raise InvalidArgumentError(
            f"unknown spotting method {method!r} (known: {', '.join(METHODS)})"
        )
    columns = [motion.roi_names.index(r) for r in regions if r in motion.roi_names]
    if not columns:
        columns = list(range(len(motion.roi_names)))
    if method == "mdmd":
        values = np.asarray(motion.main_direction, np.float32)[:, columns]
        top = max(1, int(np.ceil(len(columns) / 3)))
        ranked = -np.sort(-values, axis=1)[:, :top]
        curve = ranked.mean(axis=1)
    else:
        curve = np.asarray(motion.magnitude, np.float32)[:, columns].mean(axis=1)
    curve = np.nan_to_num(curve.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    return frame_difference(curve, motion.k).astype(np.float32)


def frame_difference(rows: NDArray[np.float64], k: int) -> NDArray[np.float64]:
    """Per frame ``j``, the mean of the motion from its head frame ``j - k`` to it (row
    ``j - k``) and from it to its tail frame ``j + k`` (row ``j``): Moilanen's maximal
    difference of the current frame against the head and tail frames. (n_pairs + k,) = one
    value per frame; near the ends, where one of the two pairs is outside the video, the one
    inside."""
    n_frames = len(rows) + k
    total = np.zeros(n_frames)
    count = np.zeros(n_frames)
    total[: len(rows)] += rows  # row j: frame j to its tail frame j + k
    count[: len(rows)] += 1
    total[k:] += rows  # row j - k: its head frame j - k to frame j
    count[k:] += 1
    return total / np.maximum(count, 1)


def smooth_curve(curve: NDArray[np.float32], width: int) -> NDArray[np.float32]:
    """Centred moving average over ``width`` frames (edges averaged over the frames there)."""
    if width <= 1 or len(curve) == 0:
        return curve.astype(np.float32)
    kernel = np.ones(width)
    sums = np.convolve(curve.astype(np.float64), kernel, mode="same")
    counts = np.convolve(np.ones(len(curve)), kernel, mode="same")
    return (sums / counts).astype(np.float32)


def threshold_of(curve: NDArray[np.float32], p: float) -> float:
    """``mean + p (max - mean)`` of ``curve``."""
    if len(curve) == 0:
        return 0.0
    mean = float(curve.mean())
    return mean + p * (float(curve.max()) - mean)


def _extent(curve: NDArray[np.float32], peak: int, level: float) -> tuple[int, int]:
    """The rows around ``peak`` where ``curve`` stays above ``level`` (inclusive)."""
    below = np.flatnonzero(curve[:peak] <= level)
    start = int(below[-1]) + 1 if len(below) else 0
    after = np.flatnonzero(curve[peak + 1 :] <= level)
    end = peak + int(after[0]) if len(after) else len(curve) - 1
    return start, end


@dataclass(frozen=True)
class Candidates:
    """The peaks of one curve above its threshold and each peak's extent: ``extents`` are
    (onset, offset, height) in the video's frame numbers, in peak order."""

    threshold: float
    peaks: NDArray[np.int64]
    extents: tuple[tuple[int, int, float], ...]


def peak_extents(
    curve: NDArray[np.float32], motion: VideoMotion, p: float, rel: float
) -> Candidates:
    """Peaks of ``curve`` (one value per frame of ``motion``) above ``mean + p (max - mean)``,
    at least ``motion.k`` frames apart, and the extent of each: where the curve stays above
    ``baseline + rel (peak - baseline)``, ``baseline`` its median."""
    threshold = threshold_of(curve, p)
    if len(curve) == 0 or float(curve.max()) <= float(curve.mean()):
        return Candidates(threshold, np.zeros(0, np.int64), ())  # a flat curve has no peak
    peaks, _ = find_peaks(curve, height=threshold, distance=max(1, motion.k))
    baseline = float(np.median(curve))
    numbers = motion.frame_numbers
    extents = []
    for peak in peaks:
        height = float(curve[peak])
        start, end = _extent(curve, int(peak), baseline + rel * (height - baseline))
        extents.append((int(numbers[start]), int(numbers[end]), height))
    return Candidates(threshold, np.asarray(peaks, np.int64), tuple(extents))


def _overlaps(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] <= b[1] and b[0] <= a[1]


def assemble(
    video_id: str,
    me: Candidates,
    mae: Candidates,
    params: SpotParams,
) -> tuple[SpotPrediction, ...]:
    """The intervals of one video from each kind's candidates: an extent inside its kind's
    length window is an interval (two overlapping extents of one kind: the first); an ME
    interval overlapping an MaE interval is dropped (one movement seen by both curves)."""
    subject, video = _split_key(video_id)
    kept: dict[str, list[tuple[int, int, float]]] = {"me": [], "mae": []}
    for kind, found, window in (
        ("mae", mae, params.mae_window),
        ("me", me, params.me_window),
    ):
        for onset, offset, height in found.extents:
            if not window[0] <= offset - onset + 1 <= window[1]:
                continue
            span = (onset, offset)
            if any(_overlaps(span, (a, b)) for a, b, _ in kept[kind]):
                continue
            if kind == "me" and any(_overlaps(span, (a, b)) for a, b, _ in kept["mae"]):
                continue
            kept[kind].append((onset, offset, height))
    intervals = [
        SpotPrediction(
            video=video, onset=onset, offset=offset, kind=kind, subject=subject, score=height
        )
        for kind in ("me", "mae")
        for onset, offset, height in kept[kind]
    ]
    return tuple(sorted(intervals, key=lambda i: (i.onset, i.offset, i.kind)))


def spot_video(
    motion: VideoMotion | dict[int, VideoMotion],
    method: str,
    params: SpotParams,
    regions: Sequence[str] = DEFAULT_REGIONS,
) -> Spotted:
    """Spot one video with ``method`` ("mdmd" or "threshold") and ``params``: ``motion`` is the
    video's motion at every available pair distance ({k: VideoMotion}; one ``VideoMotion``
    when ``params.k_me == params.k_mae`` is its ``k``)."""
    by_k = motion if isinstance(motion, dict) else {motion.k: motion}
    chosen = {}
    for kind, k in (("me", params.k_me), ("mae", params.k_mae)):
        if k not in by_k:
            any_motion = next(iter(by_k.values()))
            raise InvalidArgumentError(
                f"{any_motion.video_id}: the parameters ask for k={k} ({kind}), the motion "
                f"has k={', '.join(map(str, sorted(by_k)))}"
            )
        chosen[kind] = by_k[k]
    curves = {
        kind: smooth_curve(score_curve(m, method, regions), params.smooth)
        for kind, m in chosen.items()
    }
    found = {
        kind: peak_extents(curves[kind], chosen[kind], params.p, params.rel)
        for kind in ("me", "mae")
    }
    return Spotted(
        video_key=chosen["me"].video_id,
        curve=curves["me"],
        frames=chosen["me"].frame_numbers.astype(np.float64),
        threshold=found["me"].threshold,
        peaks=found["me"].peaks,
        intervals=assemble(chosen["me"].video_id, found["me"], found["mae"], params),
    )


def spot_mdmd(
    motion: VideoMotion, params: SpotParams, regions: Sequence[str] = DEFAULT_REGIONS
) -> Spotted:
    """The main-directional mean flow spotter (``spot_video(motion, "mdmd", ...)``)."""
    return spot_video(motion, "mdmd", params, regions)


def spot_threshold(
    motion: VideoMotion, params: SpotParams, regions: Sequence[str] = DEFAULT_REGIONS
) -> Spotted:
    """The threshold spotter on smoothed region magnitude (``spot_video(motion, "threshold",
    ...)``)."""
    return spot_video(motion, "threshold", params, regions)
