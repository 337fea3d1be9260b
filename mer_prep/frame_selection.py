"""Which frames of a clip a recipe reads — decided before any decode (SPEC §3.1)."""

from __future__ import annotations

import numpy as np

from mer_prep.errors import SampleError
from mer_prep.recipes import Recipe
from mer_prep.sample import Sample


def frame_position(sample: Sample, frame_number: int, what: str) -> int:
    """Index into ``sample.frame_numbers`` of a dataset frame number; SampleError if absent."""
    try:
        return sample.frame_numbers.index(frame_number)
    except ValueError:
        first, last = sample.frame_numbers[0], sample.frame_numbers[-1]
        raise SampleError(
            f"{what} frame {frame_number} is not among the clip's frames ({first}..{last})",
            file=sample.source, sample=sample.sample_id,
        ) from None


def select_frames(sample: Sample, recipe: Recipe) -> np.ndarray:
    """Positions (into ``sample.frame_numbers``) of the frames the recipe stores, int64 (T,).

    The first returned frame is always the onset, where the face is detected.
    """
    if not sample.frame_numbers:
        raise SampleError("clip has no frames", file=sample.source, sample=sample.sample_id)
    if not sample.onset <= sample.offset:
        raise SampleError(f"onset {sample.onset} is after offset {sample.offset}",
                          file=sample.source, sample=sample.sample_id)
    onset = frame_position(sample, sample.onset, "onset")
    offset = frame_position(sample, sample.offset, "offset")
    if recipe.frames.mode == "onset_apex":
        if sample.apex is None:
            raise SampleError("recipe needs the apex frame but the annotation gives none",
                              file=sample.source, sample=sample.sample_id)
        apex = frame_position(sample, sample.apex, "apex")
        return np.array([onset, apex], dtype=np.int64)
    # Nearest source frame to evenly spaced times keeps real pixels (no temporal blending).
    return np.rint(np.linspace(onset, offset, recipe.frames.n_frames)).astype(np.int64)
