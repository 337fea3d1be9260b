"""The local workers' preload: a worker being closed does not print the heartbeat failure that
its own closing connection pool causes (a cancelled run stops with one line), and a running
worker still reports it. A real scheduler and worker in this process."""

from __future__ import annotations

import asyncio
import logging

from distributed import Scheduler, Worker

from flows.worker_setup import dask_setup

MESSAGE = "Failed to communicate with scheduler during heartbeat."


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_a_closing_worker_drops_only_its_heartbeat_failure():
    logger = logging.getLogger("distributed.worker")
    records = Records()
    logger.addHandler(records)
    filters = list(logger.filters)

    async def scenario() -> None:
        async with Scheduler(host="127.0.0.1", dashboard_address=None) as scheduler:
            worker = Worker(scheduler.address, host="127.0.0.1", nthreads=1)
            await worker
            dask_setup(worker)
            logger.error(MESSAGE)  # a running worker: a real failure, reported
            await worker.close()
            logger.error(MESSAGE)  # closed: expected, dropped
            logger.error("Compute Failed")  # anything else still reported

    try:
        asyncio.run(scenario())
    finally:
        logger.removeHandler(records)
        logger.filters[:] = filters
    assert [m for m in records.messages if m in (MESSAGE, "Compute Failed")] == [
        MESSAGE, "Compute Failed"]
