"""Verification of a long-video version (``mer-prep verify``; layout: ``long_layout``).

Every time chunk of every video's arrays (the aligned ``faces`` too, when the recipe stores
them) is decoded (its codec CRC-32C checked), compared with
the CRC-32C of its values recorded with the video (``content_crc32c``) and checked for NaN or
infinity; the root attributes are checked against their digest and the whole layout against
``storage_schemas/long_video_store.v1.json``. A finding names the array path, the video and the
time chunk. Nothing of a clip version (sample table, per-sample arrays) is expected here.
"""

from __future__ import annotations

import numpy as np
import zarr

from mer_prep.store.long_layout import (
    FACES,
    FRAME_NUMBERS,
    MOTION_ARRAYS,
    faces_size,
    long_version_attrs,
    motion_path,
    validate_long_group,
    video_attrs,
    video_path,
)
from mer_prep.store.nodes import array_at, group_at, read_values
from mer_prep.store.schema import attrs_problem, content_crc


def verify_long_group(group: zarr.Group) -> list[tuple[str, str, str]]:
    """The findings of one long-video version: (array path or ``(attributes)`` /
    ``(layout)``, video id or "", problem); empty when it is intact."""
    attrs = dict(group.attrs)
    problem = attrs_problem(attrs)
    if problem is not None:
        return [("(attributes)", "", f"the attributes {problem}")]
    try:
        validate_long_group(group)
    except Exception as error:  # noqa: BLE001 - a layout that no longer validates is a finding
        return [("(layout)", "", str(error).splitlines()[0])]
    found: list[tuple[str, str, str]] = []
    version = long_version_attrs(attrs)
    faces = [FACES] if faces_size(version) is not None else []
    for video_id in version.videos:
        video = group_at(group, video_path(video_id))
        info = video_attrs(video, video_id)
        if info.status != "ok":
            continue
        motion = [motion_path(k, n) for k in info.ks for n in MOTION_ARRAYS]
        paths = [FRAME_NUMBERS, *faces, *motion]
        for path in paths:
            recorded = info.content_crc32c.get(path, [])
            array = array_at(video, path)
            step = array.chunks[0]
            for index, start in enumerate(range(0, max(array.shape[0], 1), step)):
                where = f"{video_path(video_id)}/{path}"
                try:
                    values = read_values(array, slice(start, start + step))
                    if index >= len(recorded):
                        raise ValueError("no checksum recorded for this chunk")
                    if content_crc(values) != recorded[index]:
                        raise ValueError("values do not match their recorded CRC-32C")
                    if values.dtype.kind == "f" and not np.isfinite(values).all():
                        raise ValueError(
                            f"{int((~np.isfinite(values)).sum())} NaN/infinite value(s)"
                        )
                except Exception as error:  # noqa: BLE001 - any decode failure is the finding
                    found.append(
                        (f"{where} chunk {index}", video_id, f"{type(error).__name__}: {error}")
                    )
    return found
