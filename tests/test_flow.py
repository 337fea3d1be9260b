"""The preprocess flow on an existing Dask scheduler: versions, up-to-date re-runs, changed inputs."""

from pathlib import Path

import numpy as np
import pytest
from distributed import LocalCluster

from mer_prep.store import open_store
from mer_prep.synth.generate import generate_dataset

pytestmark = pytest.mark.usefixtures("prefect_server")


@pytest.fixture(scope="module")
def cluster():
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                      dashboard_address=":0") as running:
        yield running


def test_mbcc64_on_an_existing_scheduler_versions_and_reruns(tmp_path, cluster):
    from flows.preprocess import run_preprocess

    root = tmp_path / "CASME2"
    written = generate_dataset("casme2", root, n_subjects=2, clips_per_subject=3, seed=8,
                               n_frames=16, missing_apex=0.4)
    no_apex = {w.sample_id for w in written if w.apex is None}
    assert 0 < len(no_apex) < len(written)
    store_path = tmp_path / "store"

    def run():
        return run_preprocess("casme2", str(root), "mbcc64", str(store_path), n_workers=1,
                              dask_address=cluster.scheduler_address)

    first = run()
    assert not first["up_to_date"] and first["n_failed"] == len(no_apex)
    store = open_store(store_path)
    assert {f.sample_id for f in store.failures.itertuples()} == no_apex
    assert all("apex" in m for m in store.failures["message"])
    ok = [w for w in sorted(written, key=lambda w: w.sample_id) if w.apex is not None]
    assert list(store.table["sample_id"]) == [w.sample_id for w in ok]
    frames = store.array("frames", dtype="float32")
    assert frames.shape == (len(ok), 2, 64, 64)
    assert [list(s) for s in store.table["source_frames"]] == [[w.onset, w.apex] for w in ok]
    assert (store.table["apex_source"] == "annotated").all()
    # onset and apex differ only by a sub-pixel expression, yet they are not identical
    difference = np.abs(frames[:, 1] - frames[:, 0]).mean(axis=(1, 2))
    assert (difference > 1e-4).all() and (difference < 0.05).all()

    again = run()
    assert again["up_to_date"] and again["version_id"] == first["version_id"]
    assert len(open_store(store_path).versions()) == 1

    edited = ok[0]
    apex_file = Path(edited.frame_paths[edited.apex - int(Path(edited.frame_paths[0]).stem[3:])])
    apex_file.write_bytes(Path(edited.frame_paths[0]).read_bytes())  # the apex now shows the first frame
    changed = run()
    assert not changed["up_to_date"] and changed["version_id"] != first["version_id"]
    latest = open_store(store_path)
    assert latest.version_id == changed["version_id"]
    assert list(latest.versions()["version_id"]) == [changed["version_id"], first["version_id"]]
    old = open_store(store_path, version=first["version_id"])
    np.testing.assert_array_equal(old.array("frames"), store.array("frames"))
