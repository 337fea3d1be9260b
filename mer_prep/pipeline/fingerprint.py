"""Input fingerprints: what a sample's stored arrays depend on, as a content hash.

A sample's fingerprint covers its annotation (onset/apex/offset, label, fps, ...) and the bytes
of exactly the frames the recipe reads, so editing any of those changes it and nothing else does.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable

from mer_prep.errors import SampleError
from mer_prep.pipeline.frame_selection import select_frames
from mer_prep.recipes import Recipe
from mer_prep.sample import Problem, Sample

_CHUNK = 1 << 20


def _hash_file(digest: "hashlib._Hash", path: str) -> None:
    try:
        with open(path, "rb") as handle:
            while block := handle.read(_CHUNK):
                digest.update(block)
    except OSError as error:
        # The unreadable file is reported when the sample is processed; here it only
        # has to make the fingerprint differ from a readable one.
        digest.update(f"unreadable:{error.__class__.__name__}".encode())


def sample_fingerprint(sample: Sample, recipe: Recipe) -> str:
    """sha256 (hex, 32 digits) of the sample's annotation and the bytes of the frames it reads."""
    record = {
        "id": sample.sample_id, "onset": sample.onset, "apex": sample.apex,
        "offset": sample.offset, "fps": sample.fps, "emotion": sample.emotion,
        "label": sample.label, "aus": sample.action_units, "frames": list(sample.frame_numbers),
    }
    digest = hashlib.sha256(json.dumps(record, sort_keys=True).encode())
    try:
        positions = select_frames(sample, recipe)
    except SampleError as error:
        digest.update(f"unselectable:{error}".encode())
        return digest.hexdigest()[:32]
    if sample.video_path:
        stat = os.stat(sample.video_path) if os.path.exists(sample.video_path) else None
        digest.update(f"video:{stat.st_size if stat else -1}:{stat.st_mtime_ns if stat else -1}".encode())
    else:
        for position in sorted(set(positions.tolist())):
            _hash_file(digest, sample.frame_paths[position])
    return digest.hexdigest()[:32]


def dataset_fingerprint(sample_fingerprints: Iterable[str], problems: Iterable[Problem],
                        labels: str) -> str:
    """One hash over every sample fingerprint, the scan's problems and the label scheme."""
    digest = hashlib.sha256(f"labels:{labels}".encode())
    for value in sorted(sample_fingerprints):
        digest.update(value.encode())
    for problem in sorted(str(p) for p in problems):
        digest.update(problem.encode())
    return digest.hexdigest()[:32]
