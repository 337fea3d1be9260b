"""The GPU worker image (docker/trainer.Dockerfile) and its compose service stay in step with
pyproject.toml, the flows' worker environment and docker/mer-prep.toml's trainings, without a
Docker engine (the parsing helpers are tests/test_docker.py's)."""

from __future__ import annotations

import re

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from test_docker import (
    DOCKER,
    PYPROJECT,
    TRAINER,
    WORKER,
    args_of,
    command_of,
    compose,
    effective_env,
    env_of,
    pip_installs,
    requirement_args,
    service_dockerfile,
    service_env,
)

from flows.preprocess import WORKER_ENVIRONMENT


def test_trainer_is_a_gpu_dask_worker_with_the_train_extra():
    installs = [requirement_args(a) for a in pip_installs(TRAINER)]
    assert ".[train]" in [r for args in installs for r in args]
    extra = [Requirement(r) for r in PYPROJECT["project"]["optional-dependencies"]["train"]]
    torch_pin = next(r for r in extra if canonicalize_name(r.name) == "torch")
    pinned = [r for args in installs for r in args if r.startswith("torch")]
    assert pinned == [f"torch{torch_pin.specifier}"], pinned
    # the CUDA build is a build argument, used by the torch install (and passed by compose)
    assert any(rest.startswith("TORCH_INDEX_URL=") for rest in args_of(TRAINER, "ARG"))
    assert any(
        "${TORCH_INDEX_URL}" in rest and "torch==" in rest for rest in args_of(TRAINER, "RUN")
    )
    assert not args_of(TRAINER, "ENTRYPOINT")
    cmd = command_of({}, TRAINER)
    assert re.search(r"\bdask worker\b", cmd) and "$DASK_SCHEDULER_ADDRESS" in cmd
    assert "--nthreads 1" in cmd and re.search(r"--resources GPU=1\b", cmd), cmd
    env = env_of(TRAINER)
    for key, value in WORKER_ENVIRONMENT.items():
        assert env.get(key) == value, f"trainer.Dockerfile: {key}={env.get(key)!r}"
    assert env.get("DASK_SCHEDULER_ADDRESS") == env_of(WORKER)["DASK_SCHEDULER_ADDRESS"]


def test_compose_trainer_is_a_gpu_worker_of_the_cluster_under_the_train_profile():
    services = compose()["services"]
    trainer = services["trainer"]
    assert service_dockerfile("trainer", trainer, services) == TRAINER
    devices = trainer["deploy"]["resources"]["reservations"]["devices"]
    assert any(d.get("driver") == "nvidia" and "gpu" in d.get("capabilities", []) for d in devices)
    assert trainer.get("profiles") == ["train"]
    assert "dask-scheduler" in trainer.get("depends_on", {})
    assert "--resources GPU=1" in command_of(trainer, TRAINER)
    env = effective_env("trainer", trainer, services)
    scheduler = service_env(services["dask-worker"])["DASK_SCHEDULER_ADDRESS"]
    assert env["DASK_SCHEDULER_ADDRESS"] == scheduler
    for key, value in WORKER_ENVIRONMENT.items():
        assert service_env(trainer).get(key) == value, f"trainer {key}: flow says {value!r}"
    args = trainer["build"].get("args", {})
    declared = {rest.split("=")[0] for rest in args_of(TRAINER, "ARG")}
    assert set(args) <= declared and "TORCH_INDEX_URL" in args, (args, declared)


def test_compose_trainings_run_their_folds_on_the_gpu_worker():
    """docker/mer-prep.toml's trainings: on the compose scheduler, stores under /stores, and
    fold tasks that ask only for resources the trainer service's workers have."""
    from mer_prep.config import load_config, task_resources

    services = compose()["services"]
    config = load_config(DOCKER / "mer-prep.toml")
    trainings = config.training_deployments()
    assert trainings, "docker/mer-prep.toml configures no training"
    offered = dict(re.findall(r"--resources (\w+)=(\d+)", command_of(services["trainer"], TRAINER)))
    address = service_env(services["dask-worker"])["DASK_SCHEDULER_ADDRESS"]
    for spec in trainings:
        p = spec.parameters
        assert p["dask_address"] == address, spec.name
        assert spec.store.startswith("/stores/") and spec.on_commit, spec.name
        for name, need in (task_resources(p["resources"], p["device"]) or {}).items():
            assert float(offered.get(name, 0)) >= need, (spec.name, name, offered)
