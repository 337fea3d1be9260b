"""Dask clusters a run creates and closes itself: ``[clusters.<name>]`` of ``mer-prep.toml``,
named by ``cluster = "<name>"`` in ``[defaults]``, a ``[datasets.*]`` or a ``[trainings.*]``
table (instead of ``dask_address``). Two kinds (docs/clusters.md)::

    [clusters.gpu]
    kind = "slurm"                 # dask-jobqueue's SLURMCluster: one worker per job
    jobs = 4                       # SLURM jobs submitted when the run starts
    queue = "gpu"                  # -p
    account = "lab"                # -A
    cores = 8                      # --cpus-per-task; the worker's threads
    memory = "64GiB"               # --mem; the worker's memory limit
    walltime = "04:00:00"          # -t
    gpus = 2                       # --gres=gpu:2 and the worker's Dask resource GPU=2
    job_extra = ["--constraint=a100"]
    env_setup = ["module load cuda/12.4", "source /shared/mer-prep/.venv/bin/activate"]
    interface = "ib0"              # where the scheduler listens (default: loopback only)

    [clusters.k8s]
    kind = "kubernetes"            # dask-kubernetes' operator: a DaskCluster resource
    image = "registry.example/mer-prep:0.1.0"
    namespace = "mer"
    workers = 4
    cpu = "8"
    memory = "32Gi"
    gpus = 1                       # limits nvidia.com/gpu: 1 and Dask resource GPU=1

Only plain data lives here (checked when the file loads, without importing either library);
``flows.cluster_kinds`` turns a spec into the cluster.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator, model_validator

WALLTIME = re.compile(r"^(\d+-)?\d{1,3}(:\d{2}){0,2}$")
K8S_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
K8S_QUANTITY = re.compile(r"^\d+(\.\d+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _bytes(value: str) -> str:
    from dask.utils import parse_bytes

    try:
        parse_bytes(value)
    except (ValueError, TypeError):
        raise ValueError(f"not an amount of memory: {value!r} (e.g. '16GiB')") from None
    return value


def _env(value: dict[str, str]) -> dict[str, str]:
    bad = [name for name in value if not ENV_NAME.match(name)]
    if bad:
        raise ValueError(f"not environment variable names: {bad}")
    return value


class _Kind(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    gpus: int = Field(0, ge=0, description="GPUs per worker: the Dask resource GPU=gpus")
    env: dict[str, str] = Field(default_factory=dict)

    @field_validator("env")
    @classmethod
    def _env_names(cls, value: dict[str, str]) -> dict[str, str]:
        return _env(value)

    def resources(self) -> dict[str, int]:
        """The Dask resources each worker advertises (``GPU`` when it has GPUs)."""
        return {"GPU": self.gpus} if self.gpus else {}


class SlurmSpec(_Kind):
    """A SLURM cluster (dask-jobqueue): ``jobs`` jobs, each one worker process of ``cores``
    threads with ``memory``, for ``walltime``; the scheduler runs in the run's process."""

    kind: Literal["slurm"]
    jobs: int = Field(1, ge=1)
    queue: str | None = None
    account: str | None = None
    cores: int = Field(1, ge=1)
    memory: str
    walltime: str = "01:00:00"
    gpu_type: str | None = Field(None, pattern=r"^[A-Za-z0-9_.-]+$")
    job_name: str = Field("mer-prep-worker", pattern=r"^[A-Za-z0-9_.-]+$")
    job_extra: list[str] = Field(default_factory=list)
    env_setup: list[str] = Field(default_factory=list)
    python: str | None = None
    interface: str | None = None
    scheduler_host: str | None = None
    dashboard_address: str = "127.0.0.1:0"
    tls: bool = True
    shared_temp_directory: str = "~"
    local_directory: str | None = None
    log_directory: str | None = None

    @field_validator("memory")
    @classmethod
    def _memory(cls, value: str) -> str:
        return _bytes(value)

    @field_validator("walltime")
    @classmethod
    def _walltime(cls, value: str) -> str:
        if not WALLTIME.match(value):
            raise ValueError(f"not a SLURM time limit: {value!r} (e.g. '04:00:00', '1-12:00:00')")
        return value

    @field_validator("job_extra")
    @classmethod
    def _directives(cls, value: list[str]) -> list[str]:
        for line in value:
            if not line.startswith("-") or "\n" in line:
                raise ValueError(f"not an sbatch option: {line!r} (e.g. '--constraint=a100')")
            if line.startswith("--gres"):
                raise ValueError(f"{line!r}: give GPUs as gpus = N (and gpu_type)")
        return value

    @field_validator("env_setup")
    @classmethod
    def _lines(cls, value: list[str]) -> list[str]:
        if any("\n" in line for line in value):
            raise ValueError("one shell command per entry, without line breaks")
        return value

    @model_validator(mode="after")
    def _one_place(self) -> SlurmSpec:
        if self.interface and self.scheduler_host:
            raise ValueError("give interface or scheduler_host, not both")
        return self

    def gres(self) -> str | None:
        """``--gres=gpu[:type]:N``, or None without GPUs."""
        if not self.gpus:
            return None
        return f"--gres=gpu:{self.gpu_type + ':' if self.gpu_type else ''}{self.gpus}"


class KubernetesSpec(_Kind):
    """A DaskCluster of the dask-kubernetes operator: a scheduler pod and ``workers`` worker
    pods of ``image``, each with ``cpu``/``memory`` and ``gpus`` (``nvidia.com/gpu``)."""

    kind: Literal["kubernetes"]
    image: str = Field(min_length=1)
    namespace: str | None = None
    workers: int = Field(1, ge=1)
    threads: int = Field(1, ge=1)
    cpu: str | None = None
    memory: str | None = None
    scheduler_cpu: str | None = None
    scheduler_memory: str | None = None
    node_selector: dict[str, str] = Field(default_factory=dict)
    scheduler_service_type: Literal["ClusterIP", "NodePort", "LoadBalancer"] = "ClusterIP"
    resource_timeout: int = Field(300, ge=1)

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str | None) -> str | None:
        if value is not None and not K8S_NAME.match(value):
            raise ValueError(f"not a Kubernetes namespace: {value!r}")
        return value

    @field_validator("cpu", "memory", "scheduler_cpu", "scheduler_memory")
    @classmethod
    def _quantity(cls, value: str | None) -> str | None:
        if value is not None and not K8S_QUANTITY.match(value):
            raise ValueError(f"not a Kubernetes quantity: {value!r} (e.g. '4', '500m', '16Gi')")
        return value


ClusterSpec = Annotated[SlurmSpec | KubernetesSpec, Field(discriminator="kind")]
_ADAPTER: TypeAdapter[SlurmSpec | KubernetesSpec] = TypeAdapter(ClusterSpec)


def cluster_spec(value: Any) -> SlurmSpec | KubernetesSpec:
    """A spec from its JSON form (a run's ``cluster`` parameter); pydantic's error if bad."""
    if isinstance(value, SlurmSpec | KubernetesSpec):
        return value
    return _ADAPTER.validate_python(value)


def cluster_json(spec: SlurmSpec | KubernetesSpec | None) -> dict[str, Any] | None:
    """The JSON form a run's parameters carry (None: none)."""
    return None if spec is None else spec.model_dump(mode="json")
