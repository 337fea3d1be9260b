"""The preprocess flow on a hand-started Dask cluster (real processes, loopback only).

A scheduler and two ``dask worker`` processes are started with the CLI, each in its own process
group, and torn down by killing those groups. The tests check that a run uses the cluster, that
losing a worker mid-run (SIGKILL) never publishes a partial version, and that two concurrent runs
of the same inputs into one store publish exactly one version, equal to a clean run's.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import warnings
from functools import partial
from pathlib import Path

import numpy as np
import pytest
from distributed import Client, get_task_stream

from mer_prep.errors import VersionConflictError
from mer_prep.store import open_store
from mer_prep.store.repo import MAIN, open_repository, store_exists

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_server")]

REPO = Path(__file__).resolve().parents[1]
DASK = Path(sys.executable).with_name("dask")


# --- a hand-started cluster --------------------------------------------------------------------


class HandCluster:
    """``dask scheduler`` + ``dask worker`` processes, each the leader of its own process group."""

    def __init__(self, workdir: Path) -> None:
        from flows.preprocess import WORKER_ENVIRONMENT

        self.workdir = workdir
        self.scheduler_file = workdir / "scheduler.json"
        self.env = {
            **os.environ,
            **WORKER_ENVIRONMENT,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        }
        self.processes: list[subprocess.Popen] = []
        self.client: Client | None = None

    def _spawn(self, name: str, *args: str) -> subprocess.Popen:
        log = open(self.workdir / f"{name}.log", "wb")  # closed with the process
        process = subprocess.Popen(
            [str(DASK), *args],
            env=self.env,
            cwd=self.workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self.processes.append(process)
        return process

    def start(
        self,
        n_workers: int = 2,
        timeout: float = 60,
        worker_args: list[list[str]] | None = None,
    ) -> HandCluster:
        """The scheduler, then ``n_workers`` single-threaded workers (one per item of
        ``worker_args``, each given its item's arguments too, where it is given)."""
        if worker_args is None:
            worker_args = [[] for _ in range(n_workers)]
        n_workers = len(worker_args)
        self._spawn(
            "scheduler",
            "scheduler",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--scheduler-file",
            str(self.scheduler_file),
            "--no-dashboard",
        )
        deadline = time.monotonic() + timeout
        while not self.scheduler_file.exists():
            self._check_alive()
            assert time.monotonic() < deadline, self.logs()
            time.sleep(0.1)
        for i, extra in enumerate(worker_args):
            self._spawn(
                f"worker{i}",
                "worker",
                "--nthreads",
                "1",
                "--nworkers",
                "1",
                "--no-dashboard",
                "--host",
                "127.0.0.1",
                "--scheduler-file",
                str(self.scheduler_file),
                *extra,
            )
        self.client = Client(scheduler_file=str(self.scheduler_file), timeout=timeout)
        self.client.wait_for_workers(n_workers, timeout=max(deadline - time.monotonic(), 1))
        return self

    @property
    def address(self) -> str:
        return self.client.scheduler.address

    def preprocess(self, root: Path, recipe: str, store_path: Path):
        """``run_preprocess`` of the CASME II look-alike at ``root`` on this cluster's 2 workers."""
        from flows.preprocess import run_preprocess

        return run_preprocess(
            "casme2", str(root), recipe, str(store_path), n_workers=2, dask_address=self.address
        )

    def kill_a_busy_worker(
        self, thread: threading.Thread, outcome: dict, wait: float, settle: float
    ):
        """Once both workers are busy (within ``wait`` s) and ``settle`` s later (mid-task),
        SIGKILL a busy worker; its address. ``thread`` and ``outcome`` are ``run_in_thread``'s:
        the run must still be going."""
        client = self.client
        deadline = time.monotonic() + wait
        while sum(map(len, client.processing().values())) < 2:
            assert thread.is_alive(), outcome
            assert time.monotonic() < deadline, self.logs()
            time.sleep(0.05)
        time.sleep(settle)
        busy = [address for address, keys in client.processing().items() if keys]
        assert busy and thread.is_alive(), "the run ended before a worker could be killed"
        victim = busy[0]
        os.kill(self.worker_pids()[victim], signal.SIGKILL)
        return victim

    def worker_pids(self) -> dict[str, int]:
        """Worker address -> pid of the worker process itself (not its nanny)."""
        return self.client.run(os.getpid)

    def _check_alive(self) -> None:
        for process in self.processes:
            assert process.poll() is None, f"{process.args} exited early\n{self.logs()}"

    def logs(self) -> str:
        return "\n".join(
            f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}"
            for log in sorted(self.workdir.glob("*.log"))
        )

    def stop(self) -> None:
        if self.client is not None:
            self.client.close(timeout=10)
        for process in reversed(self.processes):  # workers first, the scheduler last
            _kill_group(process, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for process in reversed(self.processes):
            try:
                process.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                pass
            _kill_group(process, signal.SIGKILL)  # whatever is left of the group (nanny children)
            process.wait(timeout=10)


def _kill_group(process: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(process.pid, sig)  # the group id is the leader's pid (start_new_session)
    except ProcessLookupError:
        pass


@pytest.fixture
def hand_cluster(tmp_path_factory, request):
    cluster = HandCluster(tmp_path_factory.mktemp("dask"))
    request.addfinalizer(cluster.stop)
    return cluster.start(n_workers=2)


# --- checks on a store -------------------------------------------------------------------------


def assert_complete(store_path: Path, written) -> None:
    """The visible version holds every sample, status ok, with every array filled."""
    store = open_store(store_path)
    table = store.table_all
    assert list(table["sample_id"]) == sorted(w.sample_id for w in written)
    assert (table["status"] == "ok").all(), table[["sample_id", "status", "error"]]
    assert len(store.table) == len(table)
    for name in store.array_names:
        values = store.array(name)
        flat = values.reshape(len(values), -1)
        assert flat.any(axis=1).all(), f"{name}: samples {np.flatnonzero(~flat.any(axis=1))} are 0"
    frames = store.array("frames")
    per_frame = frames.reshape(*frames.shape[:2], -1).any(axis=2)
    assert per_frame.all(), f"all-zero frames at (sample, frame) {np.argwhere(~per_frame)}"


def assert_clean_history(store_path: Path) -> None:
    """main = the root snapshot + per tagged version its layout flush and its commit; no scratch.

    (``VersionWriter.begin`` flushes the layout as a private snapshot that the version's commit
    builds on, so it is the commit's parent; nothing else may sit on ``main``.)
    """
    repo = open_repository(store_path)
    tag_of = {repo.lookup_tag(tag): tag for tag in repo.list_tags() if tag.startswith("v-")}
    history = list(repo.ancestry(branch=MAIN))
    assert history[-1].parent_id is None
    rest = history[:-1]
    assert len(rest) == 2 * len(tag_of), [(s.id, s.message) for s in history]
    for commit, layout in zip(rest[::2], rest[1::2], strict=True):
        assert commit.id in tag_of, (commit.id, commit.message, tag_of)
        assert layout.message == f"layout of {tag_of[commit.id]}", layout.message
    assert set(repo.list_branches()) == {MAIN}


def version_conflict_in(error: BaseException) -> bool:
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, VersionConflictError) or "VersionConflictError" in repr(error):
            return True
        error = error.__cause__ or error.__context__
    return False


def run_in_thread(function, *args, **kwargs):
    """Start ``function`` in a thread; returns (thread, outcome dict with 'result' or 'error')."""
    outcome: dict = {}

    def target():
        try:
            outcome["result"] = function(*args, **kwargs)
        except BaseException as error:  # noqa: BLE001 - reported to the test
            outcome["error"] = error

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, outcome


def run_at_once(function, arguments: list[tuple], timeout: float) -> list[dict]:
    """``function(*args)`` for each of ``arguments`` in threads that start together (a barrier);
    their outcomes (``run_in_thread``'s), once every one has ended within ``timeout`` s."""
    start = threading.Barrier(len(arguments))

    def together(*args):
        start.wait()
        return function(*args)

    runs = [run_in_thread(together, *args) for args in arguments]
    for thread, _ in runs:
        thread.join(timeout=timeout)
        assert not thread.is_alive(), "a concurrent run hung"
    return [outcome for _, outcome in runs]


# --- the tests ---------------------------------------------------------------------------------


def test_flow_runs_on_a_hand_started_cluster_and_uses_both_workers(
    tmp_path, hand_cluster, synth_dataset
):
    root, written = synth_dataset(
        "casme2", n_subjects=3, clips_per_subject=2, seed=11, size=(240, 320), n_frames=16
    )
    store_path = tmp_path / "store"
    with get_task_stream(client=hand_cluster.client) as stream:
        summary = hand_cluster.preprocess(root, "mbcc64", store_path)
    assert not summary.up_to_date and summary.n_failed == 0, summary
    assert summary.n_ok == len(written) == 6
    store = open_store(store_path)
    assert store.version_id == summary.version_id
    assert list(store.versions()["version_id"]) == [summary.version_id]
    assert store.table["subject"].nunique() == 3
    assert store.array("frames").shape == (6, 2, 64, 64)
    assert_complete(store_path, written)
    assert_clean_history(store_path)
    # both hand-started workers ran a batch (one batch per worker for 6 samples)
    workers = {entry["worker"] for entry in stream.data}
    assert workers == set(hand_cluster.worker_pids()), (workers, stream.data)


def test_killing_a_worker_mid_run_never_publishes_a_partial_version(
    tmp_path, hand_cluster, synth_dataset
):
    root, written = synth_dataset(
        "casme2", n_subjects=4, clips_per_subject=3, seed=12, size=(240, 320), n_frames=24
    )
    store_path = tmp_path / "store"
    stream = get_task_stream(client=hand_cluster.client)
    stream.__enter__()
    thread, outcome = run_in_thread(hand_cluster.preprocess, root, "ha3d", store_path)
    # once both workers are busy with a batch, a little longer: mid-batch
    victim = hand_cluster.kill_a_busy_worker(thread, outcome, wait=60, settle=2.0)
    killed_at = time.monotonic()
    thread.join(timeout=150)
    stream.__exit__(None, None, None)
    assert not thread.is_alive(), "the run hung after a worker was killed"
    print(
        f"\nrun ended {time.monotonic() - killed_at:.1f} s after the kill: "
        + (f"FAILED with {outcome['error']!r}" if "error" in outcome else "COMPLETED")
    )

    if "error" not in outcome:  # the lost batch was rerun: everything is there
        summary = outcome["result"]
        assert not summary.up_to_date and summary.n_failed == 0, summary
        assert_complete(store_path, written)
        assert list(open_store(store_path).versions()["version_id"]) == [summary.version_id]
        # the killed worker finished nothing: its batch was rerun on another worker
        finished_on = [entry["worker"] for entry in stream.data]
        assert victim not in finished_on and len(finished_on) >= 2, (victim, finished_on)
    elif store_exists(store_path):  # the run failed: nothing of it is visible
        repo = open_repository(store_path)
        assert [t for t in repo.list_tags() if t.startswith("v-")] == []
        with pytest.raises(FileNotFoundError):
            open_store(store_path)
    if store_exists(store_path):
        assert_clean_history(store_path)


def test_two_concurrent_runs_publish_exactly_one_version(tmp_path, hand_cluster, synth_dataset):
    root, written = synth_dataset(
        "casme2", n_subjects=2, clips_per_subject=3, seed=13, size=(240, 320), n_frames=24
    )
    store_path = tmp_path / "store"
    # The repository exists (empty) before the runs, so that this test races the commits; two
    # runs creating a fresh store at the same instant is test_concurrent_store_creation's.
    open_repository(store_path, create=True)
    outcomes = run_at_once(hand_cluster.preprocess, [(root, "ha3d", store_path)] * 2, timeout=150)
    committed = [o["result"] for o in outcomes if "result" in o and not o["result"].up_to_date]
    others = [o for o in outcomes if "result" not in o or o["result"].up_to_date]
    print(
        "\nconcurrent runs: "
        + "; ".join(
            repr(o["error"])
            if "error" in o
            else ("up to date" if o["result"].up_to_date else "committed")
            for o in outcomes
        )
    )
    assert len(committed) == 1, outcomes
    version_id = committed[0].version_id
    (other,) = others
    if "error" in other:
        assert version_conflict_in(other["error"]), other["error"]
    else:
        assert other["result"].version_id == version_id
        assert other["result"].snapshot == committed[0].snapshot

    store = open_store(store_path)
    assert store.version_id == version_id
    assert list(store.versions()["version_id"]) == [version_id]
    assert_complete(store_path, written)
    assert_clean_history(store_path)

    # the published version equals a clean single run of the same inputs
    clean_path = tmp_path / "clean"
    clean = hand_cluster.preprocess(root, "ha3d", clean_path)
    assert clean.version_id == version_id
    reference = open_store(clean_path)
    assert store.array_names == reference.array_names
    for name in store.array_names:
        np.testing.assert_array_equal(store.array(name), reference.array(name), err_msg=name)
    columns = [c for c in store.table_all.columns if c not in ("created",)]
    assert store.table_all[columns].to_json() == reference.table_all[columns].to_json()


def test_concurrent_store_creation_opens_the_same_repository(tmp_path):
    """Two runs whose first ``VersionWriter.begin`` on a new store path coincide both proceed."""
    errors: list[BaseException] = []
    for trial in range(10):
        path = tmp_path / f"store{trial}"
        outcomes = run_at_once(partial(open_repository, create=True), [(path,)] * 2, timeout=30)
        errors += [outcome["error"] for outcome in outcomes if "error" in outcome]
        assert [snapshot.message for snapshot in open_repository(path).ancestry(branch=MAIN)] == [
            "Repository initialized"
        ]
    assert not errors, errors


def test_a_default_client_of_another_scheduler_is_named_before_it_takes_over():
    """prefect-dask's runner takes a default client over the address it is given."""
    from distributed import Client, LocalCluster

    from flows.preprocess import task_runner

    with LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0"
    ) as cluster:
        with Client(cluster) as client:
            address = client.scheduler.address
            with pytest.warns(RuntimeWarning, match=f"scheduler {address}.*tcp://127.0.0.1:1"):
                task_runner("tcp://127.0.0.1:1", 1)
            with pytest.warns(RuntimeWarning, match="a new local cluster of 2 workers"):
                task_runner(None, 2)
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                task_runner(address, 1)  # the same scheduler: nothing to say
        with Client(cluster, set_as_default=False), warnings.catch_warnings():
            warnings.simplefilter("error")
            task_runner("tcp://127.0.0.1:1", 1)
