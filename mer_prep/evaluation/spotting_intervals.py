"""Spotting intervals and their one-to-one matching: the types both MEGC scorers share.

An interval is a pair of **inclusive** frame numbers ``onset <= offset`` in one video, of one
expression type (``"me"`` or ``"mae"``); ``iou`` counts frames. ``match_one_to_one`` is the exact
assignment the correct scorer (``spotting``) uses; the MEGC 2020 compatibility scorer
(``spotting_megc2020``) builds on the same types.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from mer_prep.errors import InvalidArgumentError

KINDS: tuple[str, ...] = ("mae", "me")
"""Expression types: macro- and micro-expression, in the order the scores list them."""

MEGC_IOU_THRESHOLD = 0.5


@dataclass(frozen=True)
class Interval:
    """Frames ``onset..offset`` (inclusive, ``onset <= offset``) of ``video``, of expression type
    ``kind`` ("me" or "mae"). ``subject`` is optional; when given, a video is identified by
    subject and video name together (``video_key``), as in datasets whose video names repeat
    across subjects."""

    video: str
    onset: int
    offset: int
    kind: str
    subject: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise InvalidArgumentError(f"expression type must be one of {KINDS}, got {self.kind!r}")
        if self.offset < self.onset:
            raise InvalidArgumentError(
                f"interval {self.onset}..{self.offset} of video {self.video}: offset before onset"
            )

    @property
    def video_key(self) -> str:
        """``subject/video`` when a subject is given, else ``video``."""
        return f"{self.subject}/{self.video}" if self.subject else self.video

    @property
    def length(self) -> int:
        """Number of frames, both ends included."""
        return self.offset - self.onset + 1


@dataclass(frozen=True)
class SpotTruth(Interval):
    """An annotated expression; ``emotion`` is needed only for STRS."""

    emotion: str | None = None


@dataclass(frozen=True)
class SpotPrediction(Interval):
    """A spotted interval; ``emotion`` (for STRS) and ``score`` (confidence) are optional and do
    not change the spotting counts."""

    emotion: str | None = None
    score: float | None = None


@dataclass(frozen=True)
class SpotCounts:
    """Pooled counts of one expression type (or of both); ratios are 0 where undefined."""

    tp: int
    fp: int
    fn: int

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def __add__(self, other: SpotCounts) -> SpotCounts:
        return SpotCounts(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn)


@dataclass(frozen=True)
class SpotMatch:
    """A true positive: ``prediction`` matched to ``truth`` with ``iou``."""

    prediction: SpotPrediction
    truth: SpotTruth
    iou: float


@dataclass(frozen=True)
class QuantityChange:
    """``name`` is ``with_defect`` under the reference behaviour and ``without_defect`` once
    that defect alone is removed (from the state left by the defects listed before it)."""

    name: str
    with_defect: float
    without_defect: float


@dataclass(frozen=True)
class DefectEffect:
    """A defect of a reference scorer that changed at least one reported number."""

    name: str
    description: str
    changes: tuple[QuantityChange, ...]

    def line(self) -> str:
        """One line: the defect and the numbers it moved."""
        moved = ", ".join(
            f"{c.name} {_fmt(c.with_defect)} (without it {_fmt(c.without_defect)})"
            for c in self.changes
        )
        return f"{self.name}: {self.description}; {moved}"


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.4f}"


@dataclass(frozen=True)
class SpottingScore:
    """Spotting result over ``n_videos`` videos.

    ``by_kind`` maps "mae" and "me" to their counts; ``overall`` is their sum. ``mode`` is
    "one-to-one" or a compatibility mode ("megc2020"); ``defects`` lists, for a compatibility
    mode, the defects that changed a count (empty for the correct scorer). ``matches`` are the
    true positives (for the correct scorer: the one-to-one pairs). ``notes`` say what a
    compatibility mode did that is not a count (e.g. the length windows it applied).
    """

    by_kind: Mapping[str, SpotCounts]
    n_videos: int
    n_videos_without_truth: int
    threshold: float
    mode: str = "one-to-one"
    matches: tuple[SpotMatch, ...] = ()
    defects: tuple[DefectEffect, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def overall(self) -> SpotCounts:
        total = SpotCounts(0, 0, 0)
        for counts in self.by_kind.values():
            total = total + counts
        return total

    def as_dict(self) -> dict:
        """JSON-able view: counts and ratios per type and overall, the defects and notes."""

        def view(c: SpotCounts) -> dict:
            return {
                "tp": c.tp,
                "fp": c.fp,
                "fn": c.fn,
                "precision": c.precision,
                "recall": c.recall,
                "f1": c.f1,
            }

        return {
            "mode": self.mode,
            "threshold": self.threshold,
            "n_videos": self.n_videos,
            "n_videos_without_truth": self.n_videos_without_truth,
            **{kind: view(self.by_kind[kind]) for kind in KINDS},
            "overall": view(self.overall),
            "defects": [
                {
                    "name": d.name,
                    "description": d.description,
                    "changes": [
                        {
                            "name": c.name,
                            "with_defect": c.with_defect,
                            "without_defect": c.without_defect,
                        }
                        for c in d.changes
                    ],
                }
                for d in self.defects
            ],
            "notes": list(self.notes),
        }


def iou(a: Interval, b: Interval) -> float:
    """Intersection over union of two inclusive frame ranges, in [0, 1]."""
    inter = max(0, min(a.offset, b.offset) - max(a.onset, b.onset) + 1)
    return inter / (a.length + b.length - inter)


def iou_matrix(predictions: Sequence[Interval], truths: Sequence[Interval]) -> np.ndarray:
    """(n_predictions, n_truths) float64 IoU of every pair (inclusive frame ranges)."""
    ps = np.array([[p.onset, p.offset] for p in predictions], dtype=np.int64).reshape(-1, 2)
    ts = np.array([[t.onset, t.offset] for t in truths], dtype=np.int64).reshape(-1, 2)
    inter = np.clip(
        np.minimum(ps[:, None, 1], ts[None, :, 1]) - np.maximum(ps[:, None, 0], ts[None, :, 0]) + 1,
        0,
        None,
    )
    lengths_p = ps[:, 1] - ps[:, 0] + 1
    lengths_t = ts[:, 1] - ts[:, 0] + 1
    return inter / (lengths_p[:, None] + lengths_t[None, :] - inter)


def match_one_to_one(
    predictions: Sequence[Interval],
    truths: Sequence[Interval],
    threshold: float = MEGC_IOU_THRESHOLD,
    overlap_of: Callable[[Sequence[Interval], Sequence[Interval]], np.ndarray] = iou_matrix,
) -> list[tuple[int, int, float]]:
    """``(prediction index, truth index, iou)`` of the one-to-one matching of the intervals of
    one video and type: the most pairs with ``iou >= threshold``, then the largest summed IoU.

    Ties are broken on the intervals sorted by (onset, offset), so the pairs do not depend on
    the order of the inputs except between identical intervals. ``overlap_of`` computes the IoU
    matrix (a compatibility mode passes a reference scorer's own formula).
    """
    if not predictions or not truths:
        return []
    p_order = sorted(
        range(len(predictions)), key=lambda i: (predictions[i].onset, predictions[i].offset)
    )
    t_order = sorted(range(len(truths)), key=lambda j: (truths[j].onset, truths[j].offset))
    overlap = overlap_of([predictions[i] for i in p_order], [truths[j] for j in t_order])
    allowed = overlap >= threshold
    if not allowed.any():
        return []
    # One more pair is worth more than any gain in summed IoU (at most min(n, m) <= bonus).
    bonus = float(min(overlap.shape) + 1)
    weight = np.where(allowed, bonus + overlap, 0.0)
    rows, cols = linear_sum_assignment(weight, maximize=True)
    return sorted(
        (p_order[r], t_order[c], float(overlap[r, c]))
        for r, c in zip(rows, cols, strict=True)
        if allowed[r, c]
    )


def group_by_video_and_kind(intervals: Iterable[Interval]) -> dict[tuple[str, str], list]:
    """``{(video_key, kind): [intervals in input order]}``."""
    groups: dict[tuple[str, str], list] = defaultdict(list)
    for interval in intervals:
        groups[(interval.video_key, interval.kind)].append(interval)
    return groups


def check_videos(
    predictions: Sequence[SpotPrediction], truths: Sequence[SpotTruth], videos: Iterable[str]
) -> list[str]:
    """The scored videos (``video_key``s, each once, in first-seen order). Every prediction and
    every truth must lie in one of them: one outside would silently change no count."""
    scored = list(dict.fromkeys(videos))
    known = set(scored)
    for what, items in (("prediction", predictions), ("truth", truths)):
        for item in items:
            if item.video_key not in known:
                raise InvalidArgumentError(
                    f"{what} {item.onset}..{item.offset} ({item.kind}) is in video "
                    f"{item.video_key!r}, which is not among the {len(scored)} scored videos"
                )
    return scored


def apex_frames(
    frames: np.ndarray, curve: np.ndarray, predictions: Sequence[SpotPrediction]
) -> list[int]:
    """Each interval's apex: the frame number of the curve's highest value inside it (its
    middle frame when the curve has no value there)."""
    apexes = []
    for p in predictions:
        inside = np.flatnonzero((frames >= p.onset) & (frames <= p.offset))
        if len(inside):
            apexes.append(int(frames[inside[np.argmax(curve[inside])]]))
        else:
            apexes.append((p.onset + p.offset) // 2)
    return apexes
