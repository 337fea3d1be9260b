"""The Dask clusters the flows run on: an existing scheduler by address, the standing cluster of
``mer-prep serve``, or a local cluster started for one run.

A local cluster is closed to other local users: scheduler, workers and dashboard listen on
127.0.0.1 only, and every connection is TLS with throwaway credentials made for that cluster
(``security=True``: ``Security.temporary()``), so no other process can submit tasks to it or
feed it pickles.

**The standing cluster.** ``mer-prep serve`` starts one such cluster when it serves deployments
whose runs use a local cluster (no ``dask_address``), and keeps it for all their runs: a run
then connects to warm workers (imports done, dlib models and PyTorch loaded) instead of starting
a cluster of its own (~2.5 s to start, ~1.5 s to close, and the first task's imports, measured).
Its TLS credentials are written to files only the user can read (0600, in a 0700 directory
under ``PREFECT_HOME``), named by ``$MER_PREP_STANDING_DASK`` for the run processes, and removed
when ``serve`` stops. A run's ``n_workers`` still cuts its work (one batch or fold group per
worker); the cluster has as many workers as the largest ``n_workers`` served.

The dashboard binds to 127.0.0.1; it is announced only when it can be served (``bokeh``
installed): without ``bokeh`` the scheduler's HTTP port serves health and metrics, not pages.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path

import dask

from flows import cluster_kinds
from flows.compat import install_dashboard_filter

#: Names the JSON file of the standing cluster (address and TLS files) for run processes.
STANDING_ENV = "MER_PREP_STANDING_DASK"

# Set before a worker process starts. Dask's default MALLOC_TRIM_THRESHOLD_ of 64 KiB also
# freezes glibc's mmap threshold at 128 KiB, so every decoded 640x480 frame is a fresh mmap with
# page faults: decoding and numpy ran 25-40 % slower in workers than in a plain process
# (measured). Fixed, larger thresholds keep frame-sized buffers on the heap.
# Dask's statistical profiler samples every worker thread's stack every 10 ms for the
# dashboard's profile page; on these CPU-bound batches it took ~10 % of a worker (measured).
WORKER_ENVIRONMENT = {
    "MALLOC_TRIM_THRESHOLD_": str(256 * 2**20),
    "MALLOC_MMAP_THRESHOLD_": str(32 * 2**20),
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED": "False",
}


def configure_local_workers() -> None:
    """Make local Dask nannies start workers with ``WORKER_ENVIRONMENT`` (a nanny hands its
    own Dask config to the worker, so the profiler switch is set there too), ignoring the
    terminal's SIGINT (``flows.worker_setup``: the run stops them itself, at once)."""
    dask.config.set(
        {
            "distributed.nanny.pre-spawn-environ": WORKER_ENVIRONMENT,
            "distributed.worker.profile.enabled": False,
            "distributed.worker.preload": ["flows.worker_setup"],
        }
    )


def local_cluster_kwargs(n_workers: int, resources: dict[str, float] | None = None) -> dict:
    """``LocalCluster`` arguments: single-threaded worker processes on loopback over TLS, each
    with ``resources`` (e.g. ``{"GPU": 1}`` for the fold tasks of a CUDA run)."""
    kwargs = {
        "n_workers": n_workers,
        "threads_per_worker": 1,
        "processes": True,
        "host": "127.0.0.1",
        "dashboard_address": "127.0.0.1:0",
        "security": True,
    }
    if resources:
        kwargs["resources"] = dict(resources)
    return kwargs


def dask_task_runner(
    dask_address: str | None,
    n_workers: int,
    resources: dict[str, float] | None = None,
    cluster: dict | None = None,
):
    """A ``DaskTaskRunner``: on ``dask_address``; else on the standing cluster of ``mer-prep
    serve`` (when this process is one of its runs and the cluster has the ``resources``); else
    on a local cluster of ``n_workers`` made for this run; on the SLURM or Kubernetes cluster
    ``cluster`` (a ``[clusters.*]`` spec) created for the run (``flows.cluster_kinds``). Warns
    when this process holds a default Dask client of another scheduler (prefect-dask would take
    that one over)."""
    from prefect_dask import DaskTaskRunner

    if cluster is not None:
        return cluster_kinds.task_runner(cluster, WORKER_ENVIRONMENT)
    standing = None if dask_address else standing_cluster()
    if standing is not None and not standing.has(resources):
        standing = None
    target = dask_address or (standing.address if standing else None)
    current = default_client_address()
    if current is not None and current != target:
        wanted = target or f"a new local cluster of {n_workers} workers"
        warnings.warn(
            f"this process has a default Dask client (scheduler {current}); "
            f"prefect-dask will run the tasks on its cluster, not on {wanted}",
            RuntimeWarning,
            stacklevel=3,
        )
    if dask_address:
        return DaskTaskRunner(address=dask_address)
    if standing is not None:
        return DaskTaskRunner(
            address=standing.address, client_kwargs={"security": standing.security()}
        )
    configure_local_workers()
    return DaskTaskRunner(cluster_kwargs=local_cluster_kwargs(n_workers, resources))


def default_client_address() -> str | None:
    """Scheduler address of this process's default Dask client, if it has one."""
    from distributed import Client

    try:
        return Client.current().scheduler.address
    except ValueError:
        return None


class StandingInfo:
    """What a run process knows of the standing cluster: address, TLS files, worker resources."""

    def __init__(self, data: dict) -> None:
        self.address: str = data["address"]
        self.files: dict[str, str] = data["tls"]
        self.resources: dict[str, float] = data.get("resources") or {}

    def has(self, resources: dict[str, float] | None) -> bool:
        return all(self.resources.get(name, 0) >= need for name, need in (resources or {}).items())

    def security(self):
        from distributed.security import Security

        return Security(
            require_encryption=True,
            tls_ca_file=self.files["ca"],
            tls_client_cert=self.files["cert"],
            tls_client_key=self.files["key"],
        )


def standing_cluster() -> StandingInfo | None:
    """The standing cluster named by ``$MER_PREP_STANDING_DASK``, or None."""
    path = os.environ.get(STANDING_ENV)
    if not path:
        return None
    try:
        return StandingInfo(json.loads(Path(path).read_text()))
    except (OSError, ValueError, KeyError):
        return None


class StandingCluster:
    """The local cluster ``mer-prep serve`` keeps for its runs (see the module docstring)."""

    def __init__(
        self, n_workers: int, home: str | os.PathLike, resources: dict[str, float] | None = None
    ) -> None:
        self.n_workers, self.home, self.resources = n_workers, Path(home), resources or {}
        self.cluster = None
        self.directory: Path | None = None

    def start(self) -> StandingCluster:
        from distributed import LocalCluster

        configure_local_workers()
        self.cluster = LocalCluster(**local_cluster_kwargs(self.n_workers, self.resources))
        self.home.mkdir(parents=True, exist_ok=True)
        remove_dead_credentials(self.home)
        self.directory = Path(
            tempfile.mkdtemp(prefix=f"standing-dask-{os.getpid()}-", dir=self.home)
        )  # 0700
        security = self.cluster.security
        files = {
            "ca": security.tls_ca_file,
            "cert": security.tls_client_cert,
            "key": security.tls_client_key,
        }
        written = {
            name: str(_private_file(self.directory / f"{name}.pem", pem))
            for name, pem in files.items()
        }
        info = _private_file(
            self.directory / "cluster.json",
            json.dumps(
                {
                    "address": self.cluster.scheduler_address,
                    "tls": written,
                    "resources": self.resources,
                }
            ),
        )
        os.environ[STANDING_ENV] = str(info)
        return self

    @property
    def address(self) -> str:
        return self.cluster.scheduler_address

    def dashboard(self) -> str | None:
        """The dashboard's link when it can be served (``bokeh`` installed), else None."""
        return self.cluster.dashboard_link or None if dashboard_servable() else None

    def close(self) -> None:
        if os.environ.get(STANDING_ENV, "").startswith(str(self.directory or "\0")):
            os.environ.pop(STANDING_ENV, None)
        if self.cluster is not None:
            self.cluster.close(timeout=20)
            self.cluster = None
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None

    def __enter__(self) -> StandingCluster:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()


def remove_dead_credentials(home: Path) -> list[Path]:
    """Remove the credential folders that a ``mer-prep serve`` killed with SIGKILL left in
    ``home`` (``standing-dask-<pid>-*`` whose process is gone); the ones removed. A folder of a
    live process, or of a PID now reused by another, is kept: its cluster may be running."""
    removed = []
    for folder in home.glob("standing-dask-*-*"):
        pid = folder.name.split("-")[2]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
        except PermissionError:  # another user's live process
            pass
    return removed


def _private_file(path: Path, text: str) -> Path:
    """``text`` written to a new file only this user can read or write (0600)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    return path


def dashboard_servable() -> bool:
    """Whether the Dask dashboard can show its pages here (it needs ``bokeh``)."""
    return importlib.util.find_spec("bokeh") is not None


# prefect-dask announces the dashboard's link even when it would lead to a 404 (flows.compat);
# the lambda looks ``dashboard_servable`` up per record, so a test may swap it
install_dashboard_filter(lambda: dashboard_servable())
