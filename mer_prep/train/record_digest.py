"""Checksums of a run record, written with it and checked on every read (the functions are
``mer_prep.store.run_branch``'s, shared by every kind of record; named here as before).

A record is a group of JSON attributes plus small arrays (per-clip predictions, checkpoints) on
the store's ``runs`` branch. Its arrays' chunks carry a CRC-32C like the features', but a flipped
bit in Icechunk's snapshot or manifest files can still change an attribute (a fold's seed, a
loss), an array's shape, or drop a chunk's reference (zarr then reads the fill value: every
label 0) without any chunk failing its checksum. So a record carries, like a feature version:

- ``array_digests``: the sha256 of each array's dtype, shape and values
  (``mer_prep.store.schema.array_digest``);
- ``attrs_digest``: the sha256 of all its attributes, ``array_digests`` included
  (``mer_prep.store.schema.attrs_digest``, the features' own mechanism).

:func:`check_record` raises :class:`~mer_prep.store.run_branch.CorruptRunRecordError` when either
does not match, and records of ``schema_version`` 2 or later must carry both.
"""

from __future__ import annotations

# array_digest is the store's (splits carry it too); importable from here as before
from mer_prep.store.run_branch import (
    ARRAY_DIGESTS_KEY,
    DIGESTED_SCHEMA_VERSION,
    check_array,
    check_attrs,
    seal,
)
from mer_prep.store.schema import DIGEST_KEY, array_digest, attrs_digest

__all__ = [
    "ARRAY_DIGESTS_KEY",
    "DIGESTED_SCHEMA_VERSION",
    "DIGEST_KEY",
    "array_digest",
    "attrs_digest",
    "check_array",
    "check_attrs",
    "seal",
]
