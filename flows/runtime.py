"""The Prefect API a run talks to: the one named by PREFECT_API_URL, or a private ephemeral one.

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
from collections.abc import Iterator


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
