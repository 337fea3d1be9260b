"""Checksums of a run record, written with it and checked on every read.

A record is a group of JSON attributes plus small arrays (per-clip predictions, checkpoints) on
the store's ``runs`` branch. Its arrays' chunks carry a CRC-32C like the features', but a flipped
bit in Icechunk's snapshot or manifest files can still change an attribute (a fold's seed, a
loss), an array's shape, or drop a chunk's reference (zarr then reads the fill value: every
label 0) without any chunk failing its checksum. So a record carries, like a feature version:

- ``array_digests``: the sha256 of each array's dtype, shape and values
  (``mer_prep.store.schema.array_digest``);
- ``attrs_digest``: the sha256 of all its attributes, ``array_digests`` included
  (``mer_prep.store.schema.attrs_digest``, the features' own mechanism).

:func:`check_record` raises :class:`~mer_prep.train.errors.CorruptRunRecordError` when either
does not match, and records of ``schema_version`` 2 or later must carry both.
"""

from __future__ import annotations

import numpy as np

# array_digest is the store's (splits carry it too); importable from here as before
from mer_prep.store.schema import DIGEST_KEY, array_digest, attrs_digest
from mer_prep.train.errors import CorruptRunRecordError

ARRAY_DIGESTS_KEY = "array_digests"
#: The first record schema version whose records carry digests (older ones read unchecked).
DIGESTED_SCHEMA_VERSION = 2


def seal(attrs: dict, arrays: dict[str, np.ndarray]) -> dict:
    """``attrs`` (JSON-able) with the digests of ``arrays`` (path in the record -> values as
    written) and of the attributes themselves added."""
    sealed = {
        **attrs,
        ARRAY_DIGESTS_KEY: {name: array_digest(values) for name, values in sorted(arrays.items())},
    }
    sealed[DIGEST_KEY] = attrs_digest(sealed)
    return sealed


def check_attrs(attrs: dict, where: str) -> dict[str, str]:
    """The record's array digests (path -> digest) once its attributes match their digest;
    ``{}`` for a record older than digests. ``where`` names the record in the error."""
    version = attrs.get("schema_version")
    if not isinstance(version, int) or version < DIGESTED_SCHEMA_VERSION:
        if DIGEST_KEY not in attrs and ARRAY_DIGESTS_KEY not in attrs:
            return {}
    if DIGEST_KEY not in attrs or attrs[DIGEST_KEY] != attrs_digest(attrs):
        raise CorruptRunRecordError(
            f"{where}: the record's attributes do not match their digest "
            f"(corrupt metadata); run `mer-prep verify`"
        )
    digests = attrs.get(ARRAY_DIGESTS_KEY)
    if not isinstance(digests, dict):
        raise CorruptRunRecordError(f"{where}: the record has no array digests (corrupt metadata)")
    return digests


def check_array(digests: dict[str, str], name: str, values: np.ndarray, where: str) -> None:
    """Raise unless ``values`` (array ``name`` as read) match the digest recorded for it; no
    check when the record has no digests (``digests`` empty: older than digests)."""
    if not digests:
        return
    if name not in digests:
        raise CorruptRunRecordError(
            f"{where}: array {name!r} is not one the record wrote "
            f"(corrupt metadata); run `mer-prep verify`"
        )
    if array_digest(values) != digests[name]:
        raise CorruptRunRecordError(
            f"{where}: array {name!r} reads back other values than were "
            f"written (corrupt chunk or manifest); run `mer-prep verify`"
        )
