"""The Dask clusters a run creates from a ``[clusters.<name>]`` spec (``mer_prep.config.clusters``)
and closes when it ends: SLURM jobs (dask-jobqueue) or a DaskCluster of the dask-kubernetes
operator. docs/clusters.md says how to set each up.

``task_runner(spec, environment)`` is a ``DaskTaskRunner`` whose ``cluster_class`` is
``start_cluster``: prefect-dask calls it when the run starts and closes the cluster it returns
(cancelling the SLURM jobs, deleting the DaskCluster) when the run ends, whatever its outcome.

Nothing listens beyond loopback unless the spec says so: a SLURM scheduler (in the run's
process) binds 127.0.0.1 unless ``interface`` or ``scheduler_host`` is set, its dashboard
127.0.0.1 unless ``dashboard_address`` is, and talks TLS with throwaway credentials (the
workers' copies in ``shared_temp_directory``, 0600, removed with the cluster); a Kubernetes
scheduler is a ``ClusterIP`` service (inside the cluster only) reached through a port-forward
on 127.0.0.1 unless ``scheduler_service_type`` says otherwise.
"""

from __future__ import annotations

import shlex
import sys
import uuid
from collections.abc import Mapping
from typing import Any

from mer_prep.config.clusters import KubernetesSpec, SlurmSpec, cluster_spec


def slurm_kwargs(spec: SlurmSpec, environment: Mapping[str, str]) -> dict[str, Any]:
    """``SLURMCluster`` arguments for ``spec``; ``environment`` is exported before the worker
    starts (after ``env_setup``)."""
    exports = [f"export {k}={shlex.quote(str(v))}" for k, v in {**environment, **spec.env}.items()]
    scheduler: dict[str, Any] = {"dashboard_address": spec.dashboard_address}
    if spec.scheduler_host:
        scheduler["host"] = spec.scheduler_host
    elif not spec.interface:
        scheduler["host"] = "127.0.0.1"
    worker_args = ["--resources", f"GPU={spec.gpus}"] if spec.gpus else []
    kwargs: dict[str, Any] = {
        "queue": spec.queue,
        "account": spec.account,
        "cores": spec.cores,
        "processes": 1,
        "memory": spec.memory,
        "walltime": spec.walltime,
        "job_name": spec.job_name,
        "job_extra_directives": [*([spec.gres()] if spec.gres() else []), *spec.job_extra],
        "job_script_prologue": [*spec.env_setup, *exports],
        "worker_extra_args": worker_args,
        "python": spec.python or sys.executable,
        "interface": spec.interface,
        "scheduler_options": scheduler,
        "shared_temp_directory": spec.shared_temp_directory,
        "local_directory": spec.local_directory,
        "log_directory": spec.log_directory,
    }
    if spec.tls:
        kwargs["security"] = True
    return kwargs


def slurm_cluster(spec: SlurmSpec, environment: Mapping[str, str], *, submit: bool = True):
    """A started ``SLURMCluster`` (its scheduler is up); ``submit``: ask for ``spec.jobs`` jobs
    now (``sbatch``). Without it nothing is submitted (``job_script()`` still shows the job)."""
    from dask_jobqueue import SLURMCluster

    cluster = SLURMCluster(**slurm_kwargs(spec, environment))
    if submit:
        cluster.scale(jobs=spec.jobs)
    return cluster


def kubernetes_spec(
    spec: KubernetesSpec, environment: Mapping[str, str], name: str
) -> dict[str, Any]:
    """The DaskCluster resource for ``spec`` (dask-kubernetes' ``make_cluster_spec``, then the
    worker's threads, GPU resource, limits and node selector; the scheduler gets no GPU)."""
    from dask_kubernetes.operator import make_cluster_spec

    limits: dict[str, Any] = {}
    if spec.cpu:
        limits["cpu"] = spec.cpu
    if spec.memory:
        limits["memory"] = spec.memory
    if spec.gpus:
        limits["nvidia.com/gpu"] = spec.gpus
    body = make_cluster_spec(
        name=name,
        image=spec.image,
        n_workers=spec.workers,
        resources={"limits": limits, "requests": dict(limits)} if limits else None,
        env={**environment, **spec.env},
        worker_command="dask worker",
        scheduler_service_type=spec.scheduler_service_type,
    )
    worker = body["spec"]["worker"]["spec"]
    container = worker["containers"][0]
    container["args"] += ["--nthreads", str(spec.threads)]
    if spec.gpus:
        container["args"] += ["--resources", f"GPU={spec.gpus}"]
    if spec.memory:
        container["args"] += ["--memory-limit", _k8s_bytes(spec.memory)]
    if spec.node_selector:
        worker["nodeSelector"] = dict(spec.node_selector)
    scheduler = body["spec"]["scheduler"]["spec"]["containers"][0]
    scheduler_limits = {
        k: v
        for k, v in {"cpu": spec.scheduler_cpu, "memory": spec.scheduler_memory}.items()
        if v is not None
    }
    scheduler.pop("resources", None)
    if scheduler_limits:
        scheduler["resources"] = {"limits": scheduler_limits, "requests": dict(scheduler_limits)}
    return body


def _k8s_bytes(quantity: str) -> str:
    """A Kubernetes memory quantity as bytes for ``dask worker --memory-limit``."""
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 10**3, "M": 10**6}
    units |= {"G": 10**9, "T": 10**12}
    for unit in sorted(units, key=len, reverse=True):
        if quantity.endswith(unit):
            return str(int(float(quantity[: -len(unit)]) * units[unit]))
    return str(int(float(quantity)))


def kubernetes_cluster(spec: KubernetesSpec, environment: Mapping[str, str]):
    """A ``KubeCluster`` created from ``kubernetes_spec`` (needs a kube config and the operator);
    deleted when closed."""
    from dask_kubernetes.operator import KubeCluster

    name = f"mer-prep-{uuid.uuid4().hex[:8]}"
    return KubeCluster(
        custom_cluster_spec=kubernetes_spec(spec, environment, name),
        namespace=spec.namespace,
        resource_timeout=spec.resource_timeout,
        shutdown_on_close=True,
        quiet=True,
    )


def start_cluster(spec: Mapping[str, Any], environment: Mapping[str, str]):
    """The cluster of ``spec`` (its JSON form), started: prefect-dask's ``cluster_class``."""
    parsed = cluster_spec(dict(spec))
    if isinstance(parsed, SlurmSpec):
        return slurm_cluster(parsed, environment)
    return kubernetes_cluster(parsed, environment)


def task_runner(spec: Mapping[str, Any], environment: Mapping[str, str]):
    """A ``DaskTaskRunner`` that creates the cluster of ``spec`` for the run and closes it."""
    from prefect_dask import DaskTaskRunner

    return DaskTaskRunner(
        cluster_class=start_cluster,
        cluster_kwargs={"spec": dict(spec), "environment": dict(environment)},
    )
