"""The check every served deployment run makes first: its parameters against the configuration
``mer-prep serve`` hands it (``$MER_PREP_CONFIG``), refused in one line before any connection
or file access.

Anyone who can reach the Prefect API can start a deployment with parameters of their own
(``-p dask_address=tcp://their-scheduler``: the run would unpickle what that scheduler sends),
so ``flows.preprocess``, ``flows.train`` and ``flows.spot`` call :func:`refused_run` before
anything else (``spot`` also for a learned spotter's ``train/<name>``: the same code deployed
under the flow name ``train``, checked against ``RUN_RULES["spot"]``). It lives apart from
``flows.deployments`` (which imports the flows to deploy them), so that no import circle joins
the flows and their deployments.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from mer_prep.config import load_config
from mer_prep.errors import ConfigError

#: The event a refused run emits on itself: ``--watch`` prints a run's events (name and
#: resource name), so the reason shows there as ``mer-prep.run.refused * refused: ...``.
REFUSED_EVENT = "mer-prep.run.refused"


def check_served_run(parameters: Mapping[str, Any], *, flow: str = "preprocess") -> None:
    """Refuse a deployment run of ``flow`` whose parameters the configuration (``$MER_PREP_CONFIG``,
    set by ``serve_config``, else ``./mer-prep.toml``) does not allow: ``ConfigError`` naming the
    parameter and the file, also when there is no file (fails closed). Read at every run, so an
    edited file applies to the next run."""
    load_config().check_run(parameters, flow=flow)


def refused_run(parameters: Mapping[str, Any], *, flow: str = "preprocess"):
    """None when ``check_served_run`` allows ``parameters``; otherwise a ``Failed`` state whose
    message is the one-line reason (the parameter, the value and the file), also logged as one
    error line. A flow returns it: the run ends Failed with that message (the UI, ``prefect
    flow-run inspect`` and the API show it) instead of a traceback in ``serve``'s log; Prefect
    3.8's ``deployment run --watch`` prints a run's events but not its state message, so the
    run also emits ``REFUSED_EVENT`` named with the reason."""
    from prefect.exceptions import MissingContextError
    from prefect.logging import get_run_logger
    from prefect.states import Failed

    try:
        check_served_run(parameters, flow=flow)
    except ConfigError as error:
        reason = " ".join(str(error).split())  # one line, whatever the message holds
        try:
            logger = get_run_logger()
        except MissingContextError:  # called outside a flow run (tests, a plain call)
            logger = logging.getLogger("flows.served")
        logger.error("refused: %s", reason)
        _announce_refusal(reason)
        return Failed(message=f"refused: {reason}")
    return None


def _announce_refusal(reason: str) -> None:
    """Emit ``REFUSED_EVENT`` on the current flow run, named with the reason, and send it before
    the run ends (at most 5 s; never fatal: the state message carries the reason too)."""
    try:
        from prefect.events import emit_event
        from prefect.runtime import flow_run

        from flows.compat import drain_events

        if not flow_run.id:
            return
        emit_event(
            event=REFUSED_EVENT,
            resource={
                "prefect.resource.id": f"prefect.flow-run.{flow_run.id}",
                "prefect.resource.name": f"refused: {reason}",
            },
        )
        drain_events(timeout=5)  # flows.compat: Prefect's private drain_all
    except Exception:  # noqa: BLE001
        pass
