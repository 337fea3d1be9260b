"""Which frames of a clip a recipe reads — decided before any decode.

The frames a recipe *reads* (and whose files the input fingerprint covers) are not always the
frames it *stores*: keyframes are chosen among all the clip's frames, and a missing apex is
spotted from the onset..offset frames.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mer_prep.errors import SampleError
from mer_prep.recipes import Recipe
from mer_prep.sample import Sample


@dataclass(frozen=True)
class ClipSpan:
    """Onset, apex (None when not annotated) and offset as positions into ``frame_numbers``."""

    onset: int
    apex: int | None
    offset: int


def frame_position(sample: Sample, frame_number: int, what: str) -> int:
    """Index into ``sample.frame_numbers`` of a dataset frame number; SampleError if absent."""
    try:
        return sample.frame_numbers.index(frame_number)
    except ValueError:
        first, last = sample.frame_numbers[0], sample.frame_numbers[-1]
        raise SampleError(
            f"{what} frame {frame_number} is not among the clip's frames ({first}..{last})",
            file=sample.source,
            sample=sample.sample_id,
        ) from None


def clip_span(sample: Sample) -> ClipSpan:
    """The annotated timing as positions; SampleError when it does not fit the clip."""
    if not sample.frame_numbers:
        raise SampleError("clip has no frames", file=sample.source, sample=sample.sample_id)
    if not sample.onset <= sample.offset:
        raise SampleError(
            f"onset {sample.onset} is after offset {sample.offset}",
            file=sample.source,
            sample=sample.sample_id,
        )
    onset = frame_position(sample, sample.onset, "onset")
    offset = frame_position(sample, sample.offset, "offset")
    apex = None if sample.apex is None else frame_position(sample, sample.apex, "apex")
    return ClipSpan(onset, apex, offset)


def sequence_positions(start: int, stop: int, n_frames: int) -> np.ndarray:
    """``n_frames`` positions evenly spaced over start..stop inclusive, nearest frame each: int64.

    Nearest source frames keep real pixels (no temporal blending); a span shorter than
    ``n_frames`` repeats frames, and then every frame of it appears at least once.
    """
    return np.rint(np.linspace(start, stop, n_frames)).astype(np.int64)


def select_frames(sample: Sample, recipe: Recipe) -> np.ndarray:
    """Positions (into ``sample.frame_numbers``) of the frames the recipe reads, int64.

    ``onset_apex``: [onset, apex], or onset..offset when the apex must be spotted;
    ``sequence``: ``n_frames`` evenly spaced from onset to offset (repeats possible);
    ``keyframes``: every frame of the clip.
    """
    span = clip_span(sample)
    if recipe.needs_apex and span.apex is None and not recipe.apex.spot:
        raise SampleError(
            "recipe needs the apex frame but the annotation gives none (and apex spotting is off)",
            file=sample.source,
            sample=sample.sample_id,
        )
    mode = recipe.frames.mode
    if mode == "keyframes":
        return np.arange(len(sample.frame_numbers), dtype=np.int64)
    if mode == "onset_apex":
        if span.apex is None:
            return np.arange(span.onset, span.offset + 1, dtype=np.int64)
        return np.array([span.onset, span.apex], dtype=np.int64)
    return sequence_positions(span.onset, span.offset, recipe.frames.n_frames)
