"""Preload of the workers of a local Dask cluster (``distributed.worker.preload``).

A local cluster's worker processes share the terminal's process group with ``mer-prep run``, so
Ctrl-C reaches them too: a worker would die with a traceback in the middle of its batch and its
nanny would start another, while the run itself is shutting down. They ignore SIGINT instead;
the run stops them itself (``flows.preprocess``), and they still exit at once when their
parent dies (distributed watches the parent's pipe).

A worker that is closed while its heartbeat is connecting logs "Failed to communicate with
scheduler during heartbeat" with a 50-line traceback ending in ``CommClosedError:
ConnectionPool closing``: its own connection pool is closing, which is expected then, and a
cancelled run must stop with one line. That record is dropped; a heartbeat that fails for any
other reason is still logged.
"""

from __future__ import annotations

import logging
import signal
import threading

from distributed.comm.core import CommClosedError


def _pool_closing(error: BaseException | None) -> bool:
    """Whether ``error`` (or an exception it was raised from) is the closing connection pool's."""
    seen = 0
    while error is not None and seen < 10:
        if isinstance(error, CommClosedError) and "ConnectionPool closing" in str(error):
            return True
        error, seen = error.__cause__ or error.__context__, seen + 1
    return False


class HeartbeatOfClosingWorker(logging.Filter):
    """Drops the heartbeat failure a worker's own closing connection pool causes."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (str(record.msg).startswith("Failed to communicate with scheduler during "
                                               "heartbeat")
                    and record.exc_info is not None and _pool_closing(record.exc_info[1]))


def dask_setup(worker) -> None:  # noqa: ARG001 - the preload protocol passes the worker
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    logger = logging.getLogger("distributed.worker")
    if not any(isinstance(f, HeartbeatOfClosingWorker) for f in logger.filters):
        logger.addFilter(HeartbeatOfClosingWorker())
