"""Prefect's environment, and the API a run talks to: the one named by PREFECT_API_URL, or a
private ephemeral one.

``prefect_environment`` is the one place that fixes PREFECT_HOME and switches telemetry off; the
CLI, the tests and the benches call it (or ``isolated_environment`` for a child process) before
anything imports Prefect.

Prefect's own ephemeral mode lives in the flow's process only: every Dask worker process that
runs a task then starts *another* ephemeral server of its own (~20 s each). Starting the server
here and exporting its URL before the cluster is spawned lets workers inherit it.

Flow-run heartbeats are switched off against that private server: it dies with the run, so no
one can ever act on them, and Prefect joins its heartbeat thread at the end of every flow run,
which sleeps in whole seconds (0.5 s of latency per run on average, measured).

The private server is a child that never outlives its run, and that Ctrl-C does not reach
(``flows.compat.private_server``: Prefect has no option for either):

- it runs in a session of its own, so the terminal's SIGINT (sent to the whole foreground
  process group) leaves it serving while the run cancels, ships its last logs and events and
  marks itself Cancelled; before, it died first and Prefect's workers retried against the
  closed port for over a minute;
- on Linux it gets SIGKILL when the process that started it dies, whatever killed that process
  (``prctl(PR_SET_PDEATHSIG)``, set between fork and exec): no orphaned ~200 MB server after
  kill -9, the OOM killer or a lost terminal. The setting follows the starting *thread*, so it
  is only made when the server is started from the main thread.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from flows.compat import drain_api_workers, private_server

# Always the same for every Prefect process of this project: no telemetry, quiet Dask.
_FIXED = {
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    # errors only: on Ctrl-C every worker logs a WARNING per cancelled task, and the run
    # must stop with one line
    "DASK_DISTRIBUTED__LOGGING__DISTRIBUTED": "error",
}


def prefect_environment(home: str | os.PathLike, *, logging_level: str = "INFO") -> None:
    """Point this process's Prefect at ``home`` and switch off telemetry (values already set in
    the environment win), before Prefect is imported."""
    for key, value in {
        **_FIXED,
        "PREFECT_HOME": str(Path(home).resolve()),
        "PREFECT_LOGGING_LEVEL": logging_level,
        # The first start migrates a fresh SQLite database, which takes longer
        # than Prefect's 20 s default on a loaded 2-core machine.
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    }.items():
        os.environ.setdefault(key, value)
    private_dir(os.environ["PREFECT_HOME"])


def private_dir(path: str | os.PathLike) -> Path:
    """``path`` made a folder only its user may enter (0700) when it does not exist yet: a
    Prefect home's ``prefect.db`` holds run parameters and logs, which name licensed data."""
    folder = Path(path)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return folder


def isolated_environment(
    home: str | os.PathLike, *, logging_level: str = "INFO", base: Mapping[str, str] | None = None
) -> dict[str, str]:
    """An environment for a child Prefect process (a server, ``mer-prep serve``) with its own
    ``home``: this process's variables without any ``PREFECT_*`` of its own."""
    private_dir(home)
    env = {
        k: v
        for k, v in (os.environ if base is None else base).items()
        if not k.startswith("PREFECT_")
    }
    env.update(
        {
            **_FIXED,
            "PREFECT_HOME": str(Path(home).resolve()),
            "PREFECT_LOGGING_LEVEL": logging_level,
            "PREFECT_SERVER_UI_ENABLED": "false",
        }
    )
    return env


@contextlib.contextmanager
def prefect_api() -> Iterator[str]:
    """Yield the API URL to use; start (and afterwards stop) an ephemeral server if none is set."""
    url = os.environ.get("PREFECT_API_URL")
    if url:
        yield url
        return
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    server = private_server(die_with_parent())
    try:
        server.start()
        os.environ["PREFECT_API_URL"] = server.api_url
        with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
            yield server.api_url
    finally:
        if os.environ.pop("PREFECT_API_URL", None) is not None:
            # Ship queued logs and events while the server still listens; otherwise Prefect's
            # workers retry against a closed port for a minute at interpreter exit.
            drain_api_workers(timeout=10)
        server.stop()


_PR_SET_PDEATHSIG = 1


def die_with_parent(signum: int = signal.SIGKILL) -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child get ``signum`` when this process dies (Linux
    ``prctl(PR_SET_PDEATHSIG)``), or None where that is not available or not safe (another OS,
    a thread other than the main one, whose exit would fire it)."""
    if (
        not sys.platform.startswith("linux")
        or threading.current_thread() is not threading.main_thread()
    ):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved here, not in the child
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signum), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the setting took hold
            os._exit(1)

    return preexec


def retry_unless(*final: type[BaseException]) -> Callable[..., bool]:
    """A Prefect ``retry_condition_fn``: a task that failed with one of ``final`` is not
    retried; any other failure (a lost worker, ...) is left to the task's retry policy."""

    def condition(task, task_run, state) -> bool:  # noqa: ARG001 - Prefect's signature
        try:
            state.result(raise_on_failure=True)
        except final:
            return False
        except BaseException:  # noqa: BLE001 - anything else: the retry policy decides
            return True
        return True

    return condition


def worker_task(name: str, *, final: type[BaseException], **options: Any) -> Any:
    """Prefect's ``task`` decorator as the flows' worker tasks use it: never cached, retried
    once unless it failed with ``final`` (:func:`retry_unless`); ``options`` go to ``task``.
    Prefect is imported here, when a flow module defines its tasks, not with this module."""
    from prefect import task
    from prefect.cache_policies import NONE

    return task(
        name=name,
        cache_policy=NONE,
        retries=1,
        retry_condition_fn=retry_unless(final),
        **options,
    )


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """SIGTERM raises ``KeyboardInterrupt`` like Ctrl-C for the duration (main thread only), so
    that ``kill``, ``docker stop`` or systemd cancel a run as cleanly as Ctrl-C does. (Inside a
    flow run Prefect's own SIGTERM handler raises ``TerminationSignal``, which the flow takes
    the same way.)"""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame) -> None:  # noqa: ARG001
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def without_heartbeats() -> Iterator[None]:
    """Flow runs started in the block send no heartbeats: the subflow a served run re-enters
    itself as (its parent run's heartbeats already say the process lives). Prefect joins a
    run's heartbeat thread when the run ends, and that thread sleeps in whole seconds: 0.5 s
    per flow run on average (measured)."""
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        yield
