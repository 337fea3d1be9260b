"""The local workers' preload: a heartbeat failure on a connection closed under the worker
(its pool closing, the scheduler's stream closed: a cancelled run) is not printed, so the run
stops with one line; any other heartbeat failure still is. A real scheduler and worker in this
process."""

from __future__ import annotations

import asyncio
import logging

from distributed import Scheduler, Worker
from distributed.comm.core import CommClosedError

from flows.worker_setup import dask_setup

MESSAGE = "Failed to communicate with scheduler during heartbeat."


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(
            f"{record.getMessage()} {record.exc_info[1]!r}"
            if record.exc_info
            else record.getMessage()
        )


def _raised(error: BaseException, cause: BaseException | None = None):
    """``exc_info`` of ``error`` raised (from ``cause``), as a worker's ``logger.exception``
    has it."""
    try:
        raise error from cause
    except BaseException as raised:  # noqa: BLE001
        return (type(raised), raised, raised.__traceback__)


def test_only_heartbeat_failures_on_closed_comms_are_dropped():
    logger = logging.getLogger("distributed.worker")
    records = Records()
    logger.addHandler(records)

    async def scenario() -> None:
        async with Scheduler(host="127.0.0.1", dashboard_address=None) as scheduler:
            async with Worker(scheduler.address, host="127.0.0.1", nthreads=1) as worker:
                dask_setup(worker)
                dask_setup(worker)  # a second preload in one process adds no second filter
                # what distributed logs when the pool closes under a connecting heartbeat
                logger.error(
                    MESSAGE,
                    exc_info=_raised(CommClosedError("ConnectionPool closing."), TimeoutError()),
                )
                logger.error(
                    MESSAGE,
                    exc_info=_raised(  # the scheduler's side closed first
                        CommClosedError(
                            "in <TLS (closed) ConnectionPool.heartbeat_worker>: Stream is closed"
                        ),
                        OSError("Stream is closed"),
                    ),
                )
                logger.error(MESSAGE, exc_info=_raised(ConnectionRefusedError(111, "refused")))
                logger.error("Compute Failed")

    try:
        asyncio.run(scenario())
    finally:
        logger.removeHandler(records)
    ours = [m for m in records.messages if m.startswith((MESSAGE, "Compute Failed"))]
    assert ours == [f"{MESSAGE} ConnectionRefusedError(111, 'refused')", "Compute Failed"]
    assert sum(type(f).__name__ == "HeartbeatOfClosingWorker" for f in logger.filters) == 1
