"""flows.compat: each piece that leans on Prefect's internals does what it says, and the pinned
version still has what it leans on (an upgrade that changes it fails here, naming the piece)."""

from __future__ import annotations

import inspect
import logging

import prefect._internal.concurrency.services as services
import prefect.events.utilities as event_utilities
import prefect.flow_engine as flow_engine

from flows.compat import (EVENTS_LOGGER, HEARTBEAT_EVENT, STOPPED_SERVICE, HeartbeatAfterShutdown,
                          install_log_filters)


def _record(message: str, error: BaseException | None) -> logging.LogRecord:
    exc_info = (type(error), error, None) if error else None
    return logging.LogRecord(EVENTS_LOGGER, logging.ERROR, __file__, 1, message, None, exc_info)


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
        event_utilities.emit_event), "HeartbeatAfterShutdown: emit_event's message changed"
    assert STOPPED_SERVICE in inspect.getsource(services), \
        "HeartbeatAfterShutdown: the stopped-service error changed"
    assert HEARTBEAT_EVENT in inspect.getsource(flow_engine), \
        "HeartbeatAfterShutdown: the heartbeat event's name changed"
