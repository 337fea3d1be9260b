"""Checksums of a stored split (``splits/<name>``), written with it and checked on every read.

A split is a group of JSON attributes (fold names, kind, leakiness, SMOTE settings) and small
arrays (``test_fold``, ``class_weights``, the SMOTE plans). Their chunks carry a CRC-32C like
every stored chunk, but a flipped bit in Icechunk's snapshot or manifest files can still change
an attribute, an array's shape, or drop a chunk's reference (zarr then reads the fill value:
every row in fold 0) without any chunk failing its checksum. So a split carries, like a run
record (``mer_prep.train.record_digest``) and a feature version:

- ``array_digests``: ``schema.array_digest`` of each of its arrays as written;
- ``attrs_digest``: ``schema.attrs_digest`` of all its attributes, ``array_digests`` included.

A split that carries them has ``schema_version`` 2; splits written before digests (version 1,
neither key) read unchecked, and ``mer-prep verify`` calls them "written before checksums"
rather than broken. The version, not the keys' presence, tells the two apart: Icechunk keeps
attributes compressed, so one flipped bit can rename both keys at once (a back-reference
copies it), while no single bit turns a 2 into a 1.
"""

from __future__ import annotations

import numpy as np

from mer_prep.errors import CorruptDataError
from mer_prep.store.schema import DIGEST_KEY, array_digest, attrs_digest

ARRAY_DIGESTS_KEY = "array_digests"
#: ``schema_version`` of the splits that carry digests (version 1: written before them)
DIGESTED_SCHEMA_VERSION = 2

PREDATES_SPLIT_CHECKSUMS = (
    "written before splits carried checksums: a flipped bit in it cannot "
    "be detected; commit it again with `mer-prep split` to get a "
    "verifiable one"
)


def seal_split(attrs: dict, arrays: dict[str, np.ndarray]) -> dict:
    """``attrs`` (JSON-able) plus the digests of ``arrays`` (name -> values as written) and of
    the attributes themselves."""
    sealed = {
        **attrs,
        ARRAY_DIGESTS_KEY: {name: array_digest(values) for name, values in sorted(arrays.items())},
    }
    sealed[DIGEST_KEY] = attrs_digest(sealed)
    return sealed


def predates_checksums(attrs: dict) -> bool:
    """True for a split written before splits carried digests: version 1, neither key."""
    return (
        attrs.get("schema_version") == 1
        and DIGEST_KEY not in attrs
        and ARRAY_DIGESTS_KEY not in attrs
    )


VERIFY_HINT = "; run `mer-prep verify`"


def check_split_attrs(attrs: dict, where: str, hint: str = VERIFY_HINT) -> dict[str, str]:
    """The split's array digests (name -> digest) once its attributes match their digest;
    ``{}`` for a split written before digests. ``where`` names store and split in the error,
    ``hint`` ends it (what to do)."""
    if predates_checksums(attrs):
        return {}
    digests = attrs.get(ARRAY_DIGESTS_KEY)
    if attrs.get(DIGEST_KEY) != attrs_digest(attrs) or not isinstance(digests, dict):
        raise CorruptDataError(
            f"{where}: the split's attributes do not match their digest (corrupt metadata){hint}"
        )
    return digests


def check_split_array(
    digests: dict[str, str], name: str, values: np.ndarray, where: str, hint: str = VERIFY_HINT
) -> np.ndarray:
    """``values`` (array ``name`` of the split, read whole) once they match the digest written
    with them; unchecked when ``digests`` is empty (a split written before digests)."""
    if not digests:
        return values
    if name not in digests:
        raise CorruptDataError(
            f"{where}: array {name!r} is not one the split wrote (corrupt metadata){hint}"
        )
    if array_digest(values) != digests[name]:
        raise CorruptDataError(
            f"{where}: array {name!r} reads back other values than were "
            f"written (corrupt chunk or manifest){hint}"
        )
    return values
