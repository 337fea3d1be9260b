"""The ``runs`` branch of a store's repository: where records of work done on the store's
features (training runs, spotting runs) are committed, each as its own group ``runs/<run_id>``.

What every kind of record shares lives here, below the trainers and the spotters that both
write records: the branch itself (:func:`ensure_runs_branch`), the commit (a lock file on local
disk, Icechunk's conflict detector and retries: :func:`commit_record`), the checksums a record
carries (:func:`seal`, :func:`check_attrs`, :func:`check_array`, the features' own digests) and
the reading of the branch's groups (:func:`runs_root`, :func:`run_groups`). What a record holds,
and how it is decoded, is its writer's: ``mer_prep.train.runs_store`` (schema ``mer-prep/run``)
and ``mer_prep.spotting.records`` (schema ``mer-prep/spot-run``). Each reader lists only the
records of its own schema (:func:`record_schema`).

A record is a group of JSON attributes plus small arrays. Its arrays' chunks carry a CRC-32C like
the features', but a flipped bit in Icechunk's snapshot or manifest files can still change an
attribute, an array's shape, or drop a chunk's reference without any chunk failing its checksum.
So a record carries ``array_digests`` (the sha256 of each array's dtype, shape and values) and
``attrs_digest`` (the sha256 of all its attributes, ``array_digests`` included), checked on every
read.
"""

from __future__ import annotations

import contextlib
import math
import random
from collections.abc import Callable
from typing import Any

import icechunk as ic
import numpy as np
import tenacity
import zarr
from filelock import FileLock

from mer_prep.store.gc import RUNS_INIT_PREFIX, owned_branch
from mer_prep.store.repo import MAIN, RUNS_BRANCH, RUNS_GROUP, StoreLocation, open_repository
from mer_prep.store.run_errors import CorruptRunRecordError, RunRecordError
from mer_prep.store.schema import DIGEST_KEY, array_digest, attrs_digest
from mer_prep.store.writer import COMPRESSORS

LOCK_FILE = ".mer-prep-runs.lock"
ARRAY_DIGESTS_KEY = "array_digests"
#: The first record schema version whose records carry digests (older ones read unchecked).
DIGESTED_SCHEMA_VERSION = 2
#: the schema of training run records (records written before other kinds existed carry it too)
TRAINING_SCHEMA = "mer-prep/run"


# --- checksums ----------------------------------------------------------------------------------


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


# --- writing ------------------------------------------------------------------------------------


def open_location(store) -> tuple[StoreLocation, ic.Repository]:
    """(location, repository) of a ``FeatureStore`` (anything with ``location`` and ``repo``)
    or a store location."""
    if hasattr(store, "location") and hasattr(store, "repo"):
        return store.location, store.repo
    location = StoreLocation.parse(store)
    return location, open_repository(location)


def group_at(parent: zarr.Group, name: str, where: str) -> zarr.Group:
    """The group ``name`` of ``parent``; :class:`CorruptRunRecordError` when an array is
    there instead (a record's groups are never arrays)."""
    node = parent[name]
    if not isinstance(node, zarr.Group):
        raise CorruptRunRecordError(f"{where}: {name} is an array, not a group (corrupt metadata)")
    return node


def jsonable(value):
    """Plain JSON values: numpy scalars and arrays to Python, NaN / inf to None."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def ensure_runs_branch(repo: ic.Repository) -> None:
    """Create the ``runs`` branch (holding an empty ``runs`` group) unless it exists.

    The group is made on a private branch first and ``runs`` created at its commit, so that
    two runs racing to create the branch both end on a branch that has the group.
    """
    if RUNS_BRANCH in repo.list_branches():
        return
    initial = list(repo.ancestry(branch=MAIN))[-1].id
    scratch = owned_branch(RUNS_INIT_PREFIX)  # owned: gc removes it if this process is killed
    repo.create_branch(scratch, initial)
    try:
        session = repo.writable_session(scratch)
        root = zarr.open_group(session.store, mode="a", zarr_format=3)
        root.attrs.update({"schema": "mer-prep/runs", "schema_version": 1})
        root.require_group(RUNS_GROUP)
        snapshot = session.commit("runs: training run records")
        try:
            repo.create_branch(RUNS_BRANCH, snapshot)
        except ic.IcechunkError:
            if RUNS_BRANCH not in repo.list_branches():
                raise
    finally:
        repo.delete_branch(scratch)


def commit_lock(location: StoreLocation) -> contextlib.AbstractContextManager:
    """An exclusive lock on local stores (Icechunk's local storage has no atomic ref update);
    nothing on S3, whose conditional writes serialise the commit. The lock file stays in the
    store directory, private (0600): removing it on release would let a process that opened it
    before the removal lock a file nobody else sees."""
    if location.is_remote:
        return contextlib.nullcontext()
    return FileLock(location.path / LOCK_FILE, mode=0o600, preserve_lock_file=True)


def write_array(group: zarr.Group, name: str, values: np.ndarray) -> np.ndarray:
    """Write ``values`` as array ``name`` of ``group``; the values as written (digested)."""
    values = np.asarray(values)
    if values.dtype.kind in "US":
        values = values.astype(object)
    chunks = tuple(max(d, 1) for d in values.shape)
    array = group.create_array(
        name,
        shape=values.shape,
        chunks=chunks,
        dtype=str if values.dtype == object else values.dtype,
        compressors=COMPRESSORS,
    )
    if values.size:
        array[...] = values
    return values


def _commit_once(
    repo: ic.Repository,
    location: StoreLocation,
    run_id: str,
    write: Callable[[zarr.Group], None],
    message: str,
    metadata: dict[str, Any],
) -> str:
    """Write one record with ``write(group)`` on a fresh session of the ``runs`` branch and
    commit it; the snapshot id. A commit that finds the branch moved rebases onto the new tip
    (another run's group is another path); a conflict or failed rebase propagates for
    :func:`commit_record` to retry."""
    session = repo.writable_session(RUNS_BRANCH)
    root = zarr.open_group(session.store, mode="r+")
    runs = group_at(root, RUNS_GROUP, f"store {location}: the runs branch")
    if run_id in runs:
        raise RunRecordError(f"store {location} already records run {run_id}")
    write(runs.create_group(run_id))
    return session.commit(message, metadata=metadata, rebase_with=ic.ConflictDetector())


def _backoff(state: tenacity.RetryCallState) -> float:
    """Seconds before the next try: 10-50 ms times the tries so far, jittered so that racing
    runs do not retry in step."""
    return random.uniform(0.01, 0.05) * state.attempt_number


def commit_record(
    store,
    run_id: str,
    write: Callable[[zarr.Group], None],
    *,
    message: str,
    metadata: dict[str, Any] | None = None,
    retries: int = 20,
) -> str:
    """Commit a record as ``runs/<run_id>`` on the ``runs`` branch of ``store`` (a
    ``FeatureStore`` or a location): ``write`` fills the new group. The commit's snapshot id.
    Tries up to ``retries`` times on a conflict, each on a fresh session."""
    location, repo = open_location(store)
    ensure_runs_branch(repo)
    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception_type((ic.ConflictError, ic.RebaseFailedError)),
        stop=tenacity.stop_after_attempt(retries),
        wait=_backoff,
    )
    try:
        with commit_lock(location):
            return retrying(_commit_once, repo, location, run_id, write, message, metadata or {})
    except tenacity.RetryError as error:
        last = error.last_attempt.exception()
        raise RunRecordError(
            f"store {location}: run {run_id} could not be committed after {retries} tries ({last})"
        ) from last


# --- reading ------------------------------------------------------------------------------------


def first_line(error: Exception) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0] if text else ''}"


def runs_root(store) -> tuple[StoreLocation, zarr.Group | None]:
    """(location, the ``runs`` group of the ``runs`` branch); None when there is no branch."""
    location, repo = open_location(store)
    try:
        if RUNS_BRANCH not in repo.list_branches():
            return location, None
        session = repo.readonly_session(branch=RUNS_BRANCH)
        root = zarr.open_group(session.store, mode="r")
        return location, group_at(root, RUNS_GROUP, f"store {location}: the runs branch")
    except Exception as error:  # a damaged branch tip or snapshot
        raise CorruptRunRecordError(
            f"store {location}: the runs branch does not read "
            f"({first_line(error)}); run `mer-prep verify`"
        ) from error


def record_schema(group: zarr.Group) -> str:
    """The schema a record group declares; training records (every record written before
    other kinds existed) when it declares none or its attributes do not read (a damaged
    record is then reported by the training records' reader, as before)."""
    try:
        schema = dict(group.attrs).get("schema")
    except Exception:  # noqa: BLE001 - damaged attributes: the training reader says so
        return TRAINING_SCHEMA
    return schema if isinstance(schema, str) else TRAINING_SCHEMA


def run_groups(
    root: zarr.Group,
    location: StoreLocation,
    run_id: str | None = None,
    schema: str | None = None,
) -> list[zarr.Group]:
    """The run groups under ``root`` (only ``run_id``'s when given; [] when it is not there),
    only those of ``schema`` when given."""
    try:
        where = f"store {location}: the runs group"
        if run_id is not None:
            groups = [group_at(root, run_id, where)] if run_id in root else []
        else:
            groups = [group_at(root, name, where) for name in sorted(root.group_keys())]
    except Exception as error:  # a damaged snapshot or manifest
        raise CorruptRunRecordError(
            f"store {location}: the runs branch's groups do not read "
            f"({first_line(error)}); run `mer-prep verify`"
        ) from error
    if schema is None:
        return groups
    return [group for group in groups if record_schema(group) == schema]
