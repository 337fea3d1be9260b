"""Faults while a version is written, through the library writer (what the flow wires up).

- a run killed outright (SIGKILL, in a subprocess) at each step of writing a version: readers
  still see the previous version byte for byte (or, once ``main`` has moved, the complete new
  one), and a re-run gives what a clean run gives: the same version id, table and arrays;
- a transient error (a frame missing for a moment, EIO) is retried, and when it persists the
  version is committed under an id of its own, not the inputs' id; a re-run retries exactly
  that sample and ends where a store that never met the error is;
- a failure that follows from the inputs (a frame missing when fingerprinted) is permanent: not
  retried, and a re-run is up to date;
- an error writing the store is never a sample failure: the run stops, nothing is published.
"""

from __future__ import annotations

import errno
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from store_contents import SMALL_CASME2
from store_contents import assert_same as _assert_same
from store_contents import contents as _contents

from mer_prep.errors import StoreWriteError
from mer_prep.recipes import load_recipe
from mer_prep.store import open_store

SMALL = SMALL_CASME2
RECIPE = "mbcc64"


def _commit(root, store_path):
    """One version through the library, as the flow does it; the writer (None: up to date)."""
    from mer_prep.pipeline.local import commit_version

    return commit_version("casme2", root, RECIPE, store_path)[1]


def _branches(store_path) -> set[str]:
    import icechunk as ic

    return ic.Repository.open(ic.local_filesystem_storage(str(store_path))).list_branches()


def _edit_one_frame(written) -> None:
    """Change one sample's inputs: its apex frame becomes a copy of its onset frame."""
    clip = sorted(written, key=lambda w: w.sample_id)[0]
    first = int(Path(clip.frame_paths[0]).stem[3:])
    Path(clip.frame_paths[clip.apex - first]).write_bytes(
        Path(clip.frame_paths[clip.onset - first]).read_bytes()
    )


def _frame_of(written, index=1) -> Path:
    """A frame the recipe reads (the onset) of the ``index``-th sample."""
    clip = sorted(written, key=lambda w: w.sample_id)[index]
    return Path(clip.frame_paths[clip.onset - int(Path(clip.frame_paths[0]).stem[3:])])


# --- a run killed at each step ------------------------------------------------------------------

KILLED_RUN = r"""
import os, signal, sys
import mer_prep.version

root, store, point, here, code = sys.argv[1:6]
# the parent's code version: others may be editing the tree while the tests run
mer_prep.version.code_version = lambda: code

import icechunk as ic
from mer_prep.store import writer as writer_module

def die():
    os.kill(os.getpid(), signal.SIGKILL)

def after(owner, name, calls=1):
    real, seen = getattr(owner, name), []
    def wrapper(*args, **kwargs):
        result = real(*args, **kwargs)
        seen.append(1)
        if len(seen) >= calls:
            die()
        return result
    setattr(owner, name, wrapper)

def before(owner, name):
    setattr(owner, name, lambda *args, **kwargs: die())

{"layout-flush": lambda: after(ic.Session, "flush"),
 "layout": lambda: after(ic.Repository, "create_branch"),
 "processing": lambda: after(writer_module.SampleWriter, "write"),
 "merge": lambda: after(ic.Session, "merge"),
 "commit": lambda: after(ic.Session, "commit"),
 "tag": lambda: before(ic.Repository, "create_tag"),
}[point]()

sys.path.insert(0, os.path.dirname(here))  # this test module, for _commit
from test_faults import _commit
_commit(root, store)
print("not killed")
"""

#: where ``main`` stands after a kill at each point: the previous version, or the new one
POINTS = {
    "layout-flush": "previous",
    "layout": "previous",
    "processing": "previous",
    "merge": "previous",
    "commit": "previous",
    "tag": "new",
}


@pytest.fixture(scope="module")
def two_versions(tmp_path_factory, synth_dataset):
    """A store at version 1 of a dataset, the dataset changed since, and a store made cleanly
    from the changed dataset (the reference a re-run must equal)."""
    base = tmp_path_factory.mktemp("faults")
    root, written = synth_dataset("casme2", copy_to=base / "data", **SMALL)
    previous = base / "previous"
    _commit(root, previous)
    _edit_one_frame(written)
    clean = base / "clean"
    _commit(root, clean)
    return root, previous, _contents(previous), _contents(clean)


@pytest.mark.slow  # one subprocess per point: imports, planning, four samples
@pytest.mark.parametrize("point", list(POINTS))
def test_a_run_killed_anywhere_leaves_readers_a_whole_version_and_a_rerun_equals_a_clean_run(
    two_versions, tmp_path, point
):
    root, previous, before, clean = two_versions
    store = tmp_path / "store"
    shutil.copytree(previous, store)
    from mer_prep.version import code_version

    killed = subprocess.run(
        [sys.executable, "-c", KILLED_RUN, str(root), str(store), point, __file__, code_version()],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert killed.returncode == -9, killed.stdout + killed.stderr[-3000:]

    # readers: the previous version byte for byte until main moves, then the whole new one
    _assert_same(_contents(store), before if POINTS[point] == "previous" else clean)
    scratch = {b for b in _branches(store) if b.startswith("writing-")}
    assert len(scratch) == (0 if point == "layout-flush" else 1)

    _commit(root, store)  # the re-run: removes the dead run's branch, then writes or tags
    _assert_same(_contents(store), clean)
    assert _branches(store) == {"main"}
    assert clean[0] in open_store(store).repo.list_tags()


def test_an_exception_anywhere_in_writing_publishes_nothing(two_versions, tmp_path, monkeypatch):
    """The same points raising instead of dying: the scratch branch is dropped at once."""
    import icechunk as ic

    root, previous, before, clean = two_versions
    for owner, name in (
        (ic.Repository, "create_branch"),
        (ic.Session, "merge"),
        (ic.Session, "commit"),
    ):
        store = tmp_path / f"{name}"
        shutil.copytree(previous, store)
        real = getattr(owner, name)

        def fail(*args, _real=real, **kwargs):
            _real(*args, **kwargs)
            raise KeyboardInterrupt  # the worst kind: a BaseException

        with monkeypatch.context() as patch:
            patch.setattr(owner, name, fail)
            with pytest.raises(KeyboardInterrupt):
                _commit(root, store)
        _assert_same(_contents(store), before)
        assert _branches(store) == {"main"}, name
        _commit(root, store)
        _assert_same(_contents(store), clean)


# --- transient and permanent sample failures ------------------------------------------------------


@pytest.fixture
def no_pause(monkeypatch):
    import mer_prep.pipeline.batch as batch

    monkeypatch.setattr(batch, "RETRY_DELAYS", (0.0, 0.0))


def _attempts(monkeypatch) -> list[str]:
    """Sample ids in the order process_sample is called."""
    import mer_prep.pipeline.batch as batch

    calls: list[str] = []
    real = batch.process_sample

    def counting(sample, recipe):
        calls.append(sample.sample_id)
        return real(sample, recipe)

    monkeypatch.setattr(batch, "process_sample", counting)
    return calls


def test_a_transient_failure_gets_an_id_of_its_own_and_a_rerun_ends_where_a_clean_store_is(
    tmp_path, synth_dataset, monkeypatch, no_pause
):
    from mer_prep.pipeline import batch
    from mer_prep.pipeline.planning import plan_version
    from mer_prep.store.writer import existing_version

    root, written = synth_dataset("casme2", copy_to=tmp_path / "data", **SMALL)
    clean = tmp_path / "clean"
    _commit(root, clean)
    expected = _contents(clean)
    inputs_id = expected[0]

    # Another store of the same inputs: one frame vanishes after the plan fingerprinted it
    # (a network file system hiccup, a file being replaced) and stays away through the retries.
    frame = _frame_of(written)
    away = frame.with_suffix(".away")
    real_process_batch = batch.process_batch

    def flaky(job):
        frame.rename(away)
        try:
            return real_process_batch(job)
        finally:
            away.rename(frame)

    attempts = _attempts(monkeypatch)
    store = tmp_path / "store"
    with monkeypatch.context() as patch:
        patch.setattr(batch, "process_batch", flaky)
        writer = _commit(root, store)
    flaky_id = writer.version_id
    sample_id = sorted(w.sample_id for w in written)[1]
    assert attempts.count(sample_id) == 1 + len(batch.RETRY_DELAYS)  # retried, then given up
    assert flaky_id != inputs_id  # never the inputs' id: that names all four samples ok
    opened = open_store(store)
    assert opened.version_id == flaky_id and opened.attrs["complete"] is False
    assert opened.attrs["inputs_version_id"] == inputs_id
    assert [f["kind"] for f in opened.attrs["failures"]] == ["transient"]
    row = opened.table_all.set_index("sample_id").loc[sample_id]
    assert (row.status, row.failure_kind) == ("failed", "transient")
    assert frame.name in row.error and "does not exist" in row.error
    assert set(opened.repo.list_tags()) == {flaky_id}
    assert existing_version(store, inputs_id) is None  # so a re-run does not stop here

    attempts.clear()
    rerun = _commit(root, store)  # the frame is back
    assert attempts == [sample_id]  # exactly the transiently failed sample, the rest reused
    assert rerun.reuse_summary()["from_version"] == flaky_id
    _assert_same(_contents(store), expected)  # same id, same table, same arrays
    assert set(open_store(store).repo.list_tags()) == {flaky_id, inputs_id}
    assert open_store(store).attrs["complete"] is True
    assert _commit(root, store) is None  # up to date now
    assert plan_version("casme2", root, load_recipe(RECIPE), store).version_id == inputs_id


def test_an_io_error_that_passes_within_the_retries_is_no_failure(
    tmp_path, synth_dataset, monkeypatch
):
    import mer_prep.pipeline.batch as batch

    root, written = synth_dataset("casme2", copy_to=tmp_path / "data", **SMALL)
    import builtins

    frame = _frame_of(written, 2)
    failures = []

    real_open = builtins.open

    def eio_once(file, *args, **kwargs):  # the first read of the frame while processing: EIO
        if str(file) == str(frame) and processing and not failures:
            failures.append(file)
            raise OSError(errno.EIO, "Input/output error", str(file))
        return real_open(file, *args, **kwargs)

    processing = False
    real_process_batch = batch.process_batch

    def process(job):
        nonlocal processing
        processing = True
        try:
            return real_process_batch(job)
        finally:
            processing = False

    pauses = []
    monkeypatch.setattr(batch, "RETRY_DELAYS", (0.01, 0.01))
    monkeypatch.setattr(batch.time, "sleep", lambda seconds: pauses.append(seconds))
    monkeypatch.setattr(builtins, "open", eio_once)
    monkeypatch.setattr(batch, "process_batch", process)
    writer = _commit(root, tmp_path / "store")
    assert failures and pauses == [0.01]
    store = open_store(tmp_path / "store")
    assert store.attrs["complete"] is True and store.version_id == writer.plan.version_id
    assert (store.table_all["status"] == "ok").all() and not store.attrs["failures"]


def test_a_frame_unreadable_when_fingerprinted_is_a_permanent_failure(
    tmp_path, synth_dataset, monkeypatch, no_pause
):
    """A frame the plan could not read either (a bad sector): the version's id names that
    state, so the failure is permanent, not retried, and a re-run is up to date."""
    import builtins

    root, written = synth_dataset("casme2", copy_to=tmp_path / "data", **SMALL)
    frame = str(_frame_of(written, 3))
    real_open = builtins.open

    def bad_sector(file, *args, **kwargs):
        if str(file) == frame:
            raise OSError(errno.EIO, "Input/output error", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", bad_sector)
    attempts = _attempts(monkeypatch)
    writer = _commit(root, tmp_path / "store")
    sample_id = sorted(w.sample_id for w in written)[3]
    assert attempts.count(sample_id) == 1  # nothing to retry: the inputs are what they are
    store = open_store(tmp_path / "store")
    assert store.version_id == writer.plan.version_id and store.attrs["complete"] is True
    assert [f["kind"] for f in store.attrs["failures"]] == ["permanent"]
    assert store.table_all.set_index("sample_id").loc[sample_id].failure_kind == "permanent"
    assert _commit(root, tmp_path / "store") is None  # up to date


def test_a_corrupt_frame_that_changed_since_planning_is_transient(
    tmp_path, synth_dataset, monkeypatch, no_pause
):
    """A frame rewritten between planning and processing (still being copied in) is not the
    frame the version's id names: its failure may pass."""
    import mer_prep.pipeline.batch as batch

    root, written = synth_dataset("casme2", copy_to=tmp_path / "data", **SMALL)
    frame = _frame_of(written, 0)
    data = frame.read_bytes()
    real_process_batch = batch.process_batch

    def half_written(job):
        frame.write_bytes(data[: len(data) // 2])
        try:
            return real_process_batch(job)
        finally:
            frame.write_bytes(data)

    monkeypatch.setattr(batch, "process_batch", half_written)
    writer = _commit(root, tmp_path / "store")
    store = open_store(tmp_path / "store")
    assert [f["kind"] for f in store.attrs["failures"]] == ["transient"]
    assert store.version_id != writer.plan.version_id


def test_a_store_write_error_stops_the_run_instead_of_failing_the_sample(
    tmp_path, synth_dataset, monkeypatch
):
    import zarr

    from mer_prep.pipeline.batch import BatchJob, process_batch, sample_jobs
    from mer_prep.pipeline.planning import plan_version
    from mer_prep.store.writer import VersionWriter

    root, written = synth_dataset("casme2", copy_to=tmp_path / "data", **SMALL)
    store = tmp_path / "store"
    _commit(root, store)
    before = _contents(store)
    _edit_one_frame(written)

    async def disk_full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    recipe = load_recipe(RECIPE)
    plan = plan_version("casme2", root, recipe, store)
    writer = VersionWriter.begin(plan)
    monkeypatch.setattr(zarr.AsyncArray, "setitem", disk_full)
    with pytest.raises(StoreWriteError, match="No space left"):
        try:
            process_batch(
                BatchJob(
                    writer.fork(),
                    sample_jobs(plan, writer.reused),
                    recipe,
                    plan.arrays,
                    plan.class_names,
                )
            )
        except BaseException:
            writer.abort()
            raise
    _assert_same(_contents(store), before)
    assert _branches(store) == {"main"}


def test_full_disk_while_processing_stops_the_run(tmp_path, synth_dataset, monkeypatch):
    import mer_prep.pipeline.batch as batch
    from mer_prep.pipeline.batch import BatchJob, process_batch, sample_jobs
    from mer_prep.pipeline.planning import plan_version
    from mer_prep.store.writer import VersionWriter

    root, _ = synth_dataset("casme2", copy_to=tmp_path / "data", **SMALL)
    recipe = load_recipe(RECIPE)
    plan = plan_version("casme2", root, recipe, tmp_path / "store")
    writer = VersionWriter.begin(plan)

    def full(sample, recipe):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(batch, "process_sample", full)
    with pytest.raises(StoreWriteError):
        process_batch(
            BatchJob(writer.fork(), sample_jobs(plan), recipe, plan.arrays, plan.class_names)
        )
    writer.abort()
    assert not (tmp_path / "store").exists()  # the first run's store is removed, not left empty


def test_prefect_does_not_retry_a_batch_whose_store_write_failed():
    from prefect.states import Failed

    from flows.preprocess import process_batch_task

    retry = process_batch_task.retry_condition_fn  # what Prefect asks after a failure
    assert retry(None, None, Failed(data=StoreWriteError("disk full"))) is False
    assert retry(None, None, Failed(data=OSError("worker lost"))) is True
