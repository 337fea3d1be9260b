"""A training run's one sequence, whoever trains the folds: plan -> folds -> pool -> record.

    record = run_training(store, request, runner)

1. the store's snapshot is held (a lease branch: ``gc`` keeps it, and a cancelled run deletes
   it, which tells fold tasks still running to stop);
2. ``runner.prepare`` checks the run and says how many folds it has (in this process: the whole
   plan, ``plan_run``; the flow: the split only, its workers plan);
3. a store that cannot take the record refuses now, not after the last fold;
4. ``runner.run`` trains the folds (in this process one after the other, ``plan.InProcess``;
   the ``train`` flow: Prefect tasks on Dask workers, ``flows.train``) and yields them as they
   finish, each group with the run header its plan made;
5. the folds are pooled into the run's record (``combine_folds``), which is saved on the
   store's ``runs`` branch (a failed save keeps the results and says where).

The run's id and creation time are fixed once, before any fold (:class:`RunTicket`): every
plan of the run, wherever it is made, writes the same header. Needs no PyTorch (the flow's own
process runs this and has none).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from collections.abc import Iterable
from typing import Any, Protocol

from mer_prep.store.lease import reading_lease
from mer_prep.store.reader import FeatureStore
from mer_prep.train.errors import TrainSetupError
from mer_prep.train.records import FoldResult, RunHeader, RunRecord, combine_folds, new_run_id
from mer_prep.train.request import TrainRequest
from mer_prep.train.runs_store import check_writable, save_or_keep


@dataclasses.dataclass(frozen=True)
class RunTicket:
    """What every fold of one run shares, small and picklable: the request, the store's
    location and exact snapshot, the run's lease branch (None: not held, a run that records
    nothing), its id and creation time (UTC, ISO seconds)."""

    request: TrainRequest
    location: str
    snapshot_id: str
    lease: str | None
    run_id: str
    created: str
    validation_metric: str | None = None  # the library's override of the preset's
    group_id: str | None = None  # the seed group the run belongs to (``train.seeds``)


@dataclasses.dataclass(frozen=True)
class FoldsDone:
    """Folds trained together: the run header as their plan made it, their results and the
    worker that trained them (``local``: this process)."""

    header: RunHeader
    results: list[FoldResult]
    worker: str = "local"


class FoldRunner(Protocol):
    """Who trains a run's folds (``plan.InProcess``, ``flows.train.DaskFolds``)."""

    def prepare(self, ticket: RunTicket) -> int:
        """Check what can be checked before any fold; return the number of folds (>= 1)."""

    def run(self, ticket: RunTicket, n_folds: int) -> Iterable[FoldsDone]:
        """Train the ``n_folds`` folds, yielding them as they finish; raise when one fails."""

    def timings(self, done: list[FoldsDone], ready_s: float) -> dict[str, Any]:
        """What the record's ``timings`` say of this runner's run (``ready_s``: seconds from
        the start to the first fold)."""


def run_training(
    store: FeatureStore,
    request: TrainRequest,
    runner: FoldRunner,
    *,
    save: bool = True,
    validation_metric: str | None = None,
    group_id: str | None = None,
) -> RunRecord:
    """Train every fold of ``request`` on ``store`` (opened at the version the request names)
    with ``runner`` and return the run's record, saved on the store unless ``save=False``.
    group_id: the seed group the record names (``mer_prep.train.seeds``; None: a single-seed
    run, grouped with others by its configuration)."""
    if request.seeds != 1:  # one run is one seed; a group is ``seeds.run_seeds``'s loop
        raise TrainSetupError(
            f"a run trains one seed, the request asks for {request.seeds}: "
            f"use mer_prep.train.seeds.train_seeds"
        )
    started = time.perf_counter()
    snapshot = store.session.snapshot_id
    with reading_lease(store.location, snapshot, store.version_id, required=save) as lease:
        ticket = RunTicket(
            request=request,
            location=store.path,
            snapshot_id=snapshot,
            lease=lease,
            run_id=new_run_id(request.model),
            created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            validation_metric=validation_metric,
            group_id=group_id,
        )
        n_folds = runner.prepare(ticket)
        if n_folds < 1:
            raise TrainSetupError(f"split {request.split!r} of {store.path} has no folds")
        if save:
            check_writable(store)
        ready_s = time.perf_counter() - started
        done = list(runner.run(ticket, n_folds))
        results = [result for finished in done for result in finished.results]
        record = combine_folds(
            results,
            dataclasses.replace(done[0].header, group_id=ticket.group_id),
            duration_s=time.perf_counter() - started,
            timings=runner.timings(done, ready_s),
        )
        if save:
            save_or_keep(store, record)
    return record
