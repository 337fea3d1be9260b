"""A live training's hold on the store snapshot it reads (``reading_lease``).

A training reads one exact snapshot for minutes to hours; a ``mer-prep gc --tags`` run meanwhile
must neither expire that snapshot nor delete its version's tag (the record written at the end
names both). The lease is a branch ``reading-<version>-<nonce>-<owner>`` at the snapshot:

- ``collect_garbage`` never expires a branch tip, and keeps the tag the lease names;
- the branch is deleted when the training ends (committed, failed or cancelled), and a killed
  training's lease is removed by the next gc once its process is provably gone (same owner
  record as the preprocessing runs' scratch branches: host, boot, PID, start time; another
  host's only after ``gc.STALE_AFTER``);
- a training's fold workers check between epochs that the lease still exists
  (``mer_prep.store.run_watch.RunWatch``): a cancelled training deletes it, so folds running on
  a standing cluster stop instead of training for nobody.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import icechunk as ic

from mer_prep.errors import StoreError
from mer_prep.store.gc import LEASE_PREFIX, owned_branch
from mer_prep.store.repo import Location, StoreLocation, open_repository

__all__ = ["reading_lease"]


@contextlib.contextmanager
def reading_lease(
    location: Location, snapshot_id: str, version_id: str | None, *, required: bool = True
) -> Iterator[str | None]:
    """Hold ``snapshot_id`` of the store at ``location`` (version ``version_id``) while the
    block runs; yields the lease branch's name. ``StoreError`` when it cannot be taken (the
    snapshot collected between opening the store and taking the lease, a store this process
    may not write); with ``required=False`` (a run that writes nothing to the store) the block
    runs without a lease instead (yields None)."""
    where = StoreLocation.parse(location)
    repo = open_repository(where)
    branch, leased = owned_branch(LEASE_PREFIX, version_id), True
    try:
        repo.create_branch(branch, snapshot_id)
    except (ic.IcechunkError, OSError) as error:
        if required:
            raise StoreError(
                f"store {where}: snapshot {snapshot_id} of "
                f"{version_id or 'its version'} cannot be held for training "
                f"(collected meanwhile, or read-only?): "
                f"{str(error).strip().splitlines()[0]}"
            ) from None
        leased = False
    if not leased:  # not required: the block runs without a lease
        yield None
        return
    try:
        yield branch
    finally:
        with contextlib.suppress(ic.IcechunkError):  # left for gc (its owner is gone then)
            repo.delete_branch(branch)
