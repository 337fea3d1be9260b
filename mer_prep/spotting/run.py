"""One spotting run, end to end: tune and spot leave-one-subject-out, record on the store.

    result, record = run_spotting(videos, "mdmd", store=path, store_info={...})

``videos`` are :class:`~mer_prep.spotting.tuning.SpotVideo`s (each video's motion at its stored
pair distances and its truths); the record goes on the ``runs`` branch of ``store``
(``records.save_spot_run``), unless ``record=False``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mer_prep.errors import StoreError
from mer_prep.spotting.records import SpotRunRecord, save_spot_run, spot_record
from mer_prep.spotting.spotters import DEFAULT_REGIONS
from mer_prep.spotting.tuning import SpotGrid, SpotResult, SpotVideo, spot_loso
from mer_prep.version import code_version

SPLITS = ("loso",)


class NoVideoMotionError(StoreError):
    """A store holds no long-video motion that can be read for spotting."""


def run_spotting(
    videos: Sequence[SpotVideo],
    method: str,
    *,
    store=None,
    store_info: dict[str, Any] | None = None,
    split: str = "loso",
    tune_on: str = "train",
    grid: SpotGrid | None = None,
    regions: Sequence[str] = DEFAULT_REGIONS,
) -> tuple[SpotResult, SpotRunRecord, str | None]:
    """(result, its record, the record's snapshot id or None when ``store`` is None)."""
    if split not in SPLITS:
        raise NoVideoMotionError(f"unknown spotting split {split!r} (known: {', '.join(SPLITS)})")
    if not videos:
        raise NoVideoMotionError(f"store {store}: no long video with motion to spot")
    result = spot_loso(videos, method, grid, regions, tune_on=tune_on)
    record = spot_record(result, store=store_info or {}, split=split, code_version=code_version())
    snapshot = save_spot_run(store, record) if store is not None else None
    return result, record, snapshot


def store_videos(store) -> tuple[list[SpotVideo], dict[str, Any]]:
    """The long videos of a long-video store as ``SpotVideo``s, and what was read.

    Long-video stores (and their ``read_video_motion(store, video_id)``) do not exist yet: the
    motion is computed per video by ``pipeline.long_video.video_motion`` but not stored. Until a
    store of that kind can be opened here, this refuses in one line.
    """
    raise NoVideoMotionError(
        f"store {store}: reading VideoMotion from a long-video store is not in this version "
        f"yet (read_video_motion); `mer-prep spot STORE --synthetic` spots planted synthetic "
        f"motion and records the run on STORE"
    )
