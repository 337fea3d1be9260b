"""Preload of the workers of a local Dask cluster (``distributed.worker.preload``).

A local cluster's worker processes share the terminal's process group with ``mer-prep run``, so
Ctrl-C reaches them too: a worker would die with a traceback in the middle of its batch and its
nanny would start another, while the run itself is shutting down. They ignore SIGINT instead;
the run stops them itself (``flows.preprocess``), and they still exit at once when their
parent dies (distributed watches the parent's pipe).

A worker that is being closed while its heartbeat is in flight logs "Failed to communicate
with scheduler during heartbeat" with a 50-line traceback (its own connection pool is closing):
expected then, and a cancelled run must stop with one line, so that record is dropped while
the worker closes. The same failure of a running worker is still logged.
"""

from __future__ import annotations

import logging
import signal
import threading

from distributed.core import Status

_CLOSING = {Status.closing, Status.closing_gracefully, Status.closed}


class HeartbeatWhileClosing(logging.Filter):
    """Drops the heartbeat failure of ``worker`` once it is closing."""

    def __init__(self, worker) -> None:
        super().__init__()
        self.worker = worker

    def filter(self, record: logging.LogRecord) -> bool:
        return not (self.worker.status in _CLOSING and str(record.msg).startswith(
            "Failed to communicate with scheduler during heartbeat"))


def dask_setup(worker) -> None:
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.getLogger("distributed.worker").addFilter(HeartbeatWhileClosing(worker))
