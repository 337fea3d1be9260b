"""`mer-prep run` interrupted as people and machines do it: Ctrl-C in a terminal (SIGINT to the
whole process group), SIGTERM (`kill`, `docker stop`), SIGKILL (the OOM killer).

Ctrl-C and SIGTERM stop it within 5 s with one line and exit code 130, leave the previous
version as what readers see and no scratch branch, and mark the flow run Cancelled; after any of
them, no process of the run is left, and a kill -9's scratch branch goes with the next run.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
from store_contents import assert_same as _assert_same
from store_contents import contents as _contents

pytestmark = pytest.mark.slow  # the whole CLI in a subprocess: a Prefect server and Dask

BIG = {"n_subjects": 3, "clips_per_subject": 4, "seed": 21, "n_frames": 24, "size": (480, 640)}
SMALL = {"n_subjects": 1, "clips_per_subject": 2, "seed": 22, "n_frames": 24, "size": (240, 320)}


def _commit(root, store_path) -> str:
    """The store's previous version, written through the library."""
    from mer_prep.pipeline.local import commit_version

    return commit_version("casme2", root, "ha3d", store_path)[1].version_id


def _scratch(store_path) -> list[Path]:
    return list(Path(store_path).glob("refs/branch.writing-*/ref.json"))


class Run:
    """`mer-prep run` in a session of its own (as a terminal's foreground job), its output
    collected as it comes."""

    def __init__(self, root, store, home, env=None) -> None:
        env = env or {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mer_prep.cli",
                "run",
                "casme2",
                "--root",
                str(root),
                "--recipe",
                "ha3d",
                "--store",
                str(store),
                "--workers",
                "1",
                "--home",
                str(home),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        self.output = bytearray()
        self.store = store
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        while chunk := self.process.stdout.read1(4096):
            self.output += chunk

    def wait_until_processing(self, timeout: float = 240) -> None:
        """Until the scratch branch exists and the workers have been busy for a moment."""
        deadline = time.monotonic() + timeout
        while not _scratch(self.store) or b"preprocess:" not in self.output:
            assert self.process.poll() is None, self.text()
            assert time.monotonic() < deadline, self.text()
            time.sleep(0.1)
        time.sleep(1.5)
        assert self.process.poll() is None and _scratch(self.store), "finished too soon"

    def descendants(self) -> list[psutil.Process]:
        return psutil.Process(self.process.pid).children(recursive=True)

    def text(self, since: int = 0) -> str:
        return self.output[since:].decode(errors="replace")


def _lines(text: str) -> list[str]:
    """Output lines, without the progress bar's repaints."""
    return [
        part.strip()
        for part in re.split(r"[\r\n]", text)
        if part.strip() and not part.strip().startswith("preprocess:")
    ]


def _all_gone(processes, timeout: float = 5) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not [p for p in processes if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]:
            return True
        time.sleep(0.1)
    return False


@pytest.fixture
def datasets(synth_dataset):
    big, _ = synth_dataset("casme2", **BIG)
    small, _ = synth_dataset("casme2", **SMALL)
    return big, small


def test_ctrl_c_stops_the_run_within_5_s_with_one_line_and_the_previous_version(datasets, tmp_path):
    big, small = datasets
    store = tmp_path / "store"
    previous = _commit(small, store)
    before = _contents(store)

    run = Run(big, store, tmp_path / "home")
    run.wait_until_processing()
    children = run.descendants()
    assert any("uvicorn" in " ".join(c.cmdline()) for c in children)  # the private server
    mark = len(run.output)
    start = time.monotonic()
    os.killpg(run.process.pid, signal.SIGINT)  # what a terminal does on Ctrl-C
    code = run.process.wait(timeout=60)
    elapsed = time.monotonic() - start
    time.sleep(0.3)  # the last bytes through the pipe

    assert code == 130, run.text()
    assert elapsed < 5, f"{elapsed:.1f} s\n{run.text(mark)}"
    assert _lines(run.text(mark)) == [f"cancelled; {store} still at version {previous}"], run.text(
        mark
    )
    assert not _scratch(store)
    _assert_same(_contents(store), before)
    assert _all_gone(children), [c.cmdline() for c in children if c.is_running()]


def test_sigterm_cancels_the_flow_run_like_ctrl_c(datasets, tmp_path, prefect_server):
    from prefect import get_client

    big, small = datasets
    store = tmp_path / "store"
    previous = _commit(small, store)
    before = _contents(store)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env["PREFECT_API_URL"] = prefect_server  # a server that outlives the run, to ask

    run = Run(big, store, tmp_path / "home", env=env)
    run.wait_until_processing()
    children = run.descendants()
    mark = len(run.output)
    start = time.monotonic()
    run.process.send_signal(signal.SIGTERM)  # `kill PID`: the run's process only
    code = run.process.wait(timeout=60)
    elapsed = time.monotonic() - start
    time.sleep(0.3)

    assert code == 130 and elapsed < 5, f"{code}, {elapsed:.1f} s\n{run.text(mark)}"
    assert _lines(run.text(mark))[-1] == f"cancelled; {store} still at version {previous}"
    assert "Traceback" not in run.text(mark), run.text(mark)
    assert not _scratch(store)
    _assert_same(_contents(store), before)
    assert _all_gone(children)
    with get_client(sync_client=True) as client:
        ours = [
            r for r in client.read_flow_runs() if (r.parameters or {}).get("store") == str(store)
        ]
    assert [r.state.type.value for r in ours] == ["CANCELLED"], [r.state for r in ours]
    assert f"still at version {previous}" in ours[0].state.message


def test_kill_9_leaves_no_process_and_the_next_run_clears_its_branch(datasets, tmp_path):
    from mer_prep.store.gc import collect_garbage, remove_abandoned_branches
    from mer_prep.store.repo import open_repository

    big, small = datasets
    store = tmp_path / "store"
    _commit(small, store)
    before = _contents(store)

    run = Run(big, store, tmp_path / "home")
    run.wait_until_processing()
    children = run.descendants()
    names = " | ".join(" ".join(c.cmdline()) for c in children)
    assert "uvicorn" in names and "spawn_main" in names  # the server and a Dask worker
    run.process.kill()
    run.process.wait(timeout=30)

    assert _all_gone(children), [c.cmdline() for c in children if c.is_running()]
    assert len(_scratch(store)) == 1  # what a killed run leaves...
    _assert_same(_contents(store), before)
    repo = open_repository(store)
    assert len(remove_abandoned_branches(repo)) == 1  # ...and what the next run removes
    assert repo.list_branches() == {"main"}
    report = collect_garbage(store, keep=1, grace=__import__("datetime").timedelta(0))
    assert report.snapshots_deleted >= 1  # the killed run's layout
    _assert_same(_contents(store), before)
