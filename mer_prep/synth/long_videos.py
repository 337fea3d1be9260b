"""Synthetic long videos: a neutral face over a few hundred frames with planted micro- (short,
low amplitude) and macro-expressions (longer, larger), blinks (eyelids only) and a slow head
drift, every event at a known frame. ``long_video_layouts`` writes them in each dataset's
long-video layout with its sheet.

Indices here are 0-based into the video's frames; each event's motion is 0 at its onset and
offset and peaks (``a = 1``) at its apex (``motion.temporal_profile``), so the annotated
interval is exactly where the face moves. Events never overlap: each frame shows at most one
field ``D`` on top of the drift (``animate.render_frames``'s model).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from mer_prep.errors import InvalidArgumentError
from mer_prep.synth.animate import make_scene, render_frames
from mer_prep.synth.faces import make_subject, render_subject, subject_landmarks
from mer_prep.synth.motion import au_field, aus_for_emotion, head_jitter, temporal_profile

#: event lengths in seconds (drawn uniformly) and apex amplitudes in px on a 128-px canvas
ME_SECONDS, MAE_SECONDS, BLINK_SECONDS = (0.25, 0.45), (0.8, 1.5), (0.12, 0.2)
ME_AMPLITUDE_PX, MAE_AMPLITUDE_PX, BLINK_AMPLITUDE_PX = (0.3, 0.5), (1.0, 1.4), 0.6
ME_EMOTIONS, MAE_EMOTIONS = (
    ("happiness", "surprise", "disgust"),
    ("happiness", "surprise", "negative"),
)
BLINK_AUS = "5"  # AU 5's upper-lid field, reversed: the lid comes down
_MIN_FRAMES = 3  # an event needs onset < apex < offset


@dataclass(frozen=True)
class PlantedEvent:
    """One planted event: ``kind`` "me", "mae" or "blink"; 0-based inclusive ``onset..offset``
    with ``apex`` strictly inside; ``emotion`` / ``action_units`` ("" for a blink);
    ``amplitude_px``: largest displacement at the apex."""

    kind: str
    onset: int
    apex: int
    offset: int
    emotion: str
    action_units: str
    amplitude_px: float


@dataclass(frozen=True)
class LongVideoPlan:
    """Everything about one synthetic long video except its pixels.

    events: sorted by onset, non-overlapping; drift_px: largest head translation; noise_sigma:
    sensor noise in grey levels; size: canvas (H, W); gray: one channel (SAMM); seed: pixels and
    drift are drawn from it.
    """

    n_frames: int
    fps: float
    events: tuple[PlantedEvent, ...]
    drift_px: float
    noise_sigma: float
    size: tuple[int, int]
    gray: bool
    seed: int

    @property
    def expressions(self) -> tuple[PlantedEvent, ...]:
        """The MEs and MaEs (blinks are not annotated)."""
        return tuple(e for e in self.events if e.kind != "blink")


def _length(rng: np.random.Generator, seconds: tuple[float, float], fps: float) -> int:
    return max(_MIN_FRAMES, int(round(rng.uniform(*seconds) * fps)))


def plan_long_video(
    seed: int,
    *,
    n_frames: int = 360,
    fps: float = 30.0,
    n_me: int = 2,
    n_mae: int = 2,
    n_blinks: int = 2,
    size: tuple[int, int] = (128, 128),
    gray: bool = False,
    drift_px: float = 1.0,
    noise_sigma: float = 1.0,
    key: str = "",
) -> LongVideoPlan:
    """Place ``n_me`` MEs, ``n_mae`` MaEs and ``n_blinks`` blinks at random, non-overlapping
    positions (at least 3 neutral frames between events and at both ends). ``key`` (the dataset
    name) makes the draws differ between datasets with the same ``seed``."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(zlib.crc32(key.encode()),)))
    kinds = ["me"] * n_me + ["mae"] * n_mae + ["blink"] * n_blinks
    rng.shuffle(kinds)
    seconds = {"me": ME_SECONDS, "mae": MAE_SECONDS, "blink": BLINK_SECONDS}
    lengths = [_length(rng, seconds[k], fps) for k in kinds]
    gap = 3
    free = n_frames - sum(lengths) - gap * (len(kinds) + 1)
    if free < 0:
        raise InvalidArgumentError(
            f"{n_frames} frames at {fps} fps cannot hold {n_me} MEs, {n_mae} MaEs "
            f"and {n_blinks} blinks ({sum(lengths)} frames of events)"
        )
    extra = np.floor(rng.dirichlet(np.ones(len(kinds) + 1)) * free).astype(int)
    events, start = [], 0
    for kind, length, spare in zip(kinds, lengths, extra[:-1], strict=True):
        onset = start + gap + int(spare)
        offset = onset + length - 1
        apex = int(
            np.clip(round(onset + (length - 1) * rng.uniform(0.35, 0.6)), onset + 1, offset - 1)
        )
        if kind == "blink":
            emotion, aus, amplitude = "", BLINK_AUS, BLINK_AMPLITUDE_PX
        else:
            emotion = str(rng.choice(ME_EMOTIONS if kind == "me" else MAE_EMOTIONS))
            aus = aus_for_emotion(emotion)
            amplitude = float(rng.uniform(*(ME_AMPLITUDE_PX if kind == "me" else MAE_AMPLITUDE_PX)))
        events.append(PlantedEvent(kind, onset, apex, offset, emotion, aus, amplitude))
        start = offset + 1
    return LongVideoPlan(
        n_frames=n_frames,
        fps=fps,
        events=tuple(events),
        drift_px=drift_px,
        noise_sigma=noise_sigma,
        size=size,
        gray=gray,
        seed=int(rng.integers(2**63)),
    )


def render_long_video(plan: LongVideoPlan) -> tuple[np.ndarray, np.ndarray]:
    """Render ``plan``: frames ((T, H, W, 3) or (T, H, W) uint8) and the drift (T, 2) float64 px.

    Frames outside every event show the neutral face translated by the drift only.
    """
    rng = np.random.default_rng(plan.seed)
    subject = make_subject(rng, plan.size)
    scene = make_scene(render_subject(subject), gray=plan.gray)
    landmarks = subject_landmarks(subject)
    drift = head_jitter(plan.n_frames, rng, plan.drift_px)
    h, w = plan.size
    still = np.zeros((h, w, 2), np.float32)
    frames = np.empty((plan.n_frames, h, w) + (() if plan.gray else (3,)), np.uint8)
    start = 0
    for event in [*plan.events, None]:
        end = plan.n_frames if event is None else event.onset
        if end > start:  # neutral stretch
            frames[start:end] = render_frames(
                scene, still, np.zeros(end - start), drift[start:end], plan.noise_sigma, rng
            )
        if event is None:
            break
        field = au_field(landmarks, event.action_units, plan.size, event.amplitude_px)
        if event.kind == "blink":
            field = -field
        length = event.offset - event.onset + 1
        profile = temporal_profile(length, 0, event.apex - event.onset, length - 1)
        span = slice(event.onset, event.offset + 1)
        frames[span] = render_frames(scene, field, profile, drift[span], plan.noise_sigma, rng)
        start = event.offset + 1
    return frames, drift
