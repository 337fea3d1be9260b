"""Read every chunk of a store and report what is broken (``mer-prep verify``).

Every chunk carries a CRC-32C (``writer.CHECKSUM``), so a flipped bit raises on decode instead
of reading back as data; every stored split is read whole and checked against the digests of
its attributes and arrays (``split_digest``). Verification decodes each array one sample (one
chunk) at a time, so a report names the array, the sample row and its sample id.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import zarr
from numpy.typing import NDArray
from zarr.codecs import Crc32cCodec

from mer_prep.errors import CorruptDataError
from mer_prep.store.bulk import check_content
from mer_prep.store.layout import SPLITS_GROUP, TABLE_GROUP
from mer_prep.store.long_layout import is_long_video_attrs
from mer_prep.store.long_verify import verify_long_group
from mer_prep.store.nodes import array_at, group_at, read_values
from mer_prep.store.repo import Location, StoreLocation, open_repository, version_tags
from mer_prep.store.schema import attrs_problem, validate_group
from mer_prep.store.split_digest import (
    PREDATES_SPLIT_CHECKSUMS,
    check_split_array,
    check_split_attrs,
    predates_checksums,
)


class NonFiniteValues(ValueError):
    """A sample's stored features hold NaN or infinity (found by verification)."""


@dataclass(frozen=True)
class BrokenChunk:
    """A chunk that does not decode: where (version, array path, sample row) and why."""

    version: str
    array: str
    row: int | None
    sample_id: str
    problem: str
    #: not damage: the version was written before chunks carried checksums, so a flipped bit
    #: in it cannot be detected (its chunks were still decoded, and any that fail are listed)
    predates_checksums: bool = False

    def __str__(self) -> str:
        where = f" row {self.row} ({self.sample_id})" if self.row is not None else ""
        return f"{self.version}: {self.array}{where}: {self.problem}"


def _arrays(group: zarr.Group, prefix: str = "") -> Iterator[tuple[str, zarr.Array]]:
    """Every array under ``group``, with its path below it."""
    for name, member in group.members():
        path = f"{prefix}{name}"
        if isinstance(member, zarr.Array):
            yield path, member
        else:
            yield from _arrays(member, f"{path}/")


def _verify_group(version: str, group: zarr.Group) -> list[BrokenChunk]:
    broken: list[BrokenChunk] = []
    sample_ids: NDArray[Any] | None = None
    crcs: list[dict[str, int]] | None = None  # per row: array path -> CRC-32C of its content
    try:
        sample_ids = read_values(array_at(group, f"{TABLE_GROUP}/sample_id"))
        crcs = [
            json.loads(text or "{}")
            for text in read_values(array_at(group, f"{TABLE_GROUP}/content_crc32c"))
        ]
    except Exception:  # noqa: BLE001 - the table itself is checked below like any array
        pass
    for path, array in _arrays(group):
        if path.startswith(f"{SPLITS_GROUP}/"):
            continue  # read whole and checked against their digests by _verify_splits
        per_sample = array.ndim > 1 and array.chunks[0] == 1
        rows = range(array.shape[0]) if per_sample else [None]
        for row in rows:
            try:
                values = read_values(array, row if row is not None else ...)
                if row is not None and crcs is not None and row < len(crcs):
                    check_content(values, crcs[row].get(path), path, row)
                if row is not None and values.dtype.kind == "f" and not np.isfinite(values).all():
                    # intact but unusable: a model trained on it gets NaN losses
                    raise NonFiniteValues(
                        f"{int((~np.isfinite(values)).sum())} NaN/infinite value(s)"
                    )
            except Exception as error:  # noqa: BLE001 - any decode failure is the finding
                sample = (
                    str(sample_ids[row])
                    if sample_ids is not None and row is not None and row < len(sample_ids)
                    else ""
                )
                broken.append(
                    BrokenChunk(version, path, row, sample, f"{type(error).__name__}: {error}")
                )
    return broken


def verify_store(location: Location, *, all_versions: bool = False) -> list[BrokenChunk]:
    """Decode every chunk of ``main``'s version (or of every tagged version), and check every
    split stored with it against its digests; the broken ones. Splits are commits on ``main``
    after a version's tag, so with ``all_versions`` the splits on ``main`` are checked too."""
    where = StoreLocation.parse(location)
    repo = open_repository(where)
    main_session = repo.readonly_session(branch="main")
    sessions = (
        [(tag, repo.readonly_session(tag=tag), False) for tag in version_tags(repo)]
        if all_versions
        else [("main", main_session, False)]
    )
    if all_versions and main_session.snapshot_id not in {s.snapshot_id for _, s, _ in sessions}:
        sessions.append(("main", main_session, True))  # only its splits are not in a tag
    broken: list[BrokenChunk] = []
    for version, session, splits_only in sessions:
        try:
            group = zarr.open_group(session.store, mode="r")
        except Exception as error:  # noqa: BLE001 - unreadable metadata is a finding too
            broken.append(BrokenChunk(version, "(metadata)", None, "", str(error)))
            continue
        if not splits_only and is_long_video_attrs(group.attrs):  # no clip table or arrays
            broken += [
                BrokenChunk(version, path, None, video_id, problem)
                for path, video_id, problem in verify_long_group(group)
            ]
            continue
        if not splits_only:
            broken += _verify_metadata(version, group)
            broken += _verify_group(version, group)
        broken += _verify_splits(version, group)
    return broken


def _verify_splits(version: str, group: zarr.Group) -> list[BrokenChunk]:
    """Every split of ``group``: attributes and arrays (read whole) against their digests; a
    split written before digests is reported as such (``predates_checksums``), not as broken."""
    if SPLITS_GROUP not in group:
        return []
    found: list[BrokenChunk] = []
    for name, split in sorted(group_at(group, SPLITS_GROUP).groups()):
        path, where = f"{SPLITS_GROUP}/{name}", f"split {name!r}"
        attrs = dict(split.attrs)
        if predates_checksums(attrs):
            found.append(
                BrokenChunk(
                    version, path, None, "", PREDATES_SPLIT_CHECKSUMS, predates_checksums=True
                )
            )
            continue
        try:
            digests = check_split_attrs(attrs, where, hint="")
            if attrs.get("name") != name:
                raise CorruptDataError(f"{where}: the group holds split {attrs.get('name')!r}")
            for array in sorted(set(digests) | set(split.array_keys())):
                try:
                    values = read_values(array_at(split, array))
                except Exception as error:  # any decode failure is the finding
                    raise CorruptDataError(
                        f"{where}: array {array!r} cannot be read ({type(error).__name__}: {error})"
                    ) from error
                check_split_array(digests, array, values, where, hint="")
        except CorruptDataError as error:
            found.append(BrokenChunk(version, path, None, "", str(error)))
    return found


PREDATES_CHECKSUMS = (
    "written before chunks carried checksums: a flipped bit in it cannot be "
    "detected; re-run the preprocessing into a new store to get a verifiable "
    "one"
)


def _unchecksummed(group: zarr.Group) -> list[str]:
    """The declared arrays of ``group`` whose chunks carry no CRC-32C (stores written before
    ``writer.CHECKSUM`` existed)."""
    declared = dict(group.attrs).get("arrays")
    names = [n for n in declared if n in group] if isinstance(declared, dict) else []
    return [
        name
        for name in names
        if isinstance(group[name], zarr.Array)
        and not any(
            isinstance(codec, Crc32cCodec) for codec in getattr(group[name].metadata, "codecs", ())
        )
    ]


def _verify_metadata(version: str, group: zarr.Group) -> list[BrokenChunk]:
    """The root attributes against their digest, and the layout against the schema (a version
    older than chunk checksums is reported as such, not as a broken layout)."""
    unchecked = _unchecksummed(group)
    if unchecked:
        return [
            BrokenChunk(
                version, ", ".join(unchecked), None, "", PREDATES_CHECKSUMS, predates_checksums=True
            )
        ]
    problem = attrs_problem(dict(group.attrs))
    if problem is not None:
        return [BrokenChunk(version, "(attributes)", None, "", f"the attributes {problem}")]
    try:
        validate_group(group)
    except Exception as error:  # noqa: BLE001 - a layout that no longer validates is a finding
        return [BrokenChunk(version, "(layout)", None, "", str(error).splitlines()[0])]
    return []
