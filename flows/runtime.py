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
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from pathlib import Path

# Always the same for every Prefect process of this project: no telemetry, quiet Dask.
_FIXED = {"DO_NOT_TRACK": "1", "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
          "DASK_DISTRIBUTED__LOGGING__DISTRIBUTED": "warning"}


def prefect_environment(home: str | os.PathLike, *, logging_level: str = "INFO") -> None:
    """Point this process's Prefect at ``home`` and switch off telemetry (values already set in
    the environment win), before Prefect is imported."""
    for key, value in {**_FIXED, "PREFECT_HOME": str(Path(home).resolve()),
                       "PREFECT_LOGGING_LEVEL": logging_level,
                       # The first start migrates a fresh SQLite database, which takes longer
                       # than Prefect's 20 s default on a loaded 2-core machine.
                       "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120"}.items():
        os.environ.setdefault(key, value)
    Path(os.environ["PREFECT_HOME"]).mkdir(parents=True, exist_ok=True)


def isolated_environment(home: str | os.PathLike, *, logging_level: str = "INFO",
                         base: Mapping[str, str] | None = None) -> dict[str, str]:
    """An environment for a child Prefect process (a server, ``mer-prep serve``) with its own
    ``home``: this process's variables without any ``PREFECT_*`` of its own."""
    env = {k: v for k, v in (os.environ if base is None else base).items()
           if not k.startswith("PREFECT_")}
    env.update({**_FIXED, "PREFECT_HOME": str(Path(home).resolve()),
                "PREFECT_LOGGING_LEVEL": logging_level, "PREFECT_SERVER_UI_ENABLED": "false"})
    return env


@contextlib.contextmanager
def prefect_api() -> Iterator[str]:
    """Yield the API URL to use; start (and afterwards stop) an ephemeral server if none is set."""
    url = os.environ.get("PREFECT_API_URL")
    if url:
        yield url
        return
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    server = SubprocessASGIServer()
    server.start()
    os.environ["PREFECT_API_URL"] = server.api_url
    try:
        with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
            yield server.api_url
    finally:
        # Ship queued logs and events while the server still listens; otherwise Prefect's
        # workers retry against a closed port for a minute at interpreter exit.
        from prefect.events.worker import EventsWorker
        from prefect.logging.handlers import APILogWorker

        APILogWorker.drain_all(timeout=10)
        EventsWorker.drain_all(timeout=10)
        os.environ.pop("PREFECT_API_URL", None)
        server.stop()
