"""Reading long-video stores (layout: ``mer_prep.store.long_layout``).

    store = open_long_store("stores/samm-lv/lv128")          # latest version; or a tag
    for video in long_videos(store):                         # every video, failed ones too
        motion = read_video_motion(store, video.video_id)    # VideoMotion at its first k
        truths = video.truths                                # SpotTruth, inclusive frames
        faces = store.faces(video.video_id, frames=[120, 131])  # (2, h, w) uint8 aligned
    get_faces = stored_faces("stores/samm-lv/lv128", run.attrs["store"])  # a spot run's faces
    get_faces(video_id, [120, 131])                          # from the version the run read

Every array read is checked: its chunks' codec CRC-32C on decode, then each time chunk's
values against the CRC-32C recorded with the video (``content_crc32c``), and the root
attributes against their digest, so a damaged store raises ``CorruptDataError`` instead of
reading back as other numbers. Faces (a recipe with ``store_faces``) are read by time chunk:
only the chunks holding the frames asked for are fetched, each checked the same way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import icechunk as ic
import numpy as np
import zarr

from mer_prep.errors import (
    ArrayNotFoundError,
    CorruptDataError,
    InvalidArgumentError,
    MerPrepError,
    SchemaError,
)
from mer_prep.evaluation.spotting_intervals import SpotTruth
from mer_prep.motion.video_motion import VideoMotion
from mer_prep.store.long_layout import (
    FACES,
    FRAME_NUMBERS,
    MOTION_ARRAYS,
    LongVersionAttrs,
    VideoAttrs,
    faces_size,
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

    def _read(
        self, attrs: VideoAttrs, path: str, chunks: Sequence[int] | None = None
    ) -> np.ndarray:
        """A video's array, every time chunk checked against its recorded CRC-32C; with
        ``chunks`` (time chunk indices) only those chunks, concatenated in that order."""
        where = f"store {self.location}: {attrs.video_id} {path}"
        try:
            array = array_at(group_at(self.group, video_path(attrs.video_id)), path)
        except Exception as error:  # noqa: BLE001 - a node that does not open is damage
            raise CorruptDataError(f"{where} cannot be opened ({error})") from error
        n = array.shape[0]
        step = attrs.chunk_pairs if path != FRAME_NUMBERS else max(n, 1)
        starts = range(0, max(n, 1), step)
        recorded = attrs.content_crc32c.get(path)
        if recorded is None or len(recorded) != len(starts):
            raise CorruptDataError(f"{where}: no checksum recorded for its chunks")
        parts = []
        for index in range(len(starts)) if chunks is None else chunks:
            start = starts[index]
            try:
                values = read_values(array, slice(start, start + step))
            except Exception as error:  # noqa: BLE001 - a chunk that does not decode is damage
                raise CorruptDataError(
                    f"{where} cannot be read ({type(error).__name__}: {error})"
                ) from error
            if content_crc(values) != recorded[index]:
                raise CorruptDataError(
                    f"{where}: time chunk {index} (rows {start}..) does not match its checksum"
                )
            parts.append(values)
        return np.concatenate(parts) if parts else read_values(array, slice(0, 0))

    @property
    def faces_size(self) -> tuple[int, int] | None:
        """(height, width) of the aligned faces stored per frame; None when the version's
        recipe stores none (``store_faces: false``, or a version older than the switch)."""
        return faces_size(self.info)

    def check_faces(self) -> None:
        """``ArrayNotFoundError`` (one line) unless the version stores aligned faces."""
        if self.faces_size is None:
            raise ArrayNotFoundError(
                f"store {self.location} version {self.version_id} keeps no aligned faces "
                f"(recipe {self.info.recipe.name}: store_faces is off)"
            )

    def faces(
        self,
        video_id: str,
        frames: Sequence[int] | None = None,
        *,
        positions: Sequence[int] | None = None,
    ) -> np.ndarray:
        """The aligned grey faces of ``video_id`` at the dataset's frame numbers ``frames`` or
        at 0-based ``positions`` (one of the two; neither: every frame): (n, h, w) uint8,
        ``round(255 * aligned)``, in the order asked. Only the time chunks holding them are
        read, each checked against its CRC-32C. ``ArrayNotFoundError`` (one line) when the
        version stores no faces; ``InvalidArgumentError`` for a frame the video does not
        have or a video that failed."""
        self.check_faces()
        attrs = self.entry(video_id).attrs
        where = f"store {self.location}: video {video_id}"
        if attrs.status != "ok":
            raise InvalidArgumentError(f"{where} failed when it was computed: {attrs.error}")
        if frames is not None and positions is not None:
            raise InvalidArgumentError(f"{where}: faces at frame numbers or positions, not both")
        if frames is not None:
            numbers = self._read(attrs, FRAME_NUMBERS)
            index = {int(number): i for i, number in enumerate(numbers)}
            unknown = [int(f) for f in frames if int(f) not in index]
            if unknown:
                raise InvalidArgumentError(f"{where} has no frame numbered {unknown[0]}")
            positions = [index[int(f)] for f in frames]
        if positions is None:
            return self._read(attrs, FACES)
        wanted = np.asarray(positions, np.int64).reshape(-1)
        if len(wanted) and (wanted.min() < 0 or wanted.max() >= attrs.n_frames):
            raise InvalidArgumentError(
                f"{where}: frame positions must lie in 0..{attrs.n_frames - 1}"
            )
        chunks = sorted(set((wanted // attrs.chunk_pairs).tolist()))
        values = self._read(attrs, FACES, chunks)
        # the rows of the chunks read, in ``chunks`` order: where each wanted frame sits
        offset = {c: i * attrs.chunk_pairs for i, c in enumerate(chunks)}
        rows = [offset[p // attrs.chunk_pairs] + p % attrs.chunk_pairs for p in wanted.tolist()]
        return values[rows]

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


class StoredFaces:
    """The aligned faces of a long-video store's version, by video: ``get(video_id,
    frame_numbers)`` -> (n, h, w) uint8 (``LongVideoStore.faces``). The version is opened on
    the first call; when it cannot be (gone, no faces, not a long-video store) every call
    raises the same one-line ``MerPrepError``, kept in ``problem``."""

    def __init__(self, store: Location, version: str | None = None) -> None:
        self.store, self.version = store, version
        self._opened: LongVideoStore | None = None
        self.problem: MerPrepError | None = None

    def _open(self) -> LongVideoStore:
        if self.problem is not None:
            raise self.problem
        if self._opened is None:
            try:
                opened = open_long_store(self.store, self.version)
                opened.check_faces()
                self._opened = opened
            except MerPrepError as error:
                self.problem = error
                raise
        return self._opened

    def __call__(self, video_id: str, frame_numbers: Sequence[int]) -> np.ndarray:
        return self._open().faces(video_id, frames=frame_numbers)


def stored_faces(
    store: Location, read: Mapping[str, Any] | None = None, *, current: str | None = None
) -> StoredFaces:
    """The faces a spotting run looked at: those of the version it read (``read``: the run
    record's ``attrs["store"]``, whose ``version_id`` names it) or, when it names none, of
    ``current`` (a version tag; None: the store's latest). Never raises; its calls say in one
    line why faces cannot be read (that version gone from the store, a recipe without
    ``store_faces``)."""
    version = (read or {}).get("version_id") or current
    return StoredFaces(store, str(version) if version else None)


def read_video_motion(
    store: LongVideoStore | Location, video_id: str, k: int | None = None
) -> VideoMotion:
    """The stored ``VideoMotion`` of one video (``k``: a stored pair distance; None: the
    smallest)."""
    return _store(store).motion(video_id, k)
