"""Leftovers of killed runs and old versions: scratch branches removed only when their run is
provably dead, and `mer-prep gc` freeing old versions' and killed runs' chunks without touching
tagged versions (unless asked), live runs or the trainers' `runs` branch."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import time
from pathlib import Path

import icechunk as ic
import numpy as np
import pytest
import zarr
from click.testing import CliRunner
from store_contents import SMALL_CASME2, begin_version
from store_contents import assert_same as _assert_same
from store_contents import contents as _contents

from mer_prep.errors import VersionNotFoundError
from mer_prep.store import gc, open_store
from mer_prep.store.gc import Owner, collect_garbage, remove_abandoned_branches, scratch_branch

SMALL = SMALL_CASME2
RECIPE = "mbcc64"


def _writer(root, store_path):
    """A version begun and its samples written through the library, not yet finished."""
    return begin_version(root, store_path, RECIPE)


def _commit(root, store_path) -> str:
    writer, finish = _writer(root, store_path)
    finish()
    return writer.version_id


def _edit(written, index: int) -> None:
    clip = sorted(written, key=lambda w: w.sample_id)[index]
    first = int(Path(clip.frame_paths[0]).stem[3:])
    Path(clip.frame_paths[clip.apex - first]).write_bytes(
        Path(clip.frame_paths[clip.onset - first]).read_bytes()
    )


def _repo(store_path) -> ic.Repository:
    return ic.Repository.open(ic.local_filesystem_storage(str(store_path)))


def _chunk_bytes(store_path) -> int:
    return sum(f.stat().st_size for f in (Path(store_path) / "chunks").rglob("*") if f.is_file())


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


# --- scratch branches ----------------------------------------------------------------------------


def test_only_scratch_branches_of_provably_dead_runs_are_removed(tmp_path, synth_dataset):
    root, _ = synth_dataset("casme2", copy_to=tmp_path / "data", **SMALL)
    store = tmp_path / "store"
    version = _commit(root, store)
    repo = _repo(store)
    tip = repo.lookup_branch("main")
    me = gc.this_process()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        time.sleep(0.2)
        ticks = gc._proc_stat(live.pid)[1]
        now = int(time.time())
        old = now - 4 * 24 * 3600
        branches = {
            # this host, this boot
            "dead run": (Owner(me.host, me.boot, _dead_pid(), 123, now), True),
            "live run": (Owner(me.host, me.boot, live.pid, ticks, now), False),
            "pid reused by another process": (
                Owner(me.host, me.boot, live.pid, ticks + 1, now),
                True,
            ),
            "this process": (me, False),
            # this host, before a restart
            "another boot": (Owner(me.host, "0badb007", live.pid, ticks, now), True),
            # another host: by age only
            "another host, recent": (Owner("0e1f2a3b", "12345678", 1, 1, now), False),
            "another host, 4 days old": (Owner("0e1f2a3b", "12345678", 1, 1, old), True),
        }
        names = {}
        for what, (owner, _) in branches.items():
            names[what] = scratch_branch(version, owner)
            repo.create_branch(names[what], tip)
        legacy = f"writing-{version}-0123abcd"  # from before owners were recorded: recent
        repo.create_branch(legacy, tip)
        repo.create_branch("runs", tip)  # not a scratch branch: never looked at

        removed = remove_abandoned_branches(repo)
        assert sorted(removed) == sorted(names[w] for w, (_, dead) in branches.items() if dead)
        assert repo.list_branches() == {"main", "runs", legacy} | {
            names[w] for w, (_, dead) in branches.items() if not dead
        }
        assert gc.abandoned(repo, legacy) is None
        later = dt.datetime.now(dt.UTC) + dt.timedelta(days=4)
        assert "recorded no owner" in gc.abandoned(repo, legacy, now=later)
    finally:
        live.kill()
        live.wait()


def test_a_run_removes_a_dead_runs_scratch_branch_but_not_a_live_ones(tmp_path, synth_dataset):
    root, written = synth_dataset("casme2", copy_to=tmp_path / "data", **SMALL)
    store = tmp_path / "store"
    version = _commit(root, store)
    repo = _repo(store)
    me = gc.this_process()
    dead = scratch_branch(version, Owner(me.host, me.boot, _dead_pid(), 1, int(time.time())))
    repo.create_branch(dead, repo.lookup_branch("main"))
    writer, finish = _writer(root, store)  # a live run of this process, not finished
    _edit(written, 0)
    _commit(root, store)  # another run meanwhile (it wins the race to main)
    assert _repo(store).list_branches() == {"main", writer.branch}
    writer.abort()


# --- garbage collection -------------------------------------------------------------------------


@pytest.fixture
def history(tmp_path, synth_dataset, monkeypatch):
    """A store with three versions, a split, a `runs` branch of two commits and the scratch
    branch of a run killed after writing its chunks."""
    from mer_prep.evaluation.splits import build_split
    from mer_prep.store import writer as writer_module
    from mer_prep.store.splits import save_split

    root, written = synth_dataset("casme2", copy_to=tmp_path / "data", **SMALL)
    store = tmp_path / "store"
    versions = [_commit(root, store)]
    first = open_store(store)
    save_split(first, build_split(first.table, "group_kfold", n_splits=2))
    for index in (0, 1):
        _edit(written, index)
        versions.append(_commit(root, store))

    repo = _repo(store)
    root_snapshot = list(repo.ancestry(branch="main"))[-1].id  # "Repository initialized"
    repo.create_branch("runs", root_snapshot)
    for k in range(2):  # a trainer's run records, on a branch of their own
        session = repo.writable_session("runs")
        group = zarr.open_group(session.store, mode="a").require_group("runs")
        group.create_array(f"run{k}", data=np.arange(1000, dtype="float64") * k)
        session.commit(f"run {k}")

    _edit(written, 2)
    me = gc.this_process()
    dead = Owner(me.host, me.boot, _dead_pid(), 1, int(time.time()))
    monkeypatch.setattr(
        writer_module, "scratch_branch", lambda version_id: scratch_branch(version_id, dead)
    )
    killed, _ = _writer(root, store)  # its chunks are written; it never finishes
    monkeypatch.undo()
    _edit(written, 2)  # back as it was: main's version is the inputs' version again
    return store, versions, killed.branch


def test_gc_frees_killed_runs_and_old_history_but_keeps_versions_and_runs(history):
    store, versions, killed = history
    repo = _repo(store)
    before = {tag: _contents(store, tag) for tag in versions}
    latest = _contents(store)
    runs_tip = repo.lookup_branch("runs")
    shared = {s.id for s in repo.ancestry(branch="main")}
    own = [s.id for s in repo.ancestry(branch="runs") if s.id not in shared]
    assert len(own) == 2  # its two commits
    runs_data = zarr.open_group(repo.readonly_session(branch="runs").store, mode="r")["runs/run1"][
        :
    ]
    size = _chunk_bytes(store)

    report = collect_garbage(store, keep=1, grace=dt.timedelta(0))
    assert report.removed_branches == [killed]
    assert report.chunks_deleted >= 1 and report.bytes_deleted > 0  # the killed run's chunks
    assert report.deleted_tags == [] and report.kept_versions == [versions[-1]]
    assert _chunk_bytes(store) < size  # bytes_deleted also counts manifests and snapshots

    repo = _repo(store)
    assert repo.list_branches() == {"main", "runs"}
    assert set(repo.list_tags()) == set(versions)  # tags kept: every version still readable
    for tag in versions:
        _assert_same(_contents(store, tag), before[tag])
    _assert_same(_contents(store), latest)
    # the trainers' branch: same tip, and every commit of its own still in its history
    assert repo.lookup_branch("runs") == runs_tip
    assert [s.id for s in repo.ancestry(branch="runs")][: len(own)] == own
    np.testing.assert_array_equal(
        zarr.open_group(repo.readonly_session(branch="runs").store, mode="r")["runs/run1"][:],
        runs_data,
    )

    # --tags: the older versions go, and their chunks with them
    report = collect_garbage(store, keep=1, delete_tags=True, grace=dt.timedelta(0))
    assert report.deleted_tags == [versions[1], versions[0]]
    assert report.chunks_deleted >= 1 and report.bytes_deleted > 0
    repo = _repo(store)
    assert set(repo.list_tags()) == {versions[-1]}
    with pytest.raises(VersionNotFoundError):
        open_store(store, versions[0])
    _assert_same(_contents(store, versions[-1]), before[versions[-1]])
    _assert_same(_contents(store), latest)
    assert repo.lookup_branch("runs") == runs_tip
    assert np.array_equal(
        zarr.open_group(repo.readonly_session(branch="runs").store, mode="r")["runs/run1"][:],
        runs_data,
    )


def test_gc_leaves_a_live_run_whole(tmp_path, synth_dataset):
    root, written = synth_dataset("casme2", copy_to=tmp_path / "data", **SMALL)
    store = tmp_path / "store"
    _commit(root, store)
    _edit(written, 0)
    writer, finish = _writer(root, store)  # live: this process, chunks written, not committed
    report = collect_garbage(store, keep=1, grace=dt.timedelta(0))
    assert report.removed_branches == [] and writer.branch in _repo(store).list_branches()
    finish()  # its chunks are all there
    clean = tmp_path / "clean"
    _commit(root, clean)
    _assert_same(_contents(store), _contents(clean))


def test_gc_command_reports_what_it_freed(history):
    from mer_prep.cli import main

    store, versions, killed = history
    result = CliRunner().invoke(main, ["gc", str(store), "--keep", "2", "--tags", "--grace", "0"])
    assert result.exit_code == 0, result.output
    assert f"removed scratch branch {killed}" in result.output
    assert f"deleted version tag {versions[0]}" in result.output
    assert "freed " in result.output and " chunks, " in result.output
    assert set(_repo(store).list_tags()) == set(versions[1:])
    missing = CliRunner().invoke(main, ["gc", str(store.parent / "nothing")])
    assert missing.exit_code == 3


# --- what training runs read, recorded or live ---------------------------------------------------


def _record_reading(store_path, run_id: str, version: str) -> None:
    """A run record on the `runs` branch, as `save_run` writes it, that read `version`'s tip."""
    from mer_prep.train.runs_store import ensure_runs_branch

    repo = _repo(store_path)
    ensure_runs_branch(repo)
    session = repo.writable_session("runs")
    group = zarr.open_group(session.store, mode="a")["runs"].create_group(run_id)
    group.attrs["store"] = {"snapshot_id": repo.lookup_tag(version), "version_id": version}
    session.commit(f"run {run_id}")


def test_gc_frees_versions_made_after_a_record_and_keeps_exactly_what_it_read(
    tmp_path, synth_dataset
):
    """Issue: with one run record, `gc --keep 1 --tags` deleted the tags in between yet freed
    nothing (the `runs` branch's first commit held back the expiry of every later version)."""
    root, written = synth_dataset("casme2", copy_to=tmp_path / "data", **SMALL)
    clip = sorted(written, key=lambda w: w.sample_id)[0]
    first = int(Path(clip.frame_paths[0]).stem[3:])
    apex = Path(clip.frame_paths[clip.apex - first])
    original = apex.read_bytes()
    store = tmp_path / "store"
    versions = [_commit(root, store)]
    _record_reading(store, "run-on-v1", versions[0])
    apex.write_bytes(Path(clip.frame_paths[clip.onset - first]).read_bytes())
    versions.append(_commit(root, store))  # its clip-0 chunks are its own
    apex.write_bytes(original)
    _edit(written, 1)
    versions.append(_commit(root, store))
    kept = {tag: _contents(store, tag) for tag in (versions[0], versions[2])}
    size = _chunk_bytes(store)

    report = collect_garbage(store, keep=1, delete_tags=True, grace=dt.timedelta(0))
    assert report.deleted_tags == [versions[1]]
    assert report.kept_for_runs == {versions[0]: ["run-on-v1"]}
    assert report.chunks_deleted >= 1 and _chunk_bytes(store) < size  # v2's own clip-0 chunks
    for tag, contents in kept.items():
        _assert_same(_contents(store, tag), contents)
    with pytest.raises(VersionNotFoundError):
        open_store(store, versions[1])
    assert not [b for b in _repo(store).list_branches() if b.startswith(gc.KEEP_PREFIX)]


def test_a_live_trainings_lease_keeps_its_version_through_gc_tags(history):
    """Issue: `gc --keep 1 --tags` during a training deleted the version it read (the tag for
    good); a lease keeps snapshot and tag while it is held, and a killed holder's is removed."""
    from mer_prep.store.lease import reading_lease

    store, versions, _ = history
    oldest = versions[0]
    before = _contents(store, oldest)
    snapshot = _repo(store).lookup_tag(oldest)
    with reading_lease(store, snapshot, oldest) as lease:
        report = collect_garbage(store, keep=1, delete_tags=True, grace=dt.timedelta(0))
        assert report.deleted_tags == [versions[1]]
        assert report.kept_for_training == {oldest: [lease]}
        _assert_same(_contents(store, oldest), before)
        assert lease in _repo(store).list_branches()
    assert lease not in _repo(store).list_branches()
    me = gc.this_process()
    dead = gc.owned_branch(
        gc.LEASE_PREFIX, oldest, Owner(me.host, me.boot, _dead_pid(), 1, int(time.time()))
    )
    _repo(store).create_branch(dead, snapshot)  # a training killed with -9
    report = collect_garbage(store, keep=1, delete_tags=True, grace=dt.timedelta(0))
    assert report.removed_branches == [dead] and report.deleted_tags == [oldest]


def test_a_runs_init_branch_left_by_a_kill_is_removed_by_gc(tmp_path, synth_dataset):
    """Issue: a `runs-init-*` branch stayed for good after a kill -9 while the first record's
    branch was being made."""
    from mer_prep.train.runs_store import ensure_runs_branch

    root, _ = synth_dataset("casme2", copy_to=tmp_path / "data", **SMALL)
    store = tmp_path / "store"
    _commit(root, store)
    killed = subprocess.run(
        [
            sys.executable,
            "-c",
            f"""
import os, signal, icechunk
from mer_prep.store.repo import open_repository
from mer_prep.train.runs_store import ensure_runs_branch
icechunk.Session.commit = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)
ensure_runs_branch(open_repository({str(store)!r}))
""",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert killed.returncode == -9, killed.stderr
    (left,) = [b for b in _repo(store).list_branches() if b.startswith("runs-init-")]
    report = collect_garbage(store, keep=1, grace=dt.timedelta(0))
    assert report.removed_branches == [left]
    assert _repo(store).list_branches() == {"main"}
    ensure_runs_branch(_repo(store))  # the next record's run makes `runs` as usual
    assert _repo(store).list_branches() == {"main", "runs"}
