"""flows.compat: each piece that leans on Prefect's, prefect-dask's or Dask's internals does what it
says, and the pinned versions still have what it leans on: an upgrade that changes it fails
here, naming the piece (the ``test_pinned_*`` tests, fast, read the installed sources)."""

from __future__ import annotations

import inspect
import logging
import multiprocessing
import os
import subprocess
import sys
import time
import urllib.request

import distributed.comm.core as comm_core
import distributed.worker as dask_worker
import prefect._internal.concurrency.services as services
import prefect.events.utilities as event_utilities
import prefect.flow_engine as flow_engine
import prefect.logging.loggers as prefect_loggers
import prefect_dask.task_runners as dask_runners
import psutil
import pytest
from prefect.events.worker import EventsWorker
from prefect.logging.handlers import APILogWorker
from prefect.server.api import server as server_module
from prefect.states import Cancelled, Completed
from prefect.task_runners import ThreadPoolTaskRunner
from prefect_dask import DaskTaskRunner

import flows.cluster  # noqa: F401 - installs UnservableDashboard, as a flow's import does
from flows.compat import (
    CANCELLED_MESSAGE,
    DASHBOARD_MESSAGE,
    DASK_RUNNER_LOGGER,
    EVENTS_LOGGER,
    FLOW_RUNS_LOGGER,
    HEARTBEAT_EVENT,
    HEARTBEAT_FAILED_MESSAGE,
    STOPPED_SERVICE,
    STOPPING_SERVER_MESSAGE,
    WORKER_LOGGER,
    HeartbeatAfterShutdown,
    HeartbeatOfClosingWorker,
    QuietCancelled,
    SessionSubprocess,
    UnservableDashboard,
    drain_api_workers,
    drain_events,
    fork_runs_from_warm_process,
    install_log_filters,
    install_worker_log_filters,
    private_server,
    task_runner_cluster,
)


def _record(
    message: str, error: BaseException | None = None, name: str = EVENTS_LOGGER
) -> logging.LogRecord:
    exc_info = (type(error), error, None) if error else None
    return logging.LogRecord(name, logging.ERROR, __file__, 1, message, None, exc_info)


# --------------------------------------------------------------- fork_runs_from_warm_process


def test_fork_runs_from_warm_process_hands_the_engine_a_preloaded_forkserver(monkeypatch):
    monkeypatch.setattr(flow_engine, "multiprocessing", flow_engine.multiprocessing)  # restored
    fork_runs_from_warm_process(["colorsys"])
    patched = flow_engine.multiprocessing
    context = patched.get_context("spawn")  # what run_flow_in_subprocess asks for
    assert context.get_start_method() == "forkserver"
    assert patched.get_context("fork").get_start_method() == "fork"  # others pass through
    assert patched.Process is multiprocessing.Process
    child = context.Process(target=time.sleep, args=(60,))
    child.start()
    try:
        run = psutil.Process(child.pid)
        warm = run.parent()
        assert warm.pid != os.getpid() and warm.ppid() == os.getpid()  # forked by the forkserver
        assert "forkserver" in " ".join(warm.cmdline()) and "colorsys" in " ".join(warm.cmdline())
        assert run.cmdline() == warm.cmdline()  # a fork of it, not a fresh interpreter
    finally:
        child.terminate()
        child.join(timeout=30)


def test_pinned_prefect_still_has_what_fork_runs_from_warm_process_swaps():
    assert flow_engine.multiprocessing is multiprocessing, (
        "fork_runs_from_warm_process: prefect.flow_engine has no module global multiprocessing"
    )
    assert 'multiprocessing.get_context("spawn")' in inspect.getsource(
        flow_engine.run_flow_in_subprocess
    ), "fork_runs_from_warm_process: run_flow_in_subprocess no longer asks for a spawn context"


# ----------------------------------------------------------------------------- private_server


def test_session_subprocess_starts_a_new_session_and_runs_preexec():
    child = SessionSubprocess(subprocess, lambda: os.umask(0o027)).Popen(
        [sys.executable, "-c", "import os; print(os.getsid(0) == os.getpid(), os.umask(0))"],
        stdout=subprocess.PIPE,
        text=True,
    )
    out, _ = child.communicate(timeout=60)
    assert out.split() == ["True", str(0o027)]
    assert SessionSubprocess(subprocess, None).PIPE == subprocess.PIPE  # the rest passes through
    plain = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getsid(0) == os.getpid())"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert plain.stdout.split() == ["False"]  # the oracle: without it, this session


def test_private_server_is_not_in_prefects_registry():
    first, second = private_server(), private_server()
    assert isinstance(first, server_module.SubprocessASGIServer)
    assert first is not second  # Prefect's registry would hand out one per port
    assert first not in server_module.SubprocessASGIServer._instances.values()


def test_pinned_prefect_still_has_what_private_server_overrides():
    cls = getattr(server_module, "SubprocessASGIServer", None)
    assert cls is not None, "private_server: prefect.server.api.server.SubprocessASGIServer is gone"
    assert "_run_uvicorn_command" in vars(cls), (
        "private_server: SubprocessASGIServer._run_uvicorn_command is gone"
    )
    assert "subprocess.Popen(" in inspect.getsource(cls._run_uvicorn_command), (
        "private_server: _run_uvicorn_command no longer starts the server with subprocess.Popen"
    )
    assert server_module.subprocess is subprocess, (
        "private_server: the server module's global subprocess is gone"
    )
    assert isinstance(vars(cls).get("_instances"), dict) and "cls._instances" in inspect.getsource(
        cls.__new__
    ), "private_server: SubprocessASGIServer's per-port registry _instances changed"


@pytest.mark.slow  # starts Prefect's server (~10-20 s)
def test_private_server_serves_from_a_session_of_its_own():
    server = private_server()
    try:
        server.start()
        pid = server.server_process.pid
        assert os.getsid(pid) == pid != os.getsid(0)
        with urllib.request.urlopen(f"{server.api_url}/health", timeout=10) as response:
            assert response.read() == b"true"
    finally:
        server.stop()


# ------------------------------------------------------------------------ task_runner_cluster


def test_task_runner_cluster_is_none_without_a_started_dask_runner():
    assert task_runner_cluster(None) is None
    assert task_runner_cluster(ThreadPoolTaskRunner()) is None
    assert task_runner_cluster(DaskTaskRunner()) is None  # not started: no cluster yet


def test_pinned_prefect_dask_still_has_what_task_runner_cluster_reads():
    assert "_cluster" in vars(DaskTaskRunner()), (
        "task_runner_cluster: DaskTaskRunner has no _cluster attribute"
    )
    assert "self._connect_to = self._cluster = " in inspect.getsource(DaskTaskRunner.client.fget), (
        "task_runner_cluster: DaskTaskRunner no longer keeps the cluster it makes in _cluster"
    )


@pytest.mark.slow  # a local cluster of one worker process
def test_task_runner_cluster_is_the_local_cluster_a_runner_made():
    from distributed import LocalCluster

    from flows.cluster import local_cluster_kwargs

    with DaskTaskRunner(cluster_kwargs=local_cluster_kwargs(1)) as runner:
        address = runner.client.scheduler.address  # the first task's submission starts it
        cluster = task_runner_cluster(runner)
        assert isinstance(cluster, LocalCluster)
        assert cluster.scheduler_address == address
        assert len(cluster.workers) == 1


# -------------------------------------------------------------------------- drain_api_workers


def test_drain_api_workers_returns_with_nothing_queued():
    drain_events(timeout=1)
    drain_api_workers(timeout=1)  # no worker left running in this process
    assert not APILogWorker._instances and not EventsWorker._instances


def test_pinned_prefect_still_has_what_drain_api_workers_calls():
    for worker in (APILogWorker, EventsWorker):
        assert issubclass(worker, services._QueueServiceBase), (
            f"drain_api_workers: {worker.__name__} is no longer a Prefect queue service"
        )
        assert "timeout" in inspect.signature(worker.drain_all).parameters, (
            f"drain_api_workers: {worker.__name__}.drain_all takes no timeout"
        )


# --------------------------------------------------------------------- HeartbeatAfterShutdown


def test_heartbeat_after_shutdown_drops_only_that_error():
    stopped = RuntimeError(f"{STOPPED_SERVICE}.")
    keep = HeartbeatAfterShutdown().filter
    assert not keep(_record(f"Error emitting event: {HEARTBEAT_EVENT}", stopped))
    # any other event, any other failure, any other message is still logged
    assert keep(_record("Error emitting event: mer-prep.run.refused", stopped))
    assert keep(_record(f"Error emitting event: {HEARTBEAT_EVENT}", ValueError("bad")))
    assert keep(_record(f"Error emitting event: {HEARTBEAT_EVENT}", None))
    assert keep(_record("something else", stopped))


def test_install_is_idempotent_and_on_prefects_events_logger():
    install_log_filters()
    install_log_filters()
    logger = logging.getLogger(EVENTS_LOGGER)
    assert sum(isinstance(f, HeartbeatAfterShutdown) for f in logger.filters) == 1
    assert event_utilities.logger.name == EVENTS_LOGGER, "HeartbeatAfterShutdown: logger moved"


def test_pinned_prefect_still_has_what_heartbeat_after_shutdown_matches():
    assert 'logger.exception(f"Error emitting event: {event}")' in inspect.getsource(
        event_utilities.emit_event
    ), "HeartbeatAfterShutdown: emit_event's message changed"
    assert STOPPED_SERVICE in inspect.getsource(services), (
        "HeartbeatAfterShutdown: the stopped-service error changed"
    )
    assert HEARTBEAT_EVENT in inspect.getsource(flow_engine), (
        "HeartbeatAfterShutdown: the heartbeat event's name changed"
    )


# ------------------------------------------------------------------------ UnservableDashboard


def test_unservable_dashboard_drops_the_link_only_when_it_cannot_be_served():
    servable = [False]
    keep = UnservableDashboard(lambda: servable[0]).filter
    link = _record(f"{DASHBOARD_MESSAGE} at http://127.0.0.1:1/status", name=DASK_RUNNER_LOGGER)
    other = _record("Connecting to an existing Dask cluster", name=DASK_RUNNER_LOGGER)
    assert not keep(link) and keep(other)
    servable[0] = True
    assert keep(link) and keep(other)
    logger = logging.getLogger(DASK_RUNNER_LOGGER)
    assert sum(isinstance(f, UnservableDashboard) for f in logger.filters) == 1  # flows.cluster


def test_pinned_prefect_dask_still_has_what_unservable_dashboard_matches():
    assert f'f"{DASHBOARD_MESSAGE} at {{self._client.dashboard_link}}"' in inspect.getsource(
        dask_runners
    ), "UnservableDashboard: prefect-dask's dashboard message changed"
    assert DaskTaskRunner().logger.name == DASK_RUNNER_LOGGER, (
        "UnservableDashboard: prefect-dask's task runner logger moved"
    )


# ----------------------------------------------------------------------------- QuietCancelled


def test_quiet_cancelled_drops_only_the_cancelled_end_and_the_server_stop():
    keep = QuietCancelled().filter
    assert not keep(
        _record(f"Finished in state {Cancelled(message='cancelled; x')}", name=FLOW_RUNS_LOGGER)
    )
    assert not keep(_record("Stopping temporary server on http://127.0.0.1:8123", name="prefect"))
    assert keep(_record(f"Finished in state {Completed()}", name=FLOW_RUNS_LOGGER))
    assert keep(_record("Starting temporary server on http://127.0.0.1:8123", name="prefect"))


def test_pinned_prefect_still_has_what_quiet_cancelled_matches():
    assert 'msg=f"Finished in state {display_state}"' in inspect.getsource(flow_engine), (
        "QuietCancelled: the flow engine's end-of-run message changed"
    )
    assert str(Cancelled()).startswith(CANCELLED_MESSAGE.removeprefix("Finished in state ")), (
        "QuietCancelled: a Cancelled state's text changed"
    )
    assert f'"{FLOW_RUNS_LOGGER}"' in inspect.getsource(prefect_loggers.flow_run_logger), (
        "QuietCancelled: flow-run logs moved off prefect.flow_runs"
    )
    assert f'f"{STOPPING_SERVER_MESSAGE} on {{self.address}}"' in inspect.getsource(
        server_module.SubprocessASGIServer.stop
    ), "QuietCancelled: the ephemeral server's stop message changed"
    # a logger's filters see only the records logged on it: run_preprocess filters "prefect"
    assert server_module.subprocess_server_logger.name == "prefect", (
        "QuietCancelled: the ephemeral server no longer logs on the prefect logger"
    )


# ------------------------------------------------------------------- HeartbeatOfClosingWorker


def _raised(error: BaseException, cause: BaseException | None = None):
    try:
        raise error from cause
    except BaseException as raised:  # noqa: BLE001
        return (type(raised), raised, raised.__traceback__)


def test_heartbeat_of_closing_worker_drops_only_closed_comms():
    CommClosedError = comm_core.CommClosedError
    keep = HeartbeatOfClosingWorker().filter
    message = f"{HEARTBEAT_FAILED_MESSAGE}."

    def record(exc_info) -> logging.LogRecord:
        return logging.LogRecord(WORKER_LOGGER, logging.ERROR, __file__, 1, message, None, exc_info)

    assert not keep(record(_raised(CommClosedError("ConnectionPool closing."))))
    assert not keep(record(_raised(OSError("x"), CommClosedError("Stream is closed"))))  # cause
    assert keep(record(_raised(ConnectionRefusedError(111, "refused"))))
    assert keep(record(None))
    install_worker_log_filters()
    install_worker_log_filters()
    logger = logging.getLogger(WORKER_LOGGER)
    assert sum(isinstance(f, HeartbeatOfClosingWorker) for f in logger.filters) == 1


def test_pinned_distributed_still_has_what_heartbeat_of_closing_worker_matches():
    assert f'logger.exception("{HEARTBEAT_FAILED_MESSAGE}.")' in inspect.getsource(dask_worker), (
        "HeartbeatOfClosingWorker: the worker's heartbeat failure message changed"
    )
    assert dask_worker.logger.name == WORKER_LOGGER, (
        "HeartbeatOfClosingWorker: the worker's logger moved"
    )
    assert isinstance(getattr(comm_core, "CommClosedError", None), type), (
        "HeartbeatOfClosingWorker: distributed.comm.core.CommClosedError is gone"
    )
