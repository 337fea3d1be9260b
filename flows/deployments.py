"""Deployments ``preprocess/<dataset>`` built from the project configuration, and serving them.

``mer-prep serve`` calls ``serve_config``: one ``RunnerDeployment`` per configured dataset (flow
``preprocess``, deployment name = the dataset), default parameters and cron schedule from the
config, all served by one long-lived process (``prefect.serve``) against the server named by
``PREFECT_API_URL``. Each run is a subprocess of that process; the flow then starts its own Dask
task runner from its ``n_workers`` / ``dask_address`` parameters.

Entrypoints are module paths (``flows.preprocess.preprocess``), so runs do not depend on the
directory ``serve`` was started from.

Anyone who can reach the Prefect API can start a deployment with parameters of their own
(``-p dask_address=tcp://their-scheduler``: the run would unpickle what that scheduler sends).
A served run therefore first checks its parameters against the configuration ``serve`` hands
it in ``$MER_PREP_CONFIG`` (``check_served_run``) and fails before any connection or file
access when the file does not allow them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from mer_prep.config import CONFIG_ENV, Config, load_config
from mer_prep.errors import ServeError


def build_deployments(config: Config) -> list:
    """The ``RunnerDeployment`` of every enabled dataset (and extra recipe) in ``config``."""
    from prefect.schedules import Cron
    from prefect.types.entrypoint import EntrypointType

    from flows.preprocess import preprocess

    deployments = []
    for spec in config.deployments():
        schedules = [Cron(spec.cron, timezone=spec.timezone)] if spec.cron else None
        deployments.append(preprocess.to_deployment(
            name=spec.name, parameters=spec.parameters, schedules=schedules,
            paused=spec.paused, tags=["mer-prep", spec.dataset],
            description=f"Preprocess {spec.dataset} with {spec.parameters['recipe']} "
                        f"(configured in {config.path}); a scheduled run recomputes only "
                        f"samples whose inputs changed.",
            entrypoint_type=EntrypointType.MODULE_PATH))
    return deployments


def check_served_run(parameters: Mapping[str, Any], *, flow: str = "preprocess") -> None:
    """Refuse a deployment run of ``flow`` whose parameters the configuration (``$MER_PREP_CONFIG``,
    set by ``serve_config``, else ``./mer-prep.toml``) does not allow: ``ConfigError`` naming the
    parameter and the file, also when there is no file (fails closed). Read at every run, so an
    edited file applies to the next run."""
    load_config().check_run(parameters, flow=flow)


def serve_config(path: str | os.PathLike | None = None, *, limit: int | None = None) -> None:
    """Register and serve the configured deployments until interrupted."""
    config = load_config(path)
    if not os.environ.get("PREFECT_API_URL"):
        raise ServeError("PREFECT_API_URL is not set: `mer-prep serve` needs a running Prefect "
                         "server (`prefect server start`), e.g. "
                         "PREFECT_API_URL=http://127.0.0.1:4200/api")
    os.environ[CONFIG_ENV] = str(config.path)  # runs (subprocesses) see the same file
    deployments = build_deployments(config)
    if not deployments:
        raise ServeError(f"{config.path}: no enabled datasets to serve")
    from prefect import serve

    serve(*deployments, limit=limit)
