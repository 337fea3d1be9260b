"""The long-video store format: names, the typed attributes of a version and of each video, and
the checks of ``storage_schemas/long_video_store.v1.json``.

A long-video version lives in an Icechunk repository exactly as a clip version does (branch
``main``, one tag per version id, the root attributes' digest); only the layout under the root
differs::

    /                          attrs: LongVersionAttrs (schema "mer-prep/long-video-store")
    videos/<subject>/<video>/  attrs: VideoAttrs (fps, status, fingerprint, face, truths, CRCs)
        frame_numbers          (frame,) int64: the dataset's number of each frame, one chunk
        faces                  (frame, y, x) uint8: each frame's aligned grey face,
                               round(255 * aligned), chunks of ``chunk_pairs`` frames (time);
                               only when the recipe has ``store_faces`` (``faces_size``)
        k<k>/magnitude         (pair, roi) float32, chunks of ``chunk_pairs`` pairs (time)
        k<k>/main_direction    (pair, roi) float32, same chunks
        k<k>/strain            (pair, roi) float32, same chunks

``<subject>`` is dataset-qualified (``samm-lv/006``), so a video's group path is
``videos/`` + its ``video_id``. Row ``i`` of a ``k<k>`` array is the motion from frame ``i``
to ``i + k`` (``mer_prep.motion.video_motion.VideoMotion``); columns are the root's
``roi_names``. Every chunk ends with its CRC-32C (the clip arrays' codecs), and the video's
``content_crc32c`` holds, per array path, the CRC-32C of each chunk's values as computed
(``schema.content_crc``), which verification and reads check; the root's ``video_digests``
holds a digest of each video's attributes, so the root attributes' digest covers every video's.
Row ``i`` of ``faces`` is frame position ``i`` (``frame_numbers[i]``) at the recipe's
``align.size`` (height, width); a version stores it exactly when its recipe's parameters say
``store_faces: true`` (versions written before the switch hold none). A failed video keeps its
group (``status: failed``, ``error``) without arrays.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import jsonschema
import numpy as np
import zarr
from pydantic import BaseModel, ConfigDict, ValidationError

from mer_prep.errors import CorruptDataError, SchemaError
from mer_prep.store.layout import FailureAttrs, RecipeAttrs
from mer_prep.store.nodes import array_at, group_at
from mer_prep.store.schema import _check_codec, _dims, attrs_digest, load_schema, validate_attrs

LONG_SCHEMA_FILE = "long_video_store.v1.json"
LONG_SCHEMA_NAME = "mer-prep/long-video-store"
LONG_KIND = "long_video"
VIDEOS_GROUP = "videos"
FRAME_NUMBERS = "frame_numbers"
FACES = "faces"
FACE_DIMS = ("frame", "y", "x")
MOTION_ARRAYS: tuple[str, ...] = ("magnitude", "main_direction", "strain")
MOTION_DIMS = ("pair", "roi")


def video_path(video_id: str) -> str:
    """The group of a video: ``videos/<subject>/<video>``."""
    return f"{VIDEOS_GROUP}/{video_id}"


def k_path(k: int) -> str:
    """The group of one pair distance inside a video's group."""
    return f"k{k}"


def motion_path(k: int, name: str) -> str:
    """An array's path inside a video's group: ``k<k>/<name>``."""
    return f"{k_path(k)}/{name}"


class _Attrs(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow")


class LongReuseAttrs(_Attrs):
    """What a refresh kept from ``from_version`` (None: a fresh layout), in videos."""

    from_version: str | None
    n_reused: int
    n_recomputed: int


class TruthAttrs(_Attrs):
    """One annotated interval of a video: inclusive frame numbers of the dataset."""

    kind: str
    onset: int
    apex: int | None = None
    offset: int
    emotion: str | None = None


class VideoAttrs(_Attrs):
    """The attributes of a video's group (schema ``$defs/video``). ``ks``: the pair distances
    stored (frames); ``chunk_pairs``: pairs per time chunk; ``face``: what was found once on
    the first frame (box left/top/right/bottom and 68 landmarks in source pixels, the (2, 3)
    alignment matrix), None when the video failed before; ``chunk_boxes``: with a tracking
    recipe, the box each time chunk was aligned with; ``content_crc32c``: array path ->
    CRC-32C of each chunk's values."""

    video_id: str
    subject: str
    video: str
    fps: float
    n_frames: int
    status: str
    fingerprint: str
    ks: list[int]
    chunk_pairs: int
    truths: list[TruthAttrs]
    face: dict[str, Any] | None = None
    error: str = ""
    content_crc32c: dict[str, list[int]] = {}
    chunk_boxes: list[list[int]] | None = None

    def n_pairs(self, k: int) -> int:
        return self.n_frames - k


class LongVersionAttrs(_Attrs):
    """The root attributes of one long-video version (``storage_schemas/long_video_store``)."""

    model_config = ConfigDict(
        frozen=True,
        extra="allow",
        populate_by_name=True,
        alias_generator=lambda name: "schema" if name == "schema_" else name,
    )

    schema_: str = LONG_SCHEMA_NAME
    schema_version: int = 1
    kind: str = LONG_KIND
    dataset: str
    recipe: RecipeAttrs
    input_fingerprint: str
    code_version: str
    version_id: str
    inputs_version_id: str
    complete: bool
    created: str
    n_videos: int
    n_ok: int
    roi_names: list[str]
    videos: list[str]
    failures: list[FailureAttrs]
    reuse: LongReuseAttrs
    video_digests: dict[str, str]
    stage_seconds: dict[str, float] | None = None
    attrs_digest: str | None = None

    def to_attrs(self) -> dict[str, Any]:
        dumped = self.model_dump(mode="json", by_alias=True)
        return {k: v for k, v in dumped.items() if v is not None or k not in ("stage_seconds",)}


def faces_size(info: LongVersionAttrs) -> tuple[int, int] | None:
    """(height, width) of the aligned faces a version stores per frame (its recipe's
    ``align.size``), or None when its recipe does not store them (``store_faces`` false, or a
    version written before the switch existed)."""
    parameters = info.recipe.parameters
    if parameters.get("store_faces") is not True:
        return None
    height, width = parameters["align"]["size"]
    return int(height), int(width)


def is_long_video_attrs(attrs: Any) -> bool:
    """Whether root attributes are a long-video version's."""
    return dict(attrs).get("schema") == LONG_SCHEMA_NAME


@cache
def _video_validator() -> jsonschema.Draft202012Validator:
    document = load_schema(LONG_SCHEMA_FILE)
    return jsonschema.Draft202012Validator({"$defs": document["$defs"], "$ref": "#/$defs/video"})


def video_attrs(group: zarr.Group, video_id: str, digest: str | None = None) -> VideoAttrs:
    """The checked attributes of a video's group: ``SchemaError`` when malformed,
    ``CorruptDataError`` when they do not match ``digest`` (the root's ``video_digests``
    entry, itself covered by the root attributes' digest)."""
    attrs = dict(group.attrs)
    if digest is not None and attrs_digest(attrs) != digest:
        raise CorruptDataError(
            f"video {video_id}: its attributes do not match their digest (corrupt metadata)"
        )
    errors = sorted(_video_validator().iter_errors(attrs), key=lambda e: list(e.path))
    if errors:
        where = "/".join(map(str, errors[0].path)) or "<video>"
        raise SchemaError(f"video {video_id}: attributes {where}: {errors[0].message}")
    try:
        return VideoAttrs.model_validate(attrs)
    except ValidationError as error:
        raise SchemaError(f"video {video_id}: attributes: {error.errors()[0]['msg']}") from None


def long_version_attrs(attrs: dict) -> LongVersionAttrs:
    """The checked root attributes of a long-video version (``SchemaError`` when malformed)."""
    validate_attrs(attrs, LONG_SCHEMA_FILE)
    try:
        return LongVersionAttrs.model_validate(attrs)
    except ValidationError as error:
        raise SchemaError(f"long-video attributes: {error.errors()[0]['msg']}") from None


def _check_array(
    group: zarr.Group, path: str, shape: tuple[int, ...], dtype: str, dims, chunk: int
) -> None:
    array = array_at(group, path)
    rules = load_schema(LONG_SCHEMA_FILE)["x-zarr"]
    if tuple(array.shape) != shape or array.dtype != np.dtype(dtype):
        raise SchemaError(f"{path}: {array.dtype} {array.shape} != {dtype} {shape}")
    if _dims(array) != tuple(dims):
        raise SchemaError(f"{path}: dimension names {_dims(array)} != {tuple(dims)}")
    # whole rows (frames, pair rows) per chunk: a time chunk is one zarr chunk
    if array.chunks[0] != min(chunk, max(shape[0], 1)) or array.chunks[1:] != shape[1:]:
        raise SchemaError(f"{path}: chunks {array.chunks} are not {chunk} along time")
    _check_codec(path, array, rules)


def validate_long_group(group: zarr.Group) -> LongVersionAttrs:
    """Validate a whole long-video version: root attributes, every video's attributes and
    arrays (shapes, dtypes, dims, time chunks, codecs; ``faces`` when the recipe stores them);
    its root attributes, typed."""
    info = long_version_attrs(dict(group.attrs))
    size = faces_size(info)
    for video_id in info.videos:
        path = video_path(video_id)
        if path not in group:
            raise SchemaError(f"video {video_id}: group {path} is missing")
        video = group_at(group, path)
        if video_id not in info.video_digests:
            raise SchemaError(f"video {video_id}: no digest of its attributes in the root's")
        attrs = video_attrs(video, video_id, info.video_digests[video_id])
        if attrs.status != "ok":
            continue
        n = attrs.n_frames
        _check_array(video, FRAME_NUMBERS, (n,), "int64", ("frame",), n)
        if size is not None:
            if FACES not in video:
                raise SchemaError(f"video {video_id}: {FACES} is missing (its recipe stores them)")
            _check_array(video, FACES, (n, *size), "uint8", FACE_DIMS, attrs.chunk_pairs)
        for k in attrs.ks:
            for name in MOTION_ARRAYS:
                shape = (attrs.n_pairs(k), len(info.roi_names))
                _check_array(
                    video, motion_path(k, name), shape, "float32", MOTION_DIMS, attrs.chunk_pairs
                )
    return info
