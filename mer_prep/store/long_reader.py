"""Reading long-video stores (layout: ``mer_prep.store.long_layout``).

    store = open_long_store("stores/samm-lv/lv128")          # latest version; or a tag
    for video in long_videos(store):                         # every video, failed ones too
        motion = read_video_motion(store, video.video_id)    # VideoMotion at its first k
        truths = video.truths                                # SpotTruth, inclusive frames

Every array read is checked: its chunks' codec CRC-32C on decode, then each time chunk's
values against the CRC-32C recorded with the video (``content_crc32c``), and the root
attributes against their digest, so a damaged store raises ``CorruptDataError`` instead of
reading back as other numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import icechunk as ic
import numpy as np
import zarr

from mer_prep.errors import CorruptDataError, InvalidArgumentError, SchemaError
from mer_prep.evaluation.spotting_intervals import SpotTruth
from mer_prep.motion.video_motion import VideoMotion
from mer_prep.store.long_layout import (
    FRAME_NUMBERS,
    MOTION_ARRAYS,
    LongVersionAttrs,
    VideoAttrs,
    is_long_video_attrs,
    long_version_attrs,
    motion_path,
    video_attrs,
    video_path,
)
from mer_prep.store.nodes import array_at, group_at, read_values
from mer_prep.store.reader import checked_attrs, open_version_group
from mer_prep.store.repo import Location, StoreLocation
from mer_prep.store.schema import content_crc


@dataclass(frozen=True)
class LongVideoEntry:
    """One video of a long-video version: its id, subject and whether it was computed
    (``ok``), its attributes (``attrs``: fps, frame count, pair distances, face record...) and
    its annotated ``truths``."""

    video_id: str
    subject: str
    ok: bool
    attrs: VideoAttrs
    truths: tuple[SpotTruth, ...]


class LongVideoStore:
    """One version of a long-video store, read-only."""

    def __init__(
        self, location: StoreLocation, repo: ic.Repository, session: ic.Session, group: zarr.Group
    ) -> None:
        self.location, self.repo, self.session, self.group = location, repo, session, group

    @cached_property
    def info(self) -> LongVersionAttrs:
        """The root attributes, checked against their digest and the schema."""
        try:
            return long_version_attrs(checked_attrs(self.group, self.location))
        except SchemaError as error:
            raise CorruptDataError(f"store {self.location}: {error}") from None

    @property
    def version_id(self) -> str:
        return self.info.version_id

    def entry(self, video_id: str) -> LongVideoEntry:
        """The video ``video_id`` (``InvalidArgumentError`` naming the known ones if absent)."""
        if video_id not in self.info.videos:
            shown = ", ".join(self.info.videos[:5])
            raise InvalidArgumentError(
                f"store {self.location} has no video {video_id!r} (it holds "
                f"{len(self.info.videos)}: {shown}{', ...' if len(self.info.videos) > 5 else ''})"
            )
        try:
            group = group_at(self.group, video_path(video_id))
            attrs = video_attrs(group, video_id, self.info.video_digests.get(video_id, ""))
        except (SchemaError, CorruptDataError, KeyError) as error:
            raise CorruptDataError(f"store {self.location}: video {video_id}: {error}") from None
        subject = attrs.subject
        truths = [
            SpotTruth(attrs.video, t.onset, t.offset, t.kind, subject, t.emotion)
            for t in attrs.truths
        ]
        return LongVideoEntry(video_id, subject, attrs.status == "ok", attrs, tuple(truths))

    def _read(self, attrs: VideoAttrs, path: str) -> np.ndarray:
        """A video's array, every time chunk checked against its recorded CRC-32C."""
        where = f"store {self.location}: {attrs.video_id} {path}"
        try:
            array = array_at(group_at(self.group, video_path(attrs.video_id)), path)
            values = read_values(array)
        except Exception as error:  # noqa: BLE001 - a chunk that does not decode is damage
            raise CorruptDataError(
                f"{where} cannot be read ({type(error).__name__}: {error})"
            ) from error
        recorded = attrs.content_crc32c.get(path)
        step = attrs.chunk_pairs if path != FRAME_NUMBERS else max(len(values), 1)
        starts = range(0, max(len(values), 1), step)
        if recorded is None or len(recorded) != len(starts):
            raise CorruptDataError(f"{where}: no checksum recorded for its chunks")
        for index, start in enumerate(starts):
            if content_crc(values[start : start + step]) != recorded[index]:
                raise CorruptDataError(
                    f"{where}: time chunk {index} (pairs {start}..) does not match its checksum"
                )
        return values

    def motion(self, video_id: str, k: int | None = None) -> VideoMotion:
        """The ``VideoMotion`` of ``video_id`` at pair distance ``k`` (None: its smallest)."""
        attrs = self.entry(video_id).attrs
        if attrs.status != "ok":
            raise InvalidArgumentError(
                f"store {self.location}: video {video_id} failed when it was computed: "
                f"{attrs.error}"
            )
        k = min(attrs.ks) if k is None else k
        if k not in attrs.ks:
            raise InvalidArgumentError(f"video {video_id} holds k {attrs.ks}, not {k}")
        values = {name: self._read(attrs, motion_path(k, name)) for name in MOTION_ARRAYS}
        return VideoMotion(
            video_id=attrs.video_id,
            subject=attrs.subject,
            fps=attrs.fps,
            k=k,
            frame_numbers=self._read(attrs, FRAME_NUMBERS).astype(np.int64),
            roi_names=tuple(self.info.roi_names),
            magnitude=values["magnitude"],
            main_direction=values["main_direction"],
            strain=values["strain"],
        )

    def __repr__(self) -> str:
        info = self.info
        return (
            f"<LongVideoStore {self.location} {info.version_id}: {info.dataset}/"
            f"{info.recipe.name}, {info.n_ok} of {info.n_videos} videos>"
        )


def open_long_store(path: Location, version: str | None = None) -> LongVideoStore:
    """Open a long-video store at its latest version or a version tag (``SchemaError`` when the
    store holds clips)."""
    location, repo, session, group = open_version_group(path, version)
    if not is_long_video_attrs(group.attrs):
        raise SchemaError(
            f"store {location} holds clips, not long-video motion (written by a clip recipe)"
        )
    return LongVideoStore(location, repo, session, group)


def is_long_video_store(path: Location) -> bool:
    """Whether the latest version of the store at ``path`` is a long-video one."""
    try:
        _, _, _, group = open_version_group(path)
    except Exception:  # noqa: BLE001 - no store, no version: not a long-video store
        return False
    return is_long_video_attrs(group.attrs)


def _store(store: LongVideoStore | Location) -> LongVideoStore:
    return store if isinstance(store, LongVideoStore) else open_long_store(store)


def long_videos(store: LongVideoStore | Location) -> list[LongVideoEntry]:
    """Every video of the version, in store order, with its subject, status and truths."""
    opened = _store(store)
    return [opened.entry(video_id) for video_id in opened.info.videos]


def read_video_motion(
    store: LongVideoStore | Location, video_id: str, k: int | None = None
) -> VideoMotion:
    """The stored ``VideoMotion`` of one video (``k``: a stored pair distance; None: the
    smallest)."""
    return _store(store).motion(video_id, k)
