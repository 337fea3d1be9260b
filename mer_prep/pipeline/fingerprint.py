"""Input fingerprints: what a sample's stored arrays depend on, as a content hash.

A sample's fingerprint covers its annotation (onset/apex/offset, label, fps, ...) and the bytes
of every frame processing may read: the frames the recipe reads, the frames after the onset
that face detection falls back to when the onset frame shows no face
(``mer_prep.face.cascade.NEXT_FRAMES``), and, for a recipe that stores depth, the depth frames at
the recipe's positions. Editing any of those changes it and nothing else does.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from functools import lru_cache

from mer_prep.errors import SampleError
from mer_prep.face.cascade import NEXT_FRAMES
from mer_prep.pipeline.frame_selection import clip_span, select_frames
from mer_prep.recipes import Recipe
from mer_prep.sample import Problem, Sample

_CHUNK = 1 << 20


def _hash_file(digest: hashlib._Hash, path: str) -> bool:
    """Hash the file's bytes into ``digest``; False (and a marker hashed) when it is unreadable."""
    try:
        with open(path, "rb") as handle:
            while block := handle.read(_CHUNK):
                digest.update(block)
    except OSError as error:
        # The unreadable file is reported when the sample is processed; here it only
        # has to make the fingerprint differ from a readable one.
        digest.update(f"unreadable:{error.__class__.__name__}".encode())
        return False
    return True


def _hash_video(digest: hashlib._Hash, path: str) -> bool:
    """Hash a video's bytes into ``digest`` (all of them: decoding reads the stream from its
    start up to the last frame needed, and a container's index may sit at its end); the file's
    hash is computed once per file version, as many samples share one recording."""
    try:
        stat = os.stat(path)
        digest.update(f"video:{_video_digest(path, stat.st_size, stat.st_mtime_ns)}".encode())
    except OSError as error:
        digest.update(f"unreadable:{error.__class__.__name__}".encode())
        return False
    return True


@lru_cache(maxsize=256)
def _video_digest(path: str, _size: int, _mtime_ns: int) -> str:
    # size and mtime: only in the cache key, so that a replaced file is hashed again
    inner = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(_CHUNK):
            inner.update(block)
    return inner.hexdigest()


def sample_fingerprint(sample: Sample, recipe: Recipe) -> str:
    """sha256 (hex, 32 digits) of the sample's annotation and the bytes of the frames it reads."""
    return fingerprint_inputs(sample, recipe)[0]


def fingerprint_inputs(sample: Sample, recipe: Recipe) -> tuple[str, bool]:
    """``(sample_fingerprint, readable)``: readable is False when a frame (or the video) the
    recipe reads could not be read while fingerprinting. Such a sample's fingerprint names the
    unreadable state, so its failure is permanent under it; an I/O error on a file that *was*
    readable here is one that may pass (``Failure.kind``)."""
    record = {
        "id": sample.sample_id,
        "onset": sample.onset,
        "apex": sample.apex,
        "offset": sample.offset,
        "fps": sample.fps,
        "emotion": sample.emotion,
        "label": sample.label,
        "aus": sample.action_units,
        "frames": list(sample.frame_numbers),
    }
    if sample.partition:  # DFME: the sheet a row is in; moving a clip between parts moves no byte
        record["partition"] = sample.partition
    digest = hashlib.sha256(json.dumps(record, sort_keys=True).encode())
    try:
        positions = select_frames(sample, recipe)
    except SampleError as error:
        digest.update(f"unselectable:{error}".encode())
        return digest.hexdigest()[:32], True
    readable = True
    if sample.video_path:
        readable = _hash_video(digest, sample.video_path)
    else:
        for position in sorted(set(positions.tolist())):
            readable &= _hash_file(digest, sample.frame_paths[position])
        # Read only when the onset frame shows no face; an unreadable one then fails
        # detection, not the frames' read, so it leaves ``readable`` alone.
        digest.update(b"detection fallback")
        for position in _fallback_positions(sample, positions):
            _hash_file(digest, sample.frame_paths[position])
    if recipe.depth and sample.depth_paths:
        # Depth is read at the stored positions, a subset of those read: hashing all of them
        # keeps the fingerprint independent of the keyframe choice, which needs the pixels.
        digest.update(b"depth")
        for position in sorted(set(positions.tolist())):
            if position < len(sample.depth_paths):
                readable &= _hash_file(digest, sample.depth_paths[position])
    return digest.hexdigest()[:32], readable


def _fallback_positions(sample: Sample, positions) -> list[int]:
    """Positions of the frames after the onset that the detection cascade may read, beyond
    ``positions`` (the recipe's)."""
    onset = clip_span(sample).onset
    wanted = range(onset + 1, min(onset + 1 + NEXT_FRAMES, len(sample.frame_paths)))
    return sorted(set(wanted) - set(positions.tolist()))


def dataset_fingerprint(
    sample_fingerprints: Iterable[str],
    problems: Iterable[Problem],
    labels: str,
    corrections: Iterable = (),
) -> str:
    """One hash over every sample fingerprint, the scan's problems, the label scheme and the
    annotation corrections (``CorrectionRecord``: a corrected sheet, or one correction more,
    is another input even where no stored value changes, as the store records them; a
    corrections file counts by its name, not where it lies). Without corrections the hash is
    what it was before they counted."""
    digest = hashlib.sha256(f"labels:{labels}".encode())
    for value in sorted(sample_fingerprints):
        digest.update(value.encode())
    for problem in sorted(str(p) for p in problems):
        digest.update(problem.encode())
    for record in sorted(
        json.dumps({**c.to_dict(), "file": os.path.basename(c.file)}, sort_keys=True, default=str)
        for c in corrections
    ):
        digest.update(f"correction:{record}".encode())
    return digest.hexdigest()[:32]
