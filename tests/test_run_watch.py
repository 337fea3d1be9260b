"""A cancelled run's batches stop: a standing or remote Dask cluster finishes the batches a run
gave it after the run's process is gone, so each batch checks between samples that its run's
scratch branch still exists (``RunWatch``) and stops without writing. A store the run created
is kept, empty, while its workers may still write: the next run can still create its first
version there (before: "repositories can only be created in clean prefixes", for good)."""

from __future__ import annotations

from pathlib import Path

import pytest
from store_contents import SMALL_CASME2

from mer_prep.errors import RunAbandoned
from mer_prep.pipeline.batch import BatchJob, process_batch, sample_jobs
from mer_prep.pipeline.local import commit_version
from mer_prep.pipeline.planning import plan_version
from mer_prep.recipes import load_recipe
from mer_prep.store import open_store
from mer_prep.store.run_watch import RunWatch
from mer_prep.store.writer import VersionWriter

SMALL = SMALL_CASME2


def _files(store: Path) -> set[Path]:
    return {p for p in store.rglob("*") if p.is_file()}


def test_a_batch_of_a_gone_run_stops_and_the_store_takes_the_next_run(tmp_path, synth_dataset):
    root, _ = synth_dataset("casme2", **SMALL)
    recipe, store = load_recipe("mbcc64"), tmp_path / "store"
    plan = plan_version("casme2", root, recipe, store)
    writer = VersionWriter.begin(plan)
    jobs = sample_jobs(plan, writer.reused)
    assert writer.watch().alive()
    fork = writer.fork()

    writer.abort(remove_new_store=False)  # the run is cancelled while its batch is queued
    written = _files(store)
    watch = writer.watch()
    assert not watch.alive()
    with pytest.raises(RunAbandoned, match=f"stopped before {jobs[0].sample.sample_id}"):
        process_batch(BatchJob(fork, jobs, recipe, plan.arrays, plan.class_names, watch=watch))
    assert _files(store) == written  # not one chunk written for the gone run

    commit_version("casme2", root, recipe, store)  # the kept, empty repository takes it
    assert open_store(store).version_id == plan.version_id


def test_a_watch_of_a_removed_store_says_gone_and_creates_nothing(tmp_path, synth_dataset):
    root, _ = synth_dataset("casme2", **SMALL)
    store = tmp_path / "store"
    writer = VersionWriter.begin(plan_version("casme2", root, load_recipe("mbcc64"), store))
    watch = writer.watch()
    assert watch.alive() and watch.alive()  # the second answer comes from the first (1 s)
    writer.abort()  # a run that gave out no batch: its new store is removed
    assert not store.exists()
    assert not RunWatch(str(store), writer.branch).alive() and not store.exists()
