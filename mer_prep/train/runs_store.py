"""Run records on the store's own storage: the Icechunk branch ``runs`` of the store's repository.

Where, and why there:

- **Same storage, same credentials.** A record lives in the repository of the store it was
  trained on, so it travels with the store (a local directory or ``s3://``) and is read with the
  same ``StoreLocation``; nothing else (a database, a results folder) has to be kept in sync.
- **Feature versions never move.** Records are commits on a dedicated branch ``runs``, started
  from the repository's initial (empty) snapshot: ``main`` and the version tags are never
  touched, the features are not copied into the branch, and a new version (``mer-prep run``)
  or split (``mer-prep split``) committed on ``main`` cannot drop a record. Each record names
  the version (``version_id`` tag) and the exact snapshot it read; that snapshot stays readable
  after any refresh (:func:`open_run_store`).
- **Concurrent runs both land.** Each run writes its own group ``runs/<run_id>`` (JSON attrs
  plus small arrays: per-clip predictions and, on request, checkpoints) and commits with
  Icechunk's conflict detector: a commit that finds the branch moved rebases onto the new tip
  (no conflict: another run's group is another path) and, failing that, the whole write is
  retried on a fresh session. Local directories, whose storage Icechunk does not make safe for
  concurrent commits, additionally serialise the commit with a lock file in the store directory
  (``filelock``: ``flock`` on Unix); S3's conditional writes make that unnecessary there. The
  retries are ``tenacity``'s (conflicts only, jittered linear back-off).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import icechunk as ic
import numpy as np
import zarr

from mer_prep.errors import MerPrepError
from mer_prep.store.repo import RUNS_BRANCH, StoreLocation
from mer_prep.store.run_branch import (  # the branch's machinery, shared by every record kind
    LOCK_FILE,
    TRAINING_SCHEMA,
    commit_lock,
    commit_record,
    ensure_runs_branch,
    first_line,
    group_at,
    jsonable,
    open_location,
    run_groups,
    runs_root,
    write_array,
)
from mer_prep.store.verify import BrokenChunk
from mer_prep.train import record_digest
from mer_prep.train.errors import CorruptRunRecordError, RunRecordError
from mer_prep.train.pooled import PooledScores
from mer_prep.train.records import FoldResult, RunHeader, RunRecord

__all__ = [
    "LOCK_FILE",
    "check_writable",
    "ensure_runs_branch",
    "list_runs",
    "load_run",
    "open_run_store",
    "save_or_keep",
    "save_run",
    "verify_runs",
]

# version 2: records carry digests of their attributes and arrays (``record_digest``)
SCHEMA = {"schema": TRAINING_SCHEMA, "schema_version": record_digest.DIGESTED_SCHEMA_VERSION}
_HEADER_FIELDS = tuple(RunHeader.__dataclass_fields__)


# the names this module had before the machinery moved to ``store.run_branch``
_open = open_location
_group_at = group_at
_jsonable = jsonable
_commit_lock = commit_lock
_write_array = write_array
_first_line = first_line


def _write(group: zarr.Group, record: RunRecord) -> None:
    written: dict[str, np.ndarray] = {}  # path in the record -> values, for its digests

    def _array(parent: zarr.Group, name: str, values: np.ndarray) -> None:
        path = name if parent is group else f"{parent.basename}/{name}"
        written[path] = _write_array(parent, name, values)

    folds = record.folds

    def cat(
        get: Callable[[FoldResult], object], dtype: type, width: int | None = None
    ) -> np.ndarray:
        if not folds:
            return np.zeros((0,) if width is None else (0, width), dtype)
        return np.concatenate([np.asarray(get(f), dtype) for f in folds])

    # the probabilities' columns: the store's classes, or an AU run's AUs
    k = folds[0].proba.shape[1] if folds else len(record.store["class_names"])
    _array(
        group,
        "fold",
        np.concatenate([np.full(len(f.y_true), f.index, np.int64) for f in folds])
        if folds
        else np.zeros(0, np.int64),
    )
    _array(group, "row", cat(lambda f: f.rows, np.int64))
    _array(group, "sample_id", cat(lambda f: f.sample_ids, object))
    _array(group, "y_true", cat(lambda f: f.y_true, np.int64))
    _array(group, "y_pred", cat(lambda f: f.y_pred, np.int64))
    _array(group, "proba", cat(lambda f: f.proba, np.float32, k).reshape(-1, k))
    kept = [(f.index, f.checkpoint) for f in folds if f.checkpoint is not None]
    if kept:
        checkpoints = group.create_group("checkpoints")
        for index, checkpoint in kept:
            _array(checkpoints, f"fold{index}", np.frombuffer(checkpoint, np.uint8))
    group.attrs.update(record_digest.seal(_jsonable({**SCHEMA, **record.summary()}), written))


def save_run(store, record: RunRecord, *, retries: int = 20) -> str:
    """Commit ``record`` as ``runs/<run_id>`` on the ``runs`` branch of ``store`` (a
    ``FeatureStore`` or a location); the commit's snapshot id. Tries up to ``retries`` times
    on a conflict, each on a fresh session (``store.run_branch.commit_record``)."""
    return commit_record(
        store,
        record.run_id,
        lambda group: _write(group, record),
        message=f"run {record.run_id}: {record.model}/{record.variant} on "
        f"{record.version_id} ({record.split})",
        metadata={"run_id": record.run_id, "version_id": record.version_id},
        retries=retries,
    )


def _read(group: zarr.Group, with_checkpoints: bool, location: StoreLocation) -> RunRecord:
    """The record of ``group``, checked against its digests: a :class:`CorruptRunRecordError`
    (naming the store and run) for anything that reads back other than it was written or does
    not decode at all."""
    where = f"store {location}: run {group.basename}"
    try:
        return _decode(group, with_checkpoints, where)
    except (RunRecordError, CorruptRunRecordError):
        raise
    except Exception as error:  # whatever a damaged record fails with
        raise CorruptRunRecordError(
            f"{where}: the record does not decode ({_first_line(error)}); run `mer-prep verify`"
        ) from error


def _checked(group: zarr.Group, name: str, digests: dict[str, str], where: str) -> np.ndarray:
    node = group[name]
    if not isinstance(node, zarr.Array):
        raise CorruptRunRecordError(f"{where}: {name} is a group, not an array (corrupt metadata)")
    # zarr types a read as any array-like (its buffers may be a GPU's); with the CPU buffers
    # the store is opened with it is a NumPy array, which asarray returns as it is
    values = np.asarray(node[...])
    record_digest.check_array(digests, name, values, where)
    return values


def _decode(group: zarr.Group, with_checkpoints: bool, where: str) -> RunRecord:
    # JSON as RunRecord.summary() wrote it: its digest is checked next, and whatever does not
    # decode as a record below is reported as corrupt (_read)
    attrs: dict[str, Any] = dict(group.attrs)
    digests = record_digest.check_attrs(attrs, where)
    if digests and attrs.get("run_id") != group.basename:
        raise CorruptRunRecordError(
            f"{where}: the record names another run ({attrs.get('run_id')!r}): corrupt metadata"
        )
    names = attrs["store"]["class_names"]
    data = {
        name: _checked(group, name, digests, where)
        for name in ("fold", "row", "y_true", "y_pred", "proba")
    }
    data["sample_id"] = np.array(_checked(group, "sample_id", digests, where).tolist(), dtype=str)
    checkpoints = (
        _group_at(group, "checkpoints", where)
        if with_checkpoints and "checkpoints" in group
        else None
    )
    if (
        with_checkpoints
        and any(name.startswith("checkpoints/") for name in digests)
        and (checkpoints is None)
    ):
        raise CorruptRunRecordError(
            f"{where}: the record's checkpoints are gone (corrupt metadata)"
        )
    folds = []
    for summary in attrs["folds"]:
        mine = data["fold"] == summary["index"]
        blob = None
        if checkpoints is not None and f"fold{summary['index']}" in checkpoints:
            blob = _checked(
                checkpoints,
                f"fold{summary['index']}",
                {key.removeprefix("checkpoints/"): value for key, value in digests.items()},
                where,
            ).tobytes()
        folds.append(
            FoldResult.from_summary(
                summary,
                summary.get("au_names", names),
                data["row"][mine],
                data["sample_id"][mine],
                data["y_true"][mine],
                data["y_pred"][mine],
                data["proba"][mine].astype(np.float32),
                checkpoint=blob,
            )
        )
    # fields added to the header later (``overrides``) are absent from older records
    header = {name: attrs[name] for name in _HEADER_FIELDS if name in attrs}
    return RunRecord(
        header=RunHeader(**header),
        folds=tuple(folds),
        scores=PooledScores.from_dict(attrs["metrics"]),
        duration_s=float(attrs["duration_s"]),
        timings=attrs.get("timings", {}),
    )


def _runs_root(store) -> tuple[StoreLocation, zarr.Group | None]:
    return runs_root(store)


def _run_groups(
    root: zarr.Group, location: StoreLocation, run_id: str | None = None
) -> list[zarr.Group]:
    """The training run groups under ``root`` (only ``run_id``'s when given; [] when it is not
    there): records of other kinds on the branch (spotting runs) are not training runs."""
    return run_groups(root, location, run_id, schema=TRAINING_SCHEMA)


def list_runs(store, *, with_checkpoints: bool = False) -> list[RunRecord]:
    """Every run recorded on ``store`` (a ``FeatureStore`` or a location), oldest first."""
    location, root = _runs_root(store)
    if root is None:
        return []
    records = [_read(group, with_checkpoints, location) for group in _run_groups(root, location)]
    return sorted(records, key=lambda r: (r.created, r.run_id))


def load_run(store, run_id: str, *, with_checkpoints: bool = True) -> RunRecord:
    """One recorded run by id (checkpoints included when it kept them)."""
    location, root = _runs_root(store)
    groups = _run_groups(root, location, run_id) if root is not None else []
    if not groups:
        raise RunRecordError(f"store {location} records no run {run_id!r}")
    return _read(groups[0], with_checkpoints, location)


def open_run_store(store, record: RunRecord | RunHeader):
    """The ``FeatureStore`` at exactly the snapshot ``record`` read (also after the store was
    refreshed to newer versions)."""
    from mer_prep.store.reader import FeatureStore

    location, repo = _open(store)
    try:
        session = repo.readonly_session(snapshot_id=record.snapshot_id)
    except ic.IcechunkError as error:
        raise RunRecordError(
            f"store {location} no longer holds snapshot {record.snapshot_id} of run {record.run_id}"
        ) from error
    return FeatureStore(location, repo, session)


def verify_runs(store) -> list[BrokenChunk]:
    """Every run record on the ``runs`` branch of ``store``, read whole (checkpoints included)
    and checked against its digests (:mod:`mer_prep.train.record_digest`): one finding per
    record that does not read back as written (``mer-prep verify``)."""
    try:
        location, root = _runs_root(store)
        groups = _run_groups(root, location) if root is not None else []
    except MerPrepError as error:
        return [BrokenChunk(RUNS_BRANCH, "(runs branch)", None, "", str(error))]
    broken = []
    for group in groups:
        try:
            _read(group, True, location)
        except MerPrepError as error:
            broken.append(BrokenChunk(RUNS_BRANCH, group.path, None, "", str(error)))
    return broken


#: The entries of a local repository a record's commit writes into.
_WRITTEN_DIRS = ("snapshots", "manifests", "transactions", "refs", "chunks")


def check_writable(store) -> None:
    """Raise :class:`RunRecordError` unless a run record can be committed to ``store`` (a
    ``FeatureStore`` or a location): checked before the first fold, so that a read-only store
    refuses the run at once instead of failing after hours of training. Creates the ``runs``
    branch when missing (a real commit) and, on local disk, a file (removed again) in each
    folder a record's commit writes to, and the commit's lock file."""
    location, repo = _open(store)
    try:
        ensure_runs_branch(repo)
        if not location.is_remote:
            import tempfile

            for name in _WRITTEN_DIRS:
                folder = location.path / name
                if folder.exists():
                    with tempfile.NamedTemporaryFile(dir=folder, prefix=".mer-prep-probe-"):
                        pass
            with _commit_lock(location):
                pass
    except (OSError, ic.IcechunkError) as error:
        raise RunRecordError(
            f"store {location} cannot record a run ({_first_line(error)}): "
            f"train on a writable copy of the store"
        ) from None


def unsaved_runs_dir() -> Path:
    """Where a run whose record could not be committed keeps its results: beside the decoded
    array cache (``$MER_PREP_CACHE``), or ``.mer-prep/unsaved-runs`` when the cache is off."""
    from mer_prep.store.cache import cache_dir

    cache = cache_dir()
    return (cache.parent if cache is not None else Path(".mer-prep")) / "unsaved-runs"


def save_or_keep(store, record: RunRecord) -> str:
    """:func:`save_run`; when the commit fails, the record is written to
    ``unsaved_runs_dir()/<run_id>.json`` (its summary and per-clip predictions) and a
    :class:`RunRecordError` names that file: the results of a finished training are never lost
    to a failed write."""
    try:
        return save_run(store, record)
    except Exception as error:  # any failed write: keep the results, then say so
        folder = unsaved_runs_dir()
        folder.mkdir(parents=True, exist_ok=True)
        kept = folder / f"{record.run_id}.json"
        body = {
            **_jsonable(record.summary()),
            "predictions": _jsonable(record.predictions().to_dict(orient="list")),
        }
        kept.write_text(json.dumps(body, indent=1))
        raise RunRecordError(
            f"run {record.run_id} could not be recorded on store "
            f"{_open(store)[0]} ({_first_line(error)}); its results are kept "
            f"in {kept}"
        ) from error
