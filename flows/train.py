"""The ``train`` flow: thin wiring of ``mer_prep.train`` over Prefect tasks on a Dask cluster.

The flow builds the run's ``TrainRequest`` and runs the library's one sequence
(``mer_prep.train.sequence.run_training``) with :class:`DaskFolds` as its fold runner; what is
left here is Prefect's: the task wrapper, logging, the artifact. In short:
open the store version (the ``version`` tag, else the latest) → one task per fold, or per group
of ``folds_per_task`` folds for light models, each planning the run on its worker (the store
read once per worker process, at that exact snapshot) and training its folds → gather →
pooled metrics and the run record, written once on the store's ``runs`` branch → a markdown
artifact (scores, per-fold and per-class tables, the confusion matrix). A fold that still fails
after its retries fails the run, and nothing is recorded. A fold whose worker dies (SIGKILL,
OOM) is rerun on another worker by Dask.

**GPUs.** A GPU worker is a plain Dask worker started with a ``GPU`` resource, one per GPU
(``dask worker ADDRESS --nthreads 1 --resources GPU=1``, ``CUDA_VISIBLE_DEVICES`` naming its
GPU). The fold tasks of a CUDA run ask for one (``dask.annotate(resources={"GPU": 1})``), so
each GPU trains one fold at a time and no fold lands on a worker without one; CPU runs ask for
nothing. A worker holding several GPUs (``GPU=2``: a SLURM job or Kubernetes worker with
``gpus = 2``) runs as many folds at once, each on a GPU of its own
(``mer_prep.train.gpu_slots.claimed_device``), not all on the first. The flow's own process
needs neither PyTorch nor a GPU: planning and training happen on the workers; the flow
combines the folds' results (numpy) and writes the record.

Started by a deployment, the flow checks its parameters against ``mer-prep.toml``
(``Config.check_run(parameters, flow="train")``) and re-enters itself as a subflow on a Dask
task runner chosen by ``dask_address`` / ``n_workers`` (see ``flows.cluster``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import re
import threading
import time
from collections.abc import Iterator
from typing import Any

import dask
from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.context import FlowRunContext
from prefect.futures import as_completed
from prefect_dask import DaskTaskRunner

from flows.cluster import dask_task_runner
from flows.compat import install_log_filters
from flows.runtime import without_heartbeats, worker_task
from flows.served import refused_run
from mer_prep.config.trainings import task_resources
from mer_prep.errors import InvalidArgumentError, MerPrepError
from mer_prep.train.records import RunRecord
from mer_prep.train.request import TrainRequest
from mer_prep.train.sequence import FoldsDone, RunTicket

install_log_filters()  # a served run imports this module as its entrypoint

#: How long a run waits for a worker with the resources its folds need before it fails.
RESOURCE_WAIT_S = 60.0


@dataclasses.dataclass(frozen=True)
class FoldJob:
    """What a fold task needs: the run's ticket (its request, the store at its exact snapshot,
    its lease and id) and the indices of the folds it trains. Small and picklable."""

    ticket: RunTicket
    folds: tuple[int, ...]

    @property
    def label(self) -> str:
        return "+".join(map(str, self.folds))

    def plan_key(self) -> tuple[str, ...]:
        """What the worker's plan depends on: the store's snapshot and the request's settings
        (not the folds, the lease, the run's id or its cluster: a later run of the same
        settings reuses the plan)."""
        t = self.ticket
        return (
            t.location,
            t.snapshot_id,
            str(t.validation_metric),
            t.request.settings().model_dump_json(),
        )


class _PlanKey:
    """A fold job as the plan cache's key: equal when :meth:`FoldJob.plan_key` is."""

    def __init__(self, job: FoldJob) -> None:
        self.job, self.key = job, job.plan_key()

    def __hash__(self) -> int:
        return hash(self.key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _PlanKey) and other.key == self.key


# Two threads of one worker must not build the same plan twice (lru_cache alone would let
# them): the lock serialises the lookup.
_PLANS_LOCK = threading.Lock()


def _plan(job: FoldJob):
    """The run's plan on this worker (cached per process), at exactly the ticket's snapshot,
    its header naming the ticket's run."""
    ticket = job.ticket
    with _PLANS_LOCK:
        return _cached_plan(_PlanKey(job)).for_run(ticket.run_id, ticket.created)


# The plans a worker process holds (the store's arrays in memory): the latest two, so that the
# folds of one run read the store once per worker, and two runs sharing a worker do not thrash.
@functools.lru_cache(maxsize=2)
def _cached_plan(key: _PlanKey):
    """The plan of the job's settings and snapshot."""
    from mer_prep.store.reader import FeatureStore
    from mer_prep.store.repo import StoreLocation, open_repository
    from mer_prep.train.plan import plan_request

    ticket = key.job.ticket
    location = StoreLocation.parse(ticket.location)
    repo = open_repository(location)
    store = FeatureStore(location, repo, repo.readonly_session(snapshot_id=ticket.snapshot_id))
    return plan_request(
        store, ticket.request, ticket=ticket, validation_metric=ticket.validation_metric
    )


# a bad setup (MerPrepError): no retry
@worker_task("train-folds", final=MerPrepError, task_run_name="fold-{job.label}")
def train_folds(job: FoldJob) -> FoldsDone:
    """Train ``job.folds`` on this Dask worker (PyTorch on one thread on CPU: one worker, one
    core)."""
    from distributed import get_worker

    from mer_prep.threads import pin_threads
    from mer_prep.train.errors import torch_or_raise
    from mer_prep.train.gpu_slots import claimed_device

    torch = torch_or_raise()
    pin_threads(1)
    if job.ticket.request.device == "cpu":
        torch.set_num_threads(1)
    stop_if_gone = _stop_if_run_gone(job)
    stop_if_gone()
    plan = _plan(job)
    results = []
    for index in job.folds:
        stop_if_gone()
        # a worker with several GPUs trains concurrent folds on different ones
        with claimed_device(plan.device) as device:
            results.append(plan.train_fold(plan.fold(index), report=stop_if_gone, device=device))
    try:
        worker = get_worker().address
    except ValueError:
        worker = "local"
    return FoldsDone(plan.header, results, worker)


def _stop_if_run_gone(job: FoldJob):
    """A check, called before each fold and after each epoch, that raises ``RunAbandoned`` once
    the run's lease branch is gone: a cancelled run deletes it, and a standing cluster would
    otherwise train its folds to the end for nobody (hours of GPU time for large models)."""
    from mer_prep.errors import RunAbandoned
    from mer_prep.store.run_watch import RunWatch

    ticket = job.ticket
    watch = RunWatch(ticket.location, ticket.lease) if ticket.lease else None

    def check(event=None) -> None:
        if watch is not None and not watch.alive():
            epoch = getattr(event, "epoch", None)  # EpochDone; FirstBatches: in the first
            where = (
                f" after epoch {epoch}"
                if epoch is not None
                else " in epoch 1"
                if hasattr(event, "steps_per_epoch")
                else " after its last epoch"
                if event is not None
                else ""
            )
            raise RunAbandoned(
                f"the training reading {ticket.location} is gone (its lease "
                f"{ticket.lease} no longer exists): fold(s) {job.label} "
                f"stopped{where}"
            )

    return check


def run_name() -> str:
    """``<dataset>-<model>-<split>`` (``casme2-ha3dnet-loso``)."""
    from prefect.runtime import flow_run

    p = flow_run.parameters
    return run_name_of(
        p.get("dataset"), p.get("store", "store"), p.get("model", "mbcc"), p.get("split", "loso")
    )


@flow(name="train", flow_run_name=run_name, log_prints=True)
def train(
    store: str,
    dataset: str | None = None,
    model: str = "mbcc",
    variant: str | None = None,
    split: str = "loso",
    device: str = "cpu",
    version: str | None = None,
    seed: int = 0,
    seeds: int = 1,
    epochs: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    selection: str | None = None,
    target: str = "emotion",
    config: dict | None = None,
    keep_checkpoints: bool = False,
    n_workers: int = 2,
    dask_address: str | None = None,
    cluster: dict | None = None,
    resources: dict[str, float] | None = None,
    folds_per_task: int = 1,
) -> RunRecord:
    """Train ``model`` on every fold of ``split`` of ``store`` at ``version`` (a tag; None: the
    latest) on Dask workers, record the run on the store and return its record.

    The parameters are a :class:`~mer_prep.train.request.TrainRequest`'s fields, spelt out
    because a deployment, its trigger (``version``) and ``-p NAME=VALUE`` name them one by one;
    the flow builds the request first thing, and uses nothing else. resources: Dask resources
    each fold task needs (None: ``{"GPU": 1}`` on CUDA, none on CPU); folds_per_task: folds
    trained by one task (light models: fewer, coarser tasks); seeds: runs of seeds ``seed``,
    ``seed + 1``, ... one after the other, one record each, one run group (the last seed's
    record is returned).
    """
    parameters = dict(locals())
    context = FlowRunContext.get()
    if context is not None and not isinstance(context.task_runner, DaskTaskRunner):
        refused = refused_run(parameters, flow="train")  # before any connection or store access
        if refused is not None:
            return refused
        request = TrainRequest.of(**parameters)  # bad settings: refused before any worker
        runner = dask_task_runner(
            request.dask_address,
            request.n_workers,
            task_resources(request.resources, request.device),
            cluster=request.cluster,
        )
        with without_heartbeats():  # the subflow's final state is this run's
            return train.with_options(task_runner=runner)(**request.model_dump(), return_state=True)
    return _train(TrainRequest.of(**parameters))


def _train(request: TrainRequest) -> RunRecord:
    """The run's one sequence (``mer_prep.train.sequence``) with its folds as Prefect tasks on
    this flow's Dask cluster, once per seed (``mer_prep.train.seeds``); then the log lines and
    the artifacts. The last seed's record."""
    from mer_prep.store.reader import open_store
    from mer_prep.train.seeds import run_seeds
    from mer_prep.train.sequence import run_training

    opened = open_store(request.store, request.version)
    logger = get_run_logger()

    def one_seed(one: TrainRequest, group_id: str | None) -> RunRecord:
        record = run_training(opened, one, DaskFolds(opened), group_id=group_id)
        logger.info(
            "recorded run %s on %s: UF1 %.3f, UAR %.3f, accuracy %.3f%s",
            record.run_id,
            opened.path,
            record.uf1,
            record.uar,
            record.accuracy,
            f"  {record.leak_label}" if record.leak_label else "",
        )
        return record

    group = run_seeds(request, one_seed)
    if len(group.records) > 1:
        logger.info("%s", group.text())
    _publish(group.records[-1], request.dataset, request.store)
    return group.records[-1]


class DaskFolds:
    """The :class:`~mer_prep.train.sequence.FoldRunner` of the flow: the split's folds, grouped
    ``folds_per_task`` to a Prefect task on the Dask workers (each task plans the run on its
    worker, at the ticket's snapshot), logged as they finish."""

    def __init__(self, store) -> None:
        self.store = store
        self.n_tasks = self.folds_per_task = 0

    def prepare(self, ticket: RunTicket) -> int:
        request, store = ticket.request, self.store
        n_folds = store.split(request.split).n_folds
        get_run_logger().info(
            "%s: %s on %s version %s (snapshot %s), %d folds of %s",
            run_name_of(request.dataset, request.store, request.model, request.split),
            request.model,
            store.path,
            store.version_id,
            ticket.snapshot_id,
            n_folds,
            request.split,
        )
        return n_folds

    def run(self, ticket: RunTicket, n_folds: int) -> Iterator[FoldsDone]:
        request, logger = ticket.request, get_run_logger()
        needs = task_resources(request.resources, request.device)
        _wait_for_resources(needs)
        annotation = dask.annotate(resources=needs) if needs else contextlib.nullcontext()
        with annotation:
            futures = [
                train_folds.submit(FoldJob(ticket, tuple(group)))
                for group in fold_groups(n_folds, request.folds_per_task)
            ]
        self.n_tasks, self.folds_per_task = len(futures), request.folds_per_task
        for future in as_completed(futures):
            finished = future.result()  # a fold that failed after its retries fails the run
            logger.info(
                "fold(s) %s trained on %s",
                ", ".join(r.name for r in finished.results),
                finished.worker,
            )
            yield finished

    def timings(self, done: list[FoldsDone], _ready_s: float) -> dict[str, Any]:
        workers = {result.name: finished.worker for finished in done for result in finished.results}
        return {
            "fold_workers": workers,
            "n_tasks": self.n_tasks,
            "folds_per_task": self.folds_per_task,
        }


def run_name_of(dataset, store, model, split) -> str:
    """``<dataset>-<model>-<split>``, the store's folder name standing in for a dataset."""
    what = dataset or str(store).rstrip("/").rsplit("/", 1)[-1]
    return f"{what}-{model}-{split}"


def fold_groups(n_folds: int, per_task: int) -> list[range]:
    """Consecutive folds, ``per_task`` to a task (the last group may be shorter)."""
    return [range(i, min(i + per_task, n_folds)) for i in range(0, n_folds, per_task)]


def _wait_for_resources(needs: dict[str, float] | None, timeout: float = RESOURCE_WAIT_S) -> None:
    """Wait until some worker of the run's cluster has ``needs`` (a task asking for a resource
    no worker has would wait forever); ``InvalidArgumentError`` naming how to start one."""
    if not needs:
        return
    client = FlowRunContext.get().task_runner.client
    deadline = time.monotonic() + timeout
    while True:
        workers = client.scheduler_info(n_workers=-1)["workers"].values()
        if any(
            all(w.get("resources", {}).get(k, 0) >= v for k, v in needs.items()) for w in workers
        ):
            return
        if time.monotonic() > deadline:
            wanted = " ".join(f"{k}={v:g}" for k, v in needs.items())
            raise InvalidArgumentError(
                f"no Dask worker of {client.scheduler.address} has the resources {wanted} the "
                f"folds need (after {timeout:.0f} s); start one with `dask worker ADDRESS "
                f"--nthreads 1 --resources {wanted}`"
            )
        time.sleep(0.5)


def artifact_key(dataset: str | None, model: str, split: str) -> str:
    """``train-<dataset>-<model>-<split>``, as Prefect wants keys."""
    return re.sub(r"[^a-z0-9-]+", "-", f"train-{dataset or 'store'}-{model}-{split}".lower())


def training_report(record: RunRecord) -> str:
    """The artifact's markdown: ``mer_prep.plot.run_markdown`` (scores, confusion matrix image,
    per-fold table), then per-class scores, the store version and the run's settings."""
    from mer_prep.plot.runs import run_markdown

    if record.au_metrics is not None:  # an AU run: no confusion matrix; its per-AU F1
        from mer_prep.train.au_target import au_markdown

        return au_markdown(record)
    metrics, names = record.metrics, record.store["class_names"]
    confusion = metrics.get("confusion") or [[0] * len(names)] * len(names)
    lines = [
        run_markdown(record),
        "## per class",
        "",
        "| class | n | F1 | recall |",
        "|---|---:|---:|---:|",
    ]
    for k, name in enumerate(names):
        lines.append(
            f"| {name} | {sum(confusion[k])} | "
            f"{_fmt((metrics.get('per_class_f1') or {}).get(name))} | "
            f"{_fmt((metrics.get('per_class_recall') or {}).get(name))} |"
        )
    lines += [
        "",
        "## store and run",
        "",
        f"- store: `{record.store['location']}`",
        f"- version: `{record.version_id}`, snapshot `{record.snapshot_id}`",
        f"- split: `{record.split}` ({record.split_kind}), "
        f"{'LEAKY (sample-level)' if record.leaky else 'subject-independent'}",
        *([f"- **{record.leak_label}**"] if record.leaky_selection else []),
        f"- model: {record.model}/{record.variant}, seed {record.seed}, device "
        f"{record.device}, {record.n_folds} folds in {record.duration_s:.1f} s",
        "",
    ]
    return "\n".join(lines)


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.3f}"


def _publish(record: RunRecord, dataset: str | None, store: str) -> None:
    """The run's markdown artifact and the leaderboard of its ``store`` (never fatal)."""
    try:
        create_markdown_artifact(
            markdown=training_report(record),
            key=artifact_key(dataset, record.model, record.split),
            description=f"train {record.model}/{record.variant} on "
            f"{record.version_id}: UF1 {record.uf1:.3f}",
        )
        from mer_prep.train.store_board import leaderboard_markdown

        create_markdown_artifact(
            markdown=leaderboard_markdown(store),
            key=leaderboard_key(dataset),
            description=f"leaderboard of the runs on {store}",
        )
    except Exception as error:  # noqa: BLE001 - an artifact never fails a recorded run
        get_run_logger().warning("could not publish the run's artifact: %s", error)


def leaderboard_key(dataset: str | None) -> str:
    """``leaderboard-<dataset>``, as Prefect wants keys."""
    return re.sub(r"[^a-z0-9-]+", "-", f"leaderboard-{dataset or 'store'}".lower())


def run_train(
    store: str,
    model: str = "mbcc",
    *,
    n_workers: int = 2,
    dask_address: str | None = None,
    **parameters: Any,
) -> RunRecord:
    """Run the flow on a Dask task runner from this process (``mer-prep train --dask-address``,
    tests, benches): Prefect's API from ``PREFECT_API_URL``, else a private one. parameters:
    the other :class:`~mer_prep.train.request.TrainRequest` fields; a bad one is refused
    before any cluster or Prefect server starts."""
    from flows.runtime import prefect_api, sigterm_interrupts

    request = TrainRequest.of(
        store=str(store), model=model, n_workers=n_workers, dask_address=dask_address, **parameters
    )
    with sigterm_interrupts(), prefect_api():
        runner = dask_task_runner(
            request.dask_address,
            request.n_workers,
            task_resources(request.resources, request.device),
            cluster=request.cluster,
        )
        return train.with_options(task_runner=runner)(**request.model_dump())
