"""The only module that writes stores.

A version is written in three steps so that readers never see half of it:

1. ``VersionWriter.begin`` lays out the arrays on a private snapshot (``Session.flush``: no
   branch moves) and opens a writable session on a scratch branch at that snapshot;
2. workers write samples through picklable ``ForkSession``s (``SampleWriter``);
3. ``finish`` merges the forks, writes the sample table and attributes, validates the whole
   group against ``storage_schemas/``, commits, then moves ``main`` with a compare-and-set
   on its old tip and tags the snapshot with the version id.

A crash anywhere before step 3's branch move leaves ``main`` and every tag untouched. Moving
``main``, tagging and dropping the scratch branch happen with SIGINT/SIGTERM deferred, so an
interrupt lands before or after them, never between; a run killed outright (SIGKILL) between
moving ``main`` and tagging leaves a complete, valid version on ``main`` that the next run finds
(``existing_version``) and tags. The scratch branch's name records its owner (host, boot, PID,
process start): a later run deletes the branches of runs that are provably dead
(``mer_prep.store.gc``), never a live one's.

Write errors are never sample failures: any error storing a sample's chunks (an I/O or
object-store error, a full disk) is a ``StoreWriteError`` that stops the run; merging, writing
the table and committing raise it too. ``main`` keeps the previous version.

Version ids, the plan, incomplete versions (transient failures) and which rows a refresh keeps
are ``mer_prep.store.versions``'s; its names are importable from here too. Refresh
(``begin(plan, reuse=True)``): when ``main`` holds a version whose rows ``reusable_rows``
accepts, step 1 is skipped: the scratch branch starts at ``main``'s snapshot with the arrays as
they are, and only ``rows_to_compute`` are written again. Their old chunks are cleared first
(and ``splits/`` dropped), on a private snapshot as in step 1, so that a now-failing sample
leaves fill values, as in a fresh layout.

The root attributes are a ``mer_prep.store.layout.VersionAttrs``, dumped. Besides the sample
table, ``finish`` writes the ``aus`` array (row x AU, bool, one chunk; its
columns are the ``au_list`` attribute: see ``mer_prep.store.versions``) and records the scan's
annotation corrections (``corrections``, files relative to the dataset root).

Splits are later commits on ``main`` on top of a version (``mer_prep.store.splits.write_split``,
group ``splits/<name>``). They belong to the version whose rows they index, and the next
version's layout drops them.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import signal
import threading
from collections.abc import Iterator

import icechunk as ic
import numpy as np
import zarr
import zarr.api.asynchronous
from zarr.codecs import BloscCodec, Crc32cCodec, ZstdCodec
from zarr.core.sync import sync

from mer_prep.errors import PipelineError, StoreWriteError, VersionConflictError
from mer_prep.recipes import ArraySpec
from mer_prep.sample import Failure
from mer_prep.store.gc import remove_abandoned_branches, scratch_branch
from mer_prep.store.layout import (
    AUS_ARRAY,
    AUS_DIMS,
    MAIN,
    SPLITS_GROUP,
    TABLE_GROUP,
    RecipeAttrs,
    ReuseAttrs,
    VersionAttrs,
)
from mer_prep.store.nodes import array_at, async_array_at
from mer_prep.store.repo import NewStore, StoreLocation, open_repository
from mer_prep.store.run_watch import RunWatch
from mer_prep.store.schema import (
    DIGEST_KEY,
    attrs_digest,
    check_sample_array,
    content_crc,
    table_digest,
    validate_group,
)
from mer_prep.store.table import column_array, table_columns
from mer_prep.store.versions import (  # noqa: F401 - re-exported: callers import them from here
    PERMANENT,
    TRANSIENT,
    VersionPlan,
    current_version,
    existing_version,
    incomplete_version_id,
    make_version_id,
    reusable_rows,
)

# lz4 level 9 (bench/codec.py, every built-in recipe's arrays; docs/storage.md): about the bytes
# of zstd level 1, the codec of earlier versions (which still read), decoded 4x and encoded 2.5x
# as fast; training decodes every array of a version, and writing is on the preprocessing path.
COMPRESSOR = BloscCodec(cname="lz4", clevel=9, shuffle="bitshuffle")
# Every stored chunk ends with its CRC-32C: one flipped bit in a chunk file raises on read
# instead of reading back as data (Blosc's own frame has no checksum over the payload).
CHECKSUM = Crc32cCodec()
COMPRESSORS = (COMPRESSOR, CHECKSUM)

log = logging.getLogger(__name__)


@contextlib.contextmanager
def interrupts_deferred(*, redeliver: bool = True) -> Iterator[None]:
    """Hold SIGINT and SIGTERM until the block is done (main thread only; elsewhere a no-op),
    then deliver the first one that arrived to the handler that was in place (or, without
    ``redeliver``, drop them: the block is the clean-up of an interrupt already taken)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []

    def hold(signum, frame) -> None:  # noqa: ARG001
        received.append(signum)

    previous = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        handler = signal.getsignal(signum)
        if handler is not None:  # None: installed outside Python, cannot be put back
            previous[signum] = signal.signal(signum, hold)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if received and redeliver:
            signal.raise_signal(received[0])


@contextlib.contextmanager
def scratch_of(
    location: StoreLocation, version_id: str
) -> Iterator[tuple[NewStore, ic.Repository, str]]:
    """(what a new store adds, the repository, the scratch branch's name) for beginning
    ``version_id`` at ``location``: the repository opened (created when missing) and the
    scratch branches of provably dead runs deleted. Should the block fail or be interrupted,
    the scratch branch, and a store this created, are removed again."""
    new = NewStore.before_create(location)
    repo = open_repository(location, create=True)
    remove_abandoned_branches(repo)
    branch = scratch_branch(version_id)
    try:
        yield new, repo, branch
    except BaseException:
        with interrupts_deferred():
            delete_branch(repo, branch)
            new.remove_if_unused(repo)
        raise


class SampleWriter:
    """Writes samples at their rows through one worker's fork, each checked against its spec.

    The arrays of one sample are encoded and stored concurrently (one event-loop round trip
    instead of one per array: 12 ms instead of 34 ms per ``ha3d`` sample, measured).
    """

    def __init__(self, fork: ic.ForkSession, specs: dict[str, ArraySpec]) -> None:
        self.specs = specs
        group = sync(zarr.api.asynchronous.open_group(store=fork.store, mode="r+"))
        self.arrays = {name: async_array_at(group, name) for name in specs}

    def check(self, arrays: dict[str, np.ndarray]) -> None:
        """``SchemaError`` unless every array of one sample fits its declared shape and dtype."""
        for name, spec in self.specs.items():
            check_sample_array(name, arrays[name], spec)

    def write(self, row: int, arrays: dict[str, np.ndarray]) -> dict[str, int]:
        """Store one sample's arrays at ``row``; their CRC-32C (``content_crc``), by name. A
        wrong shape or dtype is the sample's ``SchemaError``; any error storing the chunks is a
        ``StoreWriteError`` (the run stops)."""
        self.check(arrays)
        crcs = {name: content_crc(arrays[name]) for name in self.specs}

        async def write_all() -> None:
            await asyncio.gather(
                *(self.arrays[name].setitem(row, arrays[name]) for name in self.specs)
            )

        try:
            sync(write_all())
        except Exception as error:  # disk full, S3, I/O: never a sample failure
            raise StoreWriteError(
                f"writing row {row} ({', '.join(self.specs)}) failed: "
                f"{type(error).__name__}: {error}"
            ) from error
        return crcs


class VersionWriter:
    """Writes one version of a store; see the module docstring for the protocol."""

    def __init__(
        self,
        plan: VersionPlan,
        repo: ic.Repository,
        base: str,
        branch: str,
        session: ic.Session,
        reused: dict[int, dict] | None = None,
        reused_from: str | None = None,
    ) -> None:
        self.plan, self.repo, self.base, self.branch, self.session = (
            plan,
            repo,
            base,
            branch,
            session,
        )
        #: the id the version is committed under: the plan's, or ``incomplete_version_id``
        self.version_id = plan.version_id
        #: store row -> the previous version's table row, for rows whose chunks are kept as-is
        self.reused: dict[int, dict] = reused or {}
        #: the version id the reused rows come from (None: a fresh layout)
        self.reused_from = reused_from
        #: what ``begin`` created on disk (removed again if the run never commits)
        self.new_store = NewStore(plan.location, None)

    @property
    def rows_to_compute(self) -> list[int]:
        """Store rows that workers must (re)write: all of them unless rows are reused."""
        return [row for row in range(self.plan.n_rows) if row not in self.reused]

    @classmethod
    def begin(cls, plan: VersionPlan, *, reuse: bool = True) -> VersionWriter:
        """Open a session for the version: on a fresh layout, or on ``main`` when rows are reused.

        Scratch branches of runs that are provably dead are deleted first. Should this fail or
        be interrupted after the scratch branch exists, the branch is deleted again."""
        with scratch_of(plan.location, plan.version_id) as (new, repo, branch):
            writer = cls._begin(plan, repo, branch, reuse)
        writer.new_store = new
        return writer

    @classmethod
    def _begin(
        cls, plan: VersionPlan, repo: ic.Repository, branch: str, reuse: bool
    ) -> VersionWriter:
        base = repo.lookup_branch(MAIN)
        previous = reusable_rows(repo, base, plan) if reuse else None
        if previous is not None:
            reused, reused_from = previous
            prepare = repo.writable_session(MAIN)
            root = zarr.open_group(prepare.store, mode="r+")
            if SPLITS_GROUP in root:  # splits index the previous version's rows
                del root[SPLITS_GROUP]
            for row in range(plan.n_rows):
                if row not in reused:
                    for name in plan.arrays:
                        array_at(root, name)[row] = 0  # all fill values: zarr drops the chunk
            snapshot = (
                prepare.flush(f"refresh of {reused_from} to {plan.version_id}")
                if prepare.has_uncommitted_changes
                else base
            )
            repo.create_branch(branch, snapshot)
            return cls(
                plan,
                repo,
                base,
                branch,
                repo.writable_session(branch),
                reused=reused,
                reused_from=reused_from,
            )
        layout = repo.writable_session(MAIN)
        root = zarr.open_group(layout.store, mode="a", zarr_format=3)
        for name in list(root.keys()):
            del root[name]
        for name, spec in plan.arrays.items():
            root.create_array(
                name,
                shape=(plan.n_rows, *spec.shape),
                chunks=(1, *spec.shape),
                dtype=spec.dtype,
                compressors=COMPRESSORS,
                dimension_names=("sample", *spec.dims),
                fill_value=0,
            )
        snapshot = layout.flush(f"layout of {plan.version_id}")
        repo.create_branch(branch, snapshot)
        return cls(plan, repo, base, branch, repo.writable_session(branch))

    def reuse_summary(self) -> dict:
        """What the version recomputed and what it shares with ``reused_from`` (samples, rows):
        the dumped ``ReuseAttrs`` the version records as ``reuse``."""
        stride = self.plan.recipe.rows_per_sample
        return ReuseAttrs(
            from_version=self.reused_from,
            n_reused=len(self.reused) // stride,
            n_recomputed=len(self.rows_to_compute) // stride,
            n_rows_reused=len(self.reused),
        ).model_dump(mode="json")

    def fork(self) -> ic.ForkSession:
        """A picklable session for one worker task."""
        return self.session.fork()

    def watch(self) -> RunWatch:
        """What a worker task checks to learn that this run is gone (``RunWatch``)."""
        return RunWatch(str(self.plan.location), self.branch)

    def finish(
        self,
        forks: list[ic.ForkSession],
        rows: list[dict],
        failures: list[Failure],
        extra_attrs: dict | None = None,
    ) -> str:
        """Merge worker forks, write table and attributes, validate, commit, publish; snapshot id.

        The version is committed under ``self.version_id``: the plan's id, or when rows failed
        transiently ``incomplete_version_id`` (see ``mer_prep.store.versions``). ``rows``: the
        table rows in store order; the ``aus`` array is built from their samples' AUs. Every
        processed row written by this run must carry its arrays' CRC-32C (``content_crc``, what
        ``SampleWriter.write`` returns): a version whose rows could not be checked on read is
        refused."""
        plan = self.plan
        for index, row in enumerate(rows):
            if row["status"] == "ok" and index not in self.reused:
                recorded = json.loads(row.get("content_crc32c") or "{}")
                if set(recorded) != set(plan.arrays):
                    raise PipelineError(
                        f"row {index} ({row['sample_id']}) carries no content "
                        f"checksum of {sorted(set(plan.arrays) - set(recorded))}: "
                        f"pass what SampleWriter.write returns to sample_row"
                    )
        complete = not any(r["status"] != "ok" and r.get("failure_kind") == TRANSIENT for r in rows)
        self.version_id = version_id = (
            plan.version_id if complete else incomplete_version_id(plan.version_id, rows)
        )
        columns = table_columns()
        try:
            if forks:
                self.session.merge(*forks)
            root = zarr.open_group(self.session.store, mode="r+")
            sync(
                _write_rows(
                    self.session.store,
                    {column: column_array(rows, column, kind) for column, kind in columns.items()},
                    plan.au_rows(rows),
                )
            )
        except (ic.IcechunkError, OSError) as error:
            raise StoreWriteError(
                f"store {plan.location}: writing {version_id} failed: "
                f"{type(error).__name__}: {error}"
            ) from error
        attrs = VersionAttrs(
            dataset=plan.dataset,
            labels=plan.labels,
            class_names=plan.class_names,
            recipe=RecipeAttrs(
                name=plan.recipe.name,
                hash=plan.recipe.hash,
                paper=plan.recipe.paper,
                parameters=plan.recipe.parameters(),
            ),
            input_fingerprint=plan.input_fingerprint,
            code_version=plan.code_version,
            version_id=version_id,
            complete=complete,
            inputs_version_id=plan.version_id,
            created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            n_samples=len(rows),
            n_ok=sum(r["status"] == "ok" for r in rows),
            arrays=plan.stored_layout(),
            table_columns=columns,
            failures=[failure.to_dict() for failure in failures],
            au_list=plan.au_list,
            corrections=[correction.to_dict() for correction in plan.corrections],
            reuse=self.reuse_summary(),
            table_digest=table_digest(
                {column: column_array(rows, column, kind) for column, kind in columns.items()}
            ),
            **(extra_attrs or {}),
        )
        # update, not replace: a refresh starts from main's attributes, as it always has
        root.attrs.update(attrs.to_attrs())
        root.attrs[DIGEST_KEY] = attrs_digest(dict(root.attrs))
        validate_group(root)
        message = f"{plan.dataset}/{plan.recipe.name} {version_id}" + (
            ""
            if complete
            else f" (incomplete: transient failures; {plan.version_id} once they pass)"
        )
        return publish_version(
            self.repo, self.session, self.base, self.branch, version_id, message, plan.location
        )

    def abort(self, *, remove_new_store: bool = True) -> None:
        """Drop the scratch branch (``main`` and the tags were never touched) and, with
        ``remove_new_store``, a store this run created and never committed to. Keep that store
        while workers may still write (a cluster that outlives the run): their chunks would
        make the folder one no store can be created in. Never raises."""
        with interrupts_deferred():
            delete_branch(self.repo, self.branch)
            if remove_new_store:
                self.new_store.remove_if_unused(self.repo)


def publish_version(
    repo: ic.Repository,
    session: ic.Session,
    base: str,
    branch: str,
    version_id: str,
    message: str,
    location: object,
) -> str:
    """Commit ``session`` (the scratch ``branch``) as ``version_id``, move ``main`` from
    ``base`` to it with a compare-and-set, tag it and drop the scratch branch; the snapshot id.
    ``StoreWriteError`` when the commit fails, ``VersionConflictError`` when ``main`` moved."""
    try:
        snapshot = session.commit(message, metadata={"version_id": version_id})
    except ic.IcechunkError as error:
        raise StoreWriteError(
            f"store {location}: committing {version_id} failed: {error}"
        ) from error
    with interrupts_deferred():  # main, the tag and the scratch branch move together
        try:
            repo.reset_branch(MAIN, snapshot, from_snapshot_id=base)
        except ic.IcechunkError as error:
            raise VersionConflictError(
                f"store {location}: main moved while {version_id} was being written "
                f"(another run committed first); this run's snapshot {snapshot} was not "
                f"published"
            ) from error
        if version_id not in repo.list_tags():  # an incomplete id may exist already
            try:
                repo.create_tag(version_id, snapshot)
            except ic.IcechunkError as error:  # a deleted tag name cannot come back
                log.warning(
                    "%s: committed %s on main but could not tag it: %s", location, version_id, error
                )
        delete_branch(repo, branch)
    return snapshot


def delete_branch(repo: ic.Repository, branch: str) -> None:
    """Delete ``branch`` if it exists; a failure is logged, never raised."""
    try:
        if branch in repo.list_branches():
            repo.delete_branch(branch)
    except ic.IcechunkError as error:
        log.warning("could not delete scratch branch %s: %s", branch, error)


async def _write_rows(store, columns: dict[str, np.ndarray], aus: np.ndarray) -> None:
    """The sample table and the ``aus`` array (one chunk), written concurrently."""
    await asyncio.gather(
        _write_table(store, TABLE_GROUP, columns), _write_aus(store, AUS_ARRAY, aus)
    )


async def _write_aus(store, name: str, aus: np.ndarray) -> None:
    root = await zarr.api.asynchronous.open_group(store=store, mode="r+")
    array = await root.create_array(
        name,
        shape=aus.shape,
        chunks=tuple(max(d, 1) for d in aus.shape),
        dtype=bool,
        dimension_names=AUS_DIMS,
        compressors=COMPRESSORS,
        overwrite=True,
    )
    if aus.size:
        await array.setitem(slice(None), aus)


async def _write_table(store, path: str, columns: dict[str, np.ndarray]) -> None:
    """Group ``path`` of one 1-chunk array per column, written concurrently (one round trip
    instead of two per column: 0.25 s less per commit, measured)."""
    root = await zarr.api.asynchronous.open_group(store=store, mode="r+")
    table = await root.create_group(path, overwrite=True)

    async def write_column(name: str, values: np.ndarray) -> None:
        array = await table.create_array(
            name,
            shape=values.shape,
            chunks=(max(len(values), 1),),
            dtype=str if values.dtype == object else values.dtype,
            dimension_names=["sample"],
            compressors=(ZstdCodec(level=1), CHECKSUM),
        )
        if len(values):
            await array.setitem(slice(None), values)

    await asyncio.gather(*(write_column(name, values) for name, values in columns.items()))
