"""Everything that leans on Prefect's, prefect-dask's or Dask's behaviour beyond their public API,
in one place: a Prefect (or Dask) upgrade touches this file and ``tests/test_compat.py`` only.

Each piece matches a pinned version's internals (a private attribute or method, a module global
it swaps, a message's text) and has a test in ``tests/test_compat.py`` that fails, naming the
piece, when an upgrade changes what it leans on. The pieces, and who uses them:

Patches and private APIs

- ``fork_runs_from_warm_process`` (``flows.deployments``, ``mer-prep serve``): swaps
  ``prefect.flow_engine.multiprocessing`` so that served runs fork from a warm forkserver.
- ``private_server`` (``flows.runtime.prefect_api``): subclasses ``SubprocessASGIServer``
  (Prefect's ephemeral server), overriding its private ``_run_uvicorn_command`` and
  ``_instances``, and swapping its module's ``subprocess`` while it starts.
- ``task_runner_cluster`` (``flows.preprocess``, stopping local workers on Ctrl-C): reads
  prefect-dask's private ``DaskTaskRunner._cluster``.
- ``drain_api_workers`` (``flows.runtime.prefect_api``) and ``drain_events`` (a refused served
  run's event, ``flows.served``): ``drain_all`` of Prefect's log and event workers, a method of
  its private ``_internal.concurrency.services``.

Log filters matching third-party text

- ``HeartbeatAfterShutdown`` (``prefect.events.utilities``, installed by ``install_log_filters``).
- ``UnservableDashboard`` (``prefect.task_runner.dask``, installed by ``flows.cluster``).
- ``QuietCancelled`` (``prefect.flow_runs`` and ``prefect``, while ``run_preprocess`` runs).
- ``HeartbeatOfClosingWorker`` (``distributed.worker``, installed by the workers' preload
  ``flows.worker_setup``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

# ------------------------------------------------------------------------------------ patches


def fork_runs_from_warm_process(preload: list[str]) -> None:
    """Make Prefect start each run of a served flow by forking a process that has already
    imported ``preload`` (``multiprocessing``'s forkserver), not by spawning a fresh interpreter.

    Why: a fresh interpreter importing Prefect and the pipeline cost every served run ~1 s
    (``flows.deployments``). How: ``prefect.flow_engine.run_flow_in_subprocess`` asks its module
    global ``multiprocessing`` for a "spawn" context; this hands it a forkserver context instead
    (other start methods and attributes pass through). The forkserver is a plain single-threaded
    process started here, before the runner's threads, with this environment. Where there is no
    forkserver (Windows) runs spawn, as before.
    """
    import multiprocessing
    import multiprocessing.forkserver

    from prefect import flow_engine

    if "forkserver" not in multiprocessing.get_all_start_methods():
        return
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(list(preload))
    multiprocessing.forkserver.ensure_running()

    class _Multiprocessing:
        """``multiprocessing`` as Prefect's flow engine sees it."""

        def __getattr__(self, name: str) -> Any:
            return getattr(multiprocessing, name)

        @staticmethod
        def get_context(method: str | None = None) -> Any:
            return context if method == "spawn" else multiprocessing.get_context(method)

    flow_engine.multiprocessing = _Multiprocessing()


class SessionSubprocess:
    """``subprocess`` as a module sees it when its ``Popen`` must start the child in a session
    of its own (``start_new_session``) and run ``preexec`` in it before exec (None: nothing)."""

    def __init__(self, real: Any, preexec: Callable[[], None] | None) -> None:
        self._real, self._preexec = real, preexec

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def Popen(self, *args: Any, **kwargs: Any) -> Any:  # stands in for subprocess.Popen
        kwargs.setdefault("start_new_session", True)
        if self._preexec is not None:
            kwargs.setdefault("preexec_fn", self._preexec)
        return self._real.Popen(*args, **kwargs)


def private_server(preexec: Callable[[], None] | None = None) -> Any:
    """An unstarted Prefect ephemeral server (``SubprocessASGIServer``) whose process starts in
    a session of its own and runs ``preexec`` before exec (``flows.runtime.die_with_parent``).

    Why: the terminal's Ctrl-C must not kill the run's API before the run has recorded its
    cancellation, and the server must die with its run (``flows.runtime``). Prefect has no
    option for either, so ``_run_uvicorn_command`` (the private method that starts the process)
    runs with its module's ``subprocess`` swapped for a ``SessionSubprocess``; ``_instances``
    (Prefect's private per-port registry) is our own, so Prefect's ephemeral servers are never
    handed this one, nor this one theirs.
    """
    from prefect.server.api import server as module

    class PrivateServer(module.SubprocessASGIServer):
        _instances: dict = {}  # not shared with Prefect's own ephemeral servers

        def _run_uvicorn_command(self) -> Any:
            real = module.subprocess
            module.subprocess = SessionSubprocess(real, preexec)
            try:
                return super()._run_uvicorn_command()
            finally:
                module.subprocess = real

    return PrivateServer()


def task_runner_cluster(task_runner: Any) -> Any:
    """The Dask cluster object a started ``DaskTaskRunner`` made or was handed, or None (another
    task runner, none started yet, or connected by address).

    Why: on Ctrl-C a run stops its local cluster's workers at once instead of waiting out their
    batches (``flows.preprocess``). prefect-dask has no public handle on its cluster (its
    ``client`` property would start one), so this reads its private ``_cluster``.
    """
    return getattr(task_runner, "_cluster", None) if task_runner is not None else None


def drain_api_workers(timeout: float) -> None:
    """Ship the logs and events this process has queued for the Prefect API, waiting at most
    ``timeout`` seconds for each kind.

    Why: before the private server stops (``flows.runtime.prefect_api``); otherwise Prefect's
    workers retry against a closed port for a minute at interpreter exit. ``drain_all`` is a
    class method of Prefect's private ``_internal.concurrency.services``, which both workers
    inherit.
    """
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=timeout)
    drain_events(timeout)


def drain_events(timeout: float) -> None:
    """Send the events this process has queued for the Prefect API, waiting at most ``timeout``
    seconds (``drain_all`` of Prefect's events worker: see ``drain_api_workers``).

    Why: a served run refused in its first second emits its refusal and ends at once; without
    this the event may still be queued when the run's process exits.
    """
    from prefect.events.worker import EventsWorker

    EventsWorker.drain_all(timeout=timeout)


# -------------------------------------------------------------------------------- log filters

#: Prefect's event names and loggers the filters below match.
HEARTBEAT_EVENT = "prefect.flow-run.heartbeat"
STOPPED_SERVICE = "Cannot put items in a stopped service instance"
EVENTS_LOGGER = "prefect.events.utilities"
DASK_RUNNER_LOGGER = "prefect.task_runner.dask"
DASHBOARD_MESSAGE = "The Dask dashboard is available"
FLOW_RUNS_LOGGER = "prefect.flow_runs"
CANCELLED_MESSAGE = "Finished in state Cancelled"
STOPPING_SERVER_MESSAGE = "Stopping temporary server"
WORKER_LOGGER = "distributed.worker"
HEARTBEAT_FAILED_MESSAGE = "Failed to communicate with scheduler during heartbeat"


def _install(logger_name: str, log_filter: logging.Filter) -> None:
    """Add ``log_filter`` to ``logger_name`` unless a filter of its class is there already."""
    logger = logging.getLogger(logger_name)
    if not any(isinstance(f, type(log_filter)) for f in logger.filters):
        logger.addFilter(log_filter)


class HeartbeatAfterShutdown(logging.Filter):
    """Drops Prefect's error for a flow-run heartbeat emitted after the events worker stopped.

    Prefect's flow engine sends the first flow-run heartbeat from a daemon thread as the run
    starts. A served run refused in its first second (a deployment parameter the config does not
    allow) ends, and the process's events worker stops, while that thread may still be
    emitting: Prefect then logs "Error emitting event: prefect.flow-run.heartbeat" with a
    traceback ending in "Cannot put items in a stopped service instance". The heartbeat is moot
    (the run has ended), so that one record is dropped; every other failure to emit an event is
    still logged.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not (
            str(record.msg).startswith("Error emitting event")
            and HEARTBEAT_EVENT in record.getMessage()
            and isinstance(error, RuntimeError)
            and STOPPED_SERVICE in str(error)
        )


def install_log_filters() -> None:
    """Install the flow processes' log filters once per process (idempotent): a served run
    imports its flow's module as its entrypoint, which calls this."""
    _install(EVENTS_LOGGER, HeartbeatAfterShutdown())


class UnservableDashboard(logging.Filter):
    """Drops prefect-dask's "The Dask dashboard is available at ..." when ``servable()`` says no
    dashboard can be served (no ``bokeh``: ``flows.cluster.dashboard_servable``): the link
    would lead to a 404. ``servable`` is called for each such record."""

    def __init__(self, servable: Callable[[], bool]) -> None:
        super().__init__()
        self.servable = servable

    def filter(self, record: logging.LogRecord) -> bool:
        return not (str(record.msg).startswith(DASHBOARD_MESSAGE) and not self.servable())


def install_dashboard_filter(servable: Callable[[], bool]) -> None:
    """Install ``UnservableDashboard(servable)`` on prefect-dask's logger (idempotent)."""
    _install(DASK_RUNNER_LOGGER, UnservableDashboard(servable))


class QuietCancelled(logging.Filter):
    """Drops the flow engine's "Finished in state Cancelled(...)" line, and the private server's
    "Stopping temporary server" (its start is announced; its end is the run's): a cancelled
    ``mer-prep run`` says so in one line of its own. Installed on ``prefect.flow_runs`` and
    ``prefect`` for the duration of ``run_preprocess``."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith((CANCELLED_MESSAGE, STOPPING_SERVER_MESSAGE))


def _comm_closed(error: BaseException | None) -> bool:
    """Whether ``error`` (or an exception it was raised from) is a closed comm's."""
    from distributed.comm.core import CommClosedError

    seen = 0
    while error is not None and seen < 10:
        if isinstance(error, CommClosedError):
            return True
        error, seen = error.__cause__ or error.__context__, seen + 1
    return False


class HeartbeatOfClosingWorker(logging.Filter):
    """Drops the heartbeat failure of a Dask worker whose connection was closed under it.

    A worker of a run's own local cluster (or of ``serve``'s standing one) whose heartbeat finds
    its connection closed logs "Failed to communicate with scheduler during heartbeat" with a
    50-line traceback ending in ``CommClosedError`` (the pool closing while it connects, or
    "Stream is closed": the scheduler, in the run's or ``serve``'s process, is shutting down).
    That is what a cancelled run looks like from its workers, and it must stop with one line.
    A heartbeat that fails otherwise (a refused connection, a timeout) is still logged.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not (
            str(record.msg).startswith(HEARTBEAT_FAILED_MESSAGE)
            and record.exc_info is not None
            and _comm_closed(record.exc_info[1])
        )


def install_worker_log_filters() -> None:
    """Install the Dask workers' log filters once per process (idempotent)."""
    _install(WORKER_LOGGER, HeartbeatOfClosingWorker())
