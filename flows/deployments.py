"""Deployments built from the project configuration, and serving them.

``mer-prep serve`` calls ``serve_config``: ``preprocess/<dataset>`` per configured dataset (and
``preprocess/<dataset>-<recipe>`` per further recipe), ``train/<dataset>-<model>`` per
configured training and ``spot/<dataset>`` per long-video dataset, with the config's values as
default parameters and their cron schedules, all served by one long-lived process against the
server named by ``PREFECT_API_URL``. A training configured for a store (``on_commit``) also gets
a deployment trigger: every version a preprocessing run commits to that store starts it on that
version (``flows.events``).

A training of a learned spotter (``softnet``, ``mtsn`` on a long-video dataset:
``mer_prep.config.spot_trainings``) is a ``train/<name>`` deployment of the ``spot`` flow's
code under the flow name ``train`` (Prefect names a deployment ``<flow>/<name>``): one trigger
and one cron schedule per seed, each passing its ``seed``, so every seed is its own run.

Runs start in under a second (before: 3-10 s from the run's creation to its start, a fresh
interpreter importing Prefect and the pipeline after Prefect's 10-s poll, then a local Dask
cluster started and stopped in every run; ``bench/orchestration.py``):

- the runner polls for due runs every ``POLL_SECONDS`` instead of Prefect's 10 s;
- each run is still a process of its own (a crash or a cancel kills the run, never ``serve``),
  but forked from a warm server process that has imported the flows (``multiprocessing``'s
  forkserver with preloaded modules) instead of a fresh interpreter importing everything;
- runs use the standing local Dask cluster ``serve`` keeps (``flows.cluster``), or the
  configured ``dask_address``, instead of starting and stopping a cluster each.

Entrypoints are module paths (``flows.preprocess.preprocess``, ``flows.train.train``), so runs
do not depend on the directory ``serve`` was started from.

Anyone who can reach the Prefect API can start a deployment with parameters of their own
(``-p dask_address=tcp://their-scheduler``: the run would unpickle what that scheduler sends).
A served run therefore first checks its parameters against the configuration ``serve`` hands
it in ``$MER_PREP_CONFIG`` (``flows.served.check_served_run``) and fails before any connection
or file access when the file does not allow them.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

# the served-run check lives in flows.served (the flows import it, and this module imports the
# flows); named here too for the callers that know it from here
from flows.served import REFUSED_EVENT, check_served_run, refused_run  # noqa: F401
from mer_prep.config import CONFIG_ENV, Config, SpotTrainingDeployment, load_config, task_resources
from mer_prep.errors import ServeError

#: Seconds between the runner's queries for due runs (Prefect's default: 10; 0.5 s cost a run
#: 0.2 s more on average than 0.2 s, measured in bench/orchestration.py).
POLL_SECONDS = 0.2
#: What the warm process that forks each run has imported: the flows and what a run imports on
#: its way (measured with ``python -X importtime``: 1.0 s of every run's start before);
#: ``mer_prep.models`` brings PyTorch where it is installed (a training run's configuration is
#: checked against the model registry). Missing modules are skipped.
PRELOAD = [
    "flows.preprocess",
    "flows.train",
    "flows.spot",
    "mer_prep.plot.runs",
    "mer_prep.plot.artifact",
    "mer_prep.pipeline.report",
    "mer_prep.pipeline.long_sequence",
    "mer_prep.store.reader",
    "mer_prep.models",
    "prefect.runtime.flow_run",
    "prefect.flow_engine",
    "prefect.utilities.visualization",
    "prefect._internal.observers",
    "fastapi.encoders",
    "openpyxl",
]


def preload_modules() -> list[str]:
    """``PRELOAD`` and every dataset adapter (imported by name when a run scans)."""
    import pkgutil

    import mer_prep.datasets

    adapters = [
        f"mer_prep.datasets.{m.name}" for m in pkgutil.iter_modules(mer_prep.datasets.__path__)
    ]
    return [*PRELOAD, *adapters]


def deployment_specs(config: Config) -> list[tuple[Any, dict[str, Any]]]:
    """(flow, keyword arguments of ``to_deployment`` / ``Runner.add_flow``) per configured
    dataset, recipe, training and long-video dataset to spot."""
    from prefect.schedules import Cron
    from prefect.types.entrypoint import EntrypointType

    from flows.events import retrain_trigger
    from flows.preprocess import preprocess
    from flows.spot import spot
    from flows.train import train

    def entry(flow, spec, tags: list[str], description: str, on_commit: bool = False):
        """One deployment: the spec's name, parameters, schedule and pause; ``on_commit``:
        also run on every version committed to the spec's store."""
        trigger = retrain_trigger(spec.store, spec.name, flow=spec.flow) if on_commit else None
        return (
            flow,
            dict(
                name=spec.name,
                parameters=spec.parameters,
                schedules=[Cron(spec.cron, timezone=spec.timezone)] if spec.cron else None,
                paused=spec.paused,
                triggers=None if trigger is None else [trigger],
                tags=["mer-prep", *tags, spec.dataset],
                description=f"{description} (configured in {config.path})"
                + (
                    "; runs on every version a preprocessing run commits there."
                    if on_commit
                    else "."
                ),
                entrypoint_type=EntrypointType.MODULE_PATH,
            ),
        )

    specs = [
        entry(
            preprocess,
            spec,
            [],
            f"Preprocess {spec.dataset} with {spec.parameters['recipe']}; a scheduled run "
            f"recomputes only samples whose inputs changed",
        )
        for spec in config.deployments()
    ]
    for spec in config.training_deployments():
        p = spec.parameters
        about = f"Train {p['model']} on {spec.store} ({p['split']}, {p['device']})"
        specs.append(entry(train, spec, ["train"], about, spec.on_commit))
    for spec in config.spot_deployments():
        about = (
            f"Spot {spec.store}'s long videos with {spec.parameters['method']}, tuned per "
            f"LOSO fold on training subjects"
        )
        specs.append(entry(spot, spec, ["spot"], about, on_commit=True))
    trained_spot = spot.with_options(name="train")  # deployed as train/<name>
    for spot_training in config.spot_training_deployments():
        specs.append(_per_seed(entry, trained_spot, spot_training))
    return specs


def _per_seed(entry: Any, flow: Any, spec: SpotTrainingDeployment) -> tuple[Any, dict[str, Any]]:
    """A learned spotter's ``train/<name>`` deployment (``entry``'s) with one cron schedule and
    one trigger per seed, each passing its ``seed``: the ``spot`` flow runs one seed a run."""
    from prefect.schedules import Cron

    p = spec.parameters
    about = (
        f"Train {p['method']} (preset {p['preset'] or 'its own'}, seeds "
        f"{', '.join(map(str, spec.seeds))}) per LOSO fold on the training subjects of "
        f"{spec.store} and spot the test subject's long videos"
        + (" (tuned on the test subject: LEAKY)" if p["tune_on_test"] else "")
    )
    flow, kwargs = entry(flow, spec, ["train", "spot"], about, spec.on_commit)
    if spec.cron:
        kwargs["schedules"] = [
            Cron(spec.cron, timezone=spec.timezone, parameters={"seed": seed})
            for seed in spec.seeds
        ]
    if kwargs["triggers"]:
        from flows.events import COMMITTED

        (trigger,) = kwargs["triggers"]
        kwargs["triggers"] = [
            trigger.model_copy(
                update={
                    "name": f"train/{spec.name} seed {seed} on each new version of {spec.store}",
                    "description": f"{COMMITTED} of this store starts train/{spec.name} with "
                    f"seed {seed} on that version",
                    "parameters": {**trigger.parameters, "seed": seed},
                }
            )
            for seed in spec.seeds
        ]
    return flow, kwargs


def build_deployments(config: Config) -> list:
    """The ``RunnerDeployment`` of every enabled dataset (and extra recipe) and training."""
    return [flow.to_deployment(**kwargs) for flow, kwargs in deployment_specs(config)]


def standing_cluster_size(config: Config) -> tuple[int, dict[str, float]]:
    """(workers, resources per worker) of the standing cluster: the largest ``n_workers`` of the
    deployments that run on a local cluster (0: none does), and the resources their fold tasks
    need."""
    workers, resources = 0, dict[str, float]()
    for spec in [*config.deployments(), *config.training_deployments()]:
        p = spec.parameters
        if p.get("dask_address") is None and p.get("cluster") is None:
            workers = max(workers, int(p["n_workers"]))
            if spec.flow == "train":
                for name, need in (task_resources(p["resources"], p["device"]) or {}).items():
                    resources[name] = max(resources.get(name, 0), need)
    return workers, resources


def serve_config(
    path: str | os.PathLike | None = None,
    *,
    limit: int | None = None,
    standing: bool = True,
    announce=print,
) -> None:
    """Register and serve the configured deployments until interrupted (see the module
    docstring); ``standing=False``: each run starts its own local cluster."""
    config = load_config(path)
    if not os.environ.get("PREFECT_API_URL"):
        raise ServeError(
            "PREFECT_API_URL is not set: `mer-prep serve` needs a running Prefect "
            "server (`prefect server start`), e.g. "
            "PREFECT_API_URL=http://127.0.0.1:4200/api"
        )
    os.environ[CONFIG_ENV] = str(config.path)  # runs (subprocesses) see the same file
    specs = deployment_specs(config)
    if not specs:
        raise ServeError(f"{config.path}: no enabled datasets or trainings to serve")
    from flows.cluster import StandingCluster
    from flows.compat import fork_runs_from_warm_process

    workers, resources = standing_cluster_size(config)
    cluster = None
    if standing and workers:
        home = Path(os.environ.get("PREFECT_HOME") or Path.home() / ".prefect")
        cluster = StandingCluster(workers, home, resources).start()
        link = cluster.dashboard()
        announce(
            f"standing Dask cluster: {workers} workers at {cluster.address}"
            + (f", dashboard {link}" if link else "")
        )
    try:
        fork_runs_from_warm_process(preload_modules())
        _serve(specs, limit)
    finally:
        if cluster is not None:
            cluster.close()


def _serve(specs: list[tuple[Any, dict[str, Any]]], limit: int | None) -> None:
    from prefect.exceptions import TerminationSignal
    from prefect.runner import Runner

    runner = Runner(
        name=f"mer-prep-serve-{os.getpid()}",
        query_seconds=POLL_SECONDS,
        limit=limit,
        pause_on_shutdown=True,
    )
    for flow, kwargs in specs:
        runner.add_flow(flow, **kwargs)  # the flow object: runs start from it directly
    try:
        asyncio.run(runner.start())
    except (KeyboardInterrupt, TerminationSignal):
        pass
