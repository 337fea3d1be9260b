"""Preload of the workers of a local Dask cluster (``distributed.worker.preload``).

A local cluster's worker processes share the terminal's process group with ``mer-prep run``, so
Ctrl-C reaches them too: a worker would die with a traceback in the middle of its batch and its
nanny would start another, while the run itself is shutting down. They ignore SIGINT instead;
the run stops them itself (``flows.preprocess``), and they still exit at once when their
parent dies (distributed watches the parent's pipe).

A worker of a run's own local cluster (or of ``serve``'s standing one) whose heartbeat finds
its connection closed under it logs "Failed to communicate with scheduler during heartbeat"
with a 50-line traceback ending in ``CommClosedError`` (the pool closing while it connects, or
"Stream is closed": the scheduler, which lives in the run's or ``serve``'s process, is shutting
down). That is what a cancelled run looks like from its workers, and it must stop with one
line, so that record is dropped. A heartbeat that fails otherwise (a refused connection, a
timeout) is still logged. Workers started with ``dask worker`` elsewhere do not load this.
"""

from __future__ import annotations

import logging
import signal
import threading

from distributed.comm.core import CommClosedError


def _comm_closed(error: BaseException | None) -> bool:
    """Whether ``error`` (or an exception it was raised from) is a closed comm's."""
    seen = 0
    while error is not None and seen < 10:
        if isinstance(error, CommClosedError):
            return True
        error, seen = error.__cause__ or error.__context__, seen + 1
    return False


class HeartbeatOfClosingWorker(logging.Filter):
    """Drops the heartbeat failure of a worker whose connection was closed under it."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (str(record.msg).startswith("Failed to communicate with scheduler during "
                                               "heartbeat")
                    and record.exc_info is not None and _comm_closed(record.exc_info[1]))


def dask_setup(worker) -> None:  # noqa: ARG001 - the preload protocol passes the worker
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    logger = logging.getLogger("distributed.worker")
    if not any(isinstance(f, HeartbeatOfClosingWorker) for f in logger.filters):
        logger.addFilter(HeartbeatOfClosingWorker())
