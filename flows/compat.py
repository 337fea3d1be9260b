"""Everything that leans on Prefect's or Dask's behaviour beyond their public API, in one place.

Each piece here matches a pinned version's internals (a message's text, a private attribute) and
has a test in ``tests/test_compat.py`` that fails, naming the piece, when an upgrade changes
what it leans on.

- ``HeartbeatAfterShutdown``: Prefect's flow engine sends the first flow-run heartbeat from a
  daemon thread as the run starts. A served run refused in its first second (a deployment
  parameter the config does not allow) ends, and the process's events worker stops, while that
  thread may still be emitting: Prefect then logs "Error emitting event:
  prefect.flow-run.heartbeat" with a traceback ending in "Cannot put items in a stopped service
  instance". The heartbeat is moot (the run has ended), so that one record is dropped; every
  other failure to emit an event is still logged.
"""

from __future__ import annotations

import logging

HEARTBEAT_EVENT = "prefect.flow-run.heartbeat"
STOPPED_SERVICE = "Cannot put items in a stopped service instance"
EVENTS_LOGGER = "prefect.events.utilities"


class HeartbeatAfterShutdown(logging.Filter):
    """Drops Prefect's error for a flow-run heartbeat emitted after the events worker stopped."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not (str(record.msg).startswith("Error emitting event")
                    and HEARTBEAT_EVENT in record.getMessage()
                    and isinstance(error, RuntimeError) and STOPPED_SERVICE in str(error))


def install_log_filters() -> None:
    """Install this module's log filters once per process (idempotent)."""
    logger = logging.getLogger(EVENTS_LOGGER)
    if not any(isinstance(f, HeartbeatAfterShutdown) for f in logger.filters):
        logger.addFilter(HeartbeatAfterShutdown())
