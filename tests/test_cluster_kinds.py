"""`[clusters.*]` of mer-prep.toml: the SLURM job script dask-jobqueue generates and the
DaskCluster spec the dask-kubernetes operator gets, for given configs (no sbatch, no Kubernetes
cluster: the real libraries build them), the refusals of bad values, and how a configured
cluster reaches a run's parameters and its policy."""

from __future__ import annotations

import re

import pytest

from flows.cluster import WORKER_ENVIRONMENT
from flows.cluster_kinds import kubernetes_spec, slurm_cluster, task_runner
from mer_prep.config import load_config
from mer_prep.config.clusters import cluster_spec
from mer_prep.errors import ConfigError

SLURM = """
[clusters.gpu]
kind = "slurm"
jobs = 3
queue = "gpu"
account = "lab"
cores = 8
memory = "64GiB"
walltime = "04:00:00"
gpus = 2
job_extra = ["--constraint=a100"]
env_setup = ["module load cuda/12.4"]
python = "/shared/venv/bin/python"
shared_temp_directory = "{tmp}"
"""

K8S = """
[clusters.k8s]
kind = "kubernetes"
image = "registry.example/mer-prep:0.1.0"
namespace = "mer"
workers = 4
cpu = "8"
memory = "32Gi"
gpus = 1
node_selector = { "nvidia.com/gpu.product" = "A100" }
"""


def _config(tmp_path, clusters: str, dataset_extra: str = 'cluster = "gpu"'):
    (tmp_path / "CASME2").mkdir(exist_ok=True)
    path = tmp_path / "mer-prep.toml"
    path.write_text(
        f'[datasets.casme2]\nroot = "{tmp_path / "CASME2"}"\n{dataset_extra}\n'
        + clusters.replace("{tmp}", str(tmp_path))
    )
    return load_config(path)


def test_the_slurm_job_script_asks_for_the_gpus_and_gives_the_worker_the_gpu_resource(tmp_path):
    config = _config(tmp_path, SLURM)
    spec = cluster_spec(config.preprocess_request("casme2").cluster)
    cluster = slurm_cluster(spec, WORKER_ENVIRONMENT, submit=False)  # nothing submitted
    try:
        script = cluster.job_script()
        address = cluster.scheduler_address
    finally:
        cluster.close()
    lines = script.splitlines()
    for directive in (
        "#SBATCH -p gpu",
        "#SBATCH -A lab",
        "#SBATCH --cpus-per-task=8",
        "#SBATCH --mem=64G",
        "#SBATCH -t 04:00:00",
        "#SBATCH --gres=gpu:2",
        "#SBATCH --constraint=a100",
        "#SBATCH -J mer-prep-worker",
    ):
        assert directive in lines, (directive, script)
    worker = next(line for line in lines if "distributed.cli.dask_worker" in line)
    assert worker.startswith("/shared/venv/bin/python -m distributed.cli.dask_worker")
    assert "--resources GPU=2" in worker and "--nthreads 8" in worker
    assert "--memory-limit 64.00GiB" in worker
    # TLS with throwaway credentials; the scheduler on loopback unless told otherwise
    assert address.startswith("tls://127.0.0.1:") and f" {address} " in worker
    assert "--tls-ca-file" in worker and f"--tls-key {tmp_path}/" in worker
    (key,) = tmp_path.glob(".dask-jobqueue.worker.key.*")  # the workers' copy, this user's only
    assert key.stat().st_mode & 0o077 == 0
    # the environment is set up before the worker starts
    assert lines.index("module load cuda/12.4") < lines.index(worker)
    assert "export OMP_NUM_THREADS=1" in lines
    assert "export MALLOC_TRIM_THRESHOLD_=268435456" in lines


def test_a_slurm_cluster_without_gpus_and_on_a_named_interface(tmp_path):
    clusters = '[clusters.cpu]\nkind = "slurm"\nmemory = "8GiB"\ntls = false\ninterface = "lo"\n'
    config = _config(tmp_path, clusters, 'cluster = "cpu"')
    spec = cluster_spec(config.preprocess_request("casme2").cluster)
    cluster = slurm_cluster(spec, {}, submit=False)
    try:
        script, address = cluster.job_script(), cluster.scheduler_address
    finally:
        cluster.close()
    assert "--gres" not in script and "--resources" not in script
    assert "#SBATCH -t 01:00:00" in script and "#SBATCH --cpus-per-task=1" in script
    assert address.startswith("tcp://127.0.0.1:") and "--interface lo" in script


def test_the_kubernetes_spec_limits_gpus_on_workers_only(tmp_path):
    config = _config(tmp_path, K8S, 'cluster = "k8s"')
    spec = cluster_spec(config.preprocess_request("casme2").cluster)
    body = kubernetes_spec(spec, WORKER_ENVIRONMENT, "mer-prep-test")
    assert body["kind"] == "DaskCluster" and body["metadata"]["name"] == "mer-prep-test"
    worker = body["spec"]["worker"]
    assert worker["replicas"] == 4
    assert worker["spec"]["nodeSelector"] == {"nvidia.com/gpu.product": "A100"}
    (container,) = worker["spec"]["containers"]
    assert container["image"] == "registry.example/mer-prep:0.1.0"
    assert container["resources"]["limits"] == {"cpu": "8", "memory": "32Gi", "nvidia.com/gpu": 1}
    args = " ".join(container["args"])
    assert args.startswith("dask worker") and "--resources GPU=1" in args
    assert "--nthreads 1" in args and f"--memory-limit {32 * 2**30}" in args
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["OMP_NUM_THREADS"] == "1"
    scheduler = body["spec"]["scheduler"]
    (sched,) = scheduler["spec"]["containers"]
    assert "nvidia.com/gpu" not in str(sched.get("resources"))
    assert scheduler["service"]["type"] == "ClusterIP"  # reachable inside the cluster only


def test_the_run_gets_the_configured_cluster_and_its_policy_holds_it(tmp_path):
    config = _config(tmp_path, SLURM + K8S)
    (deployment,) = config.deployments()
    assert deployment.parameters["cluster"]["kind"] == "slurm"
    assert deployment.parameters["dask_address"] is None
    config.check_run(deployment.parameters)
    other = cluster_spec({"kind": "slurm", "memory": "1GiB"}).model_dump(mode="json")
    for value in (None, other, {**deployment.parameters["cluster"], "queue": "debug"}):
        with pytest.raises(ConfigError, match=r"run parameter cluster=.* is not allowed"):
            config.check_run({**deployment.parameters, "cluster": value})
    runner = task_runner(deployment.parameters["cluster"], WORKER_ENVIRONMENT)
    assert runner.cluster_kwargs["spec"] == deployment.parameters["cluster"]  # nothing started


def test_a_training_takes_the_datasets_cluster_or_its_own(tmp_path):
    trainings = (
        '[trainings.a]\ndataset = "casme2"\nmodel = "mbcc"\n'
        '[trainings.b]\ndataset = "casme2"\nmodel = "mbcc"\nname = "b"\ncluster = "k8s"\n'
    )
    config = _config(tmp_path, SLURM + K8S + trainings)
    kinds = {d.name: d.parameters["cluster"]["kind"] for d in config.training_deployments()}
    assert kinds == {"casme2-mbcc": "slurm", "b": "kubernetes"}


@pytest.mark.parametrize(
    "clusters,extra,message",
    [
        (SLURM.replace('memory = "64GiB"', 'memory = "lots"'), "", r"clusters\.gpu\.slurm\.memory"),
        (SLURM.replace('"04:00:00"', '"4 hours"'), "", r"clusters\.gpu\.slurm\.walltime"),
        (SLURM.replace("gpus = 2", "gpus = -1"), "", r"clusters\.gpu\.slurm\.gpus"),
        (SLURM.replace('"--constraint=a100"', '"--gres=gpu:4"'), "", r"gpus = N"),
        (SLURM.replace("cores = 8", "cores = 8\nqeue = 'x'"), "", r"clusters\.gpu\.slurm\.qeue"),
        (SLURM.replace('kind = "slurm"', 'kind = "pbs"'), "", r"clusters\.gpu"),
        (K8S.replace('"32Gi"', '"32 GB"'), 'cluster = "k8s"', r"clusters\.k8s\..*memory"),
        (K8S.replace('namespace = "mer"', 'namespace = "Mer_"'), "", r"clusters\.k8s\."),
        (K8S.replace('image = "registry.example/mer-prep:0.1.0"\n', ""), "", r"image"),
        (SLURM, 'cluster = "nosuch"', r"datasets\.casme2\.cluster: 'nosuch' is not"),
        (SLURM, 'cluster = "gpu"\ndask_address = "tcp://x:8786"', r"not both"),
    ],
)
def test_a_bad_cluster_is_refused_in_one_line_naming_file_and_key(
    tmp_path, clusters, extra, message
):
    with pytest.raises(ConfigError) as refused:
        _config(tmp_path, clusters, extra)
    text = str(refused.value)
    assert text.startswith(str(tmp_path / "mer-prep.toml")) and "\n" not in text
    assert re.search(message, text), text


FAKE_SBATCH = """#!/bin/bash
# stands in for SLURM: runs (a copy of) the job script here, in a session of its own
script=$(mktemp "{log}.XXXX.sh") && cp "$1" "$script"
setsid bash "$script" > "{log}" 2>&1 < /dev/null &
echo "Submitted batch job $!"
"""
FAKE_SCANCEL = """#!/bin/bash
for job in "$@"; do kill -- -"$job" 2>/dev/null; echo "$job" >> "{cancelled}"; done
exit 0
"""


def _fake_slurm(tmp_path, monkeypatch) -> None:
    """``sbatch`` and ``scancel`` stand-ins on PATH (``FAKE_SBATCH``, ``FAKE_SCANCEL``)."""
    import os

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in {
        "sbatch": FAKE_SBATCH.format(log=tmp_path / "job.log"),
        "scancel": FAKE_SCANCEL.format(cancelled=tmp_path / "cancelled"),
    }.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")


@pytest.mark.slow
def test_a_preprocessing_run_creates_its_slurm_cluster_and_cancels_the_jobs_at_its_end(
    tmp_path, monkeypatch, prefect_server, synth_dataset
):
    """The whole flow with ``cluster``: prefect-dask creates the SLURM cluster (two jobs, each
    a worker from the generated script), the batches run on those workers, the version is
    committed, and the run's end cancels both jobs."""
    from flows.preprocess import run_preprocess
    from mer_prep.store import open_store

    _fake_slurm(tmp_path, monkeypatch)
    root, written = synth_dataset(
        "casme2", n_subjects=2, clips_per_subject=2, seed=5, size=(240, 320), n_frames=12
    )
    spec = {"kind": "slurm", "jobs": 2, "memory": "2GiB", "shared_temp_directory": str(tmp_path)}
    summary = run_preprocess(
        "casme2", root, "mbcc64", str(tmp_path / "store"), n_workers=2, cluster=spec
    )
    assert summary.n_ok == len(written) and summary.n_failed == 0, summary
    assert open_store(tmp_path / "store").version_id == summary.version_id
    assert len((tmp_path / "cancelled").read_text().split()) == 2  # both jobs, at the run's end


@pytest.mark.slow
def test_the_generated_job_starts_a_gpu_worker_that_the_cluster_cancels_on_close(
    tmp_path, monkeypatch
):
    """The job script as SLURM would run it (a stand-in ``sbatch`` runs it on this machine):
    its worker reaches the loopback TLS scheduler with the GPU resource, runs a task that asks
    for a GPU, and closing the cluster cancels the job (``scancel``)."""
    import os

    from distributed import Client

    from flows.cluster_kinds import start_cluster

    _fake_slurm(tmp_path, monkeypatch)
    spec = {
        "kind": "slurm",
        "jobs": 1,
        "cores": 1,
        "memory": "2GiB",
        "gpus": 2,
        "shared_temp_directory": str(tmp_path),
        "env_setup": ["export MER_PREP_JOB_MARK=1"],
    }
    cluster = start_cluster(spec, WORKER_ENVIRONMENT)
    try:
        with Client(cluster) as client:
            client.wait_for_workers(1, timeout=60)
            (worker,) = client.scheduler_info()["workers"].values()
            assert worker["resources"] == {"GPU": 2}
            marks = client.submit(
                lambda: (os.environ.get("MER_PREP_JOB_MARK"), os.environ["OMP_NUM_THREADS"]),
                resources={"GPU": 1},
            ).result(timeout=60)
            assert marks == ("1", "1")
    finally:
        cluster.close()
    assert (tmp_path / "cancelled").read_text().split()  # the job was cancelled
