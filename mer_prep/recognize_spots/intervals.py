"""Intervals of a long video as clips: an annotated or spotted interval becomes a ``Sample``
over the video's own frame files, processed by the clip pipeline with a clip recipe (e.g.
``ststnet28``: onset -> apex TV-L1 flow and strain at 28x28), exactly as a clip store's sample.

    sample = interval_sample(video, onset=120, apex=131, offset=140, emotion="happiness")
    features = interval_features([sample, ...], load_recipe("ststnet28"))

A spotted interval's apex is the frame of its score's peak (``apex`` given); an annotated one
keeps its apex, or has it spotted by the recipe (``apex=None``) as a clip without one would.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from mer_prep.datasets.long_video import LongVideo
from mer_prep.errors import InvalidArgumentError, SampleError
from mer_prep.pipeline.process import process_sample
from mer_prep.recipes import Recipe
from mer_prep.sample import Sample


def interval_sample(
    video: LongVideo,
    *,
    onset: int,
    apex: int | None,
    offset: int,
    emotion: str = "",
    tag: str = "",
) -> Sample:
    """The clip of ``video``'s frames ``onset..offset`` (the dataset's frame numbers,
    inclusive); its clip name is ``<video>@<onset>-<offset>`` (+ ``tag``)."""
    if video.video_path is not None or not video.frame_paths:
        raise InvalidArgumentError(
            f"{video.key}: spot-then-recognise reads frame folders; this video is a "
            f"video file ({video.video_path})"
        )
    numbers = np.asarray(video.frame_numbers)
    inside = np.flatnonzero((numbers >= onset) & (numbers <= offset))
    if len(inside) < 2:
        raise InvalidArgumentError(
            f"{video.key}: interval {onset}..{offset} holds {len(inside)} of its frames"
        )
    if apex is not None:
        apex = int(np.clip(apex, numbers[inside[0]] + 1, numbers[inside[-1]]))
    return Sample(
        dataset=video.dataset,
        subject=video.subject,
        clip=f"{video.video}@{onset}-{offset}{tag}",
        frame_paths=tuple(video.frame_paths[i] for i in inside),
        frame_numbers=tuple(int(numbers[i]) for i in inside),
        onset=int(numbers[inside[0]]),
        apex=apex,
        offset=int(numbers[inside[-1]]),
        fps=video.fps,
        emotion=emotion,
        source=video.source,
    )


@dataclass
class IntervalFeatures:
    """The recipe's arrays of the intervals that processed (``arrays``: name -> (n_ok, ...)),
    ``ok`` the indices of those intervals in the input order, and one ``problems`` line per
    interval that did not (naming the video, the interval and the problem)."""

    arrays: dict[str, np.ndarray] = field(repr=False)
    ok: list[int]
    problems: list[str]


def interval_features(
    samples: Sequence[Sample],
    recipe: Recipe,
    names: Sequence[str] = ("flow", "strain"),
    *,
    cache: dict[str, dict[str, np.ndarray] | str] | None = None,
) -> IntervalFeatures:
    """Run the clip pipeline (``process_sample``) on every interval; keep ``names``.

    cache: results by sample id (its arrays, or its problem line) kept across calls with the
    same recipe, e.g. a real run and its shuffled-label control over one spotting run."""
    rows: dict[str, list[np.ndarray]] = {name: [] for name in names}
    ok, problems = [], []
    memo: dict[str, dict[str, np.ndarray] | str] = {} if cache is None else cache
    for index, sample in enumerate(samples):
        if sample.sample_id not in memo:
            try:
                memo[sample.sample_id] = process_sample(sample, recipe).arrays
            except SampleError as error:
                memo[sample.sample_id] = f"{sample.sample_id}: {error}"
        arrays = memo[sample.sample_id]
        if isinstance(arrays, str):
            problems.append(arrays)
            continue
        missing = [name for name in names if name not in arrays]
        if missing:
            raise InvalidArgumentError(
                f"recipe {recipe.name} gives no {', '.join(missing)} (it gives "
                f"{', '.join(sorted(arrays))})"
            )
        for name in names:
            rows[name].append(arrays[name])
        ok.append(index)
    stacked = {
        name: np.stack(values) if values else np.zeros((0,), np.float32)
        for name, values in rows.items()
    }
    return IntervalFeatures(stacked, ok, problems)
