"""One spotting run, end to end: tune and spot leave-one-subject-out, record on the store.

    result, record = run_spotting(videos, "mdmd", store=path, store_info={...})

``videos`` are :class:`~mer_prep.spotting.tuning.SpotVideo`s (each video's motion at its stored
pair distances and its truths); the record goes on the ``runs`` branch of ``store``
(``records.save_spot_run``), unless ``record=False``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mer_prep.errors import SchemaError, StoreError
from mer_prep.spotting.learned import spot_any
from mer_prep.spotting.records import SpotRunRecord, save_spot_run, spot_record
from mer_prep.spotting.spotters import DEFAULT_REGIONS
from mer_prep.spotting.tuning import SpotGrid, SpotResult, SpotVideo
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
    seed: int = 0,
    preset: str | None = None,
) -> tuple[SpotResult, SpotRunRecord, str | None]:
    """(result, its record, the record's snapshot id or None when ``store`` is None). ``seed``
    and ``preset``: a learned method's (``methods.LEARNED_METHODS``)."""
    if split not in SPLITS:
        raise NoVideoMotionError(f"unknown spotting split {split!r} (known: {', '.join(SPLITS)})")
    if not videos:
        raise NoVideoMotionError(f"store {store}: no long video with motion to spot")
    result = spot_any(
        videos, method, grid=grid, regions=regions, tune_on=tune_on, seed=seed, preset=preset
    )
    record = spot_record(result, store=store_info or {}, split=split, code_version=code_version())
    snapshot = save_spot_run(store, record) if store is not None else None
    return result, record, snapshot


def spot_store(
    store,
    method: str,
    *,
    split: str = "loso",
    tune_on_test: bool = False,
    source: tuple[list[SpotVideo], dict[str, Any]] | None = None,
    seed: int = 0,
    preset: str | None = None,
) -> tuple[list[SpotVideo], dict[str, Any], SpotResult, SpotRunRecord]:
    """Spot ``store``'s long videos (``source``: videos and what they were read from, else
    ``store_videos(store)``) tuned on training subjects (``tune_on_test``: on the test subject,
    LEAKY) and record the run on ``store``: (videos, info, result, record). ``seed`` /
    ``preset``: a learned method's training seed and preset (None: the method's own)."""
    videos, info = source if source is not None else store_videos(store)
    tune_on = "test" if tune_on_test else "train"
    result, record, _ = run_spotting(
        videos,
        method,
        store=store,
        store_info=info,
        split=split,
        tune_on=tune_on,
        seed=seed,
        preset=preset,
    )
    return videos, info, result, record


def store_videos(store, version: str | None = None) -> tuple[list[SpotVideo], dict[str, Any]]:
    """The long videos of a long-video store (``mer_prep.store.long_reader``) as
    ``SpotVideo``s, each with its motion at every stored pair distance and its truths, and what
    was read (location, dataset, version, snapshot, recipe); ``version``: a tag (None: the
    latest). Videos that failed when the store
    was made have no motion and are left out (listed under ``skipped``)."""
    from mer_prep.store.long_reader import long_videos, open_long_store

    try:
        opened = open_long_store(store, version)
    except SchemaError as error:
        raise NoVideoMotionError(
            f"{error}: spotting reads a long-video store (`mer-prep run <long-video dataset> "
            f"--recipe lv128`); `mer-prep spot STORE --synthetic` spots planted synthetic motion"
        ) from None
    videos, skipped, ks = [], [], set()
    for entry in long_videos(opened):
        if not entry.ok:
            skipped.append(entry.video_id)
            continue
        ks.update(entry.attrs.ks)
        motions = {k: opened.motion(entry.video_id, k) for k in entry.attrs.ks}
        videos.append(SpotVideo(motions, entry.truths))
    recipe = opened.info.recipe
    info = {
        "location": str(opened.location),
        "dataset": opened.info.dataset,
        "version_id": opened.version_id,
        "snapshot_id": opened.session.snapshot_id,
        "motion": f"long-video recipe {recipe.name} ({recipe.hash}), k {sorted(ks)}",
        "skipped": skipped,
    }
    return videos, info
