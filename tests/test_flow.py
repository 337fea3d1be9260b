"""The preprocess flow on an existing Dask scheduler: versions, up-to-date re-runs, changed
inputs."""

from pathlib import Path

import numpy as np
import pytest
from distributed import LocalCluster

from mer_prep.store import open_store
from mer_prep.synth.ground_truth import load_ground_truth

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_server")]


@pytest.fixture(scope="module")
def cluster():
    with LocalCluster(
        n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0"
    ) as running:
        yield running


def test_mbcc64_on_an_existing_scheduler_versions_and_reruns(tmp_path, cluster, synth_dataset):
    from flows.preprocess import run_preprocess

    root, written = synth_dataset(
        "casme2", n_subjects=2, clips_per_subject=3, seed=8, n_frames=16, missing_apex=0.4
    )
    no_apex = {w.sample_id for w in written if w.apex is None}
    assert 0 < len(no_apex) < len(written)
    store_path = tmp_path / "store"

    def run():
        return run_preprocess(
            "casme2",
            str(root),
            "mbcc64",
            str(store_path),
            n_workers=1,
            dask_address=cluster.scheduler_address,
        )

    first = run()
    assert not first.up_to_date and first.n_failed == 0
    store = open_store(store_path)
    ok = sorted(written, key=lambda w: w.sample_id)
    assert list(store.table["sample_id"]) == [w.sample_id for w in ok]
    frames = store.array("frames", dtype="float32")
    assert frames.shape == (len(ok), 2, 64, 64)
    table = store.table.set_index("sample_id")
    for w in ok:  # a missing apex is spotted from the motion, and the store says so
        row = table.loc[w.sample_id]
        assert row["apex_source"] == ("spotted" if w.sample_id in no_apex else "annotated")
        if w.apex is not None:
            assert list(row["source_frames"]) == [w.onset, w.apex] and row["apex"] == w.apex
        else:
            truth = load_ground_truth(root, w.sample_id)
            assert list(row["source_frames"]) == [w.onset, row["apex"]]
            assert abs(row["apex"] - truth.number(truth.apex)) <= 0.1 * truth.n_frames
    # onset and apex differ only by a sub-pixel expression, yet they are not identical
    difference = np.abs(frames[:, 1] - frames[:, 0]).mean(axis=(1, 2))
    assert (difference > 1e-4).all() and (difference < 0.05).all()

    again = run()
    assert again.up_to_date and again.version_id == first.version_id
    assert len(open_store(store_path).versions()) == 1

    edited = next(w for w in ok if w.apex is not None)
    apex_file = Path(edited.frame_paths[edited.apex - int(Path(edited.frame_paths[0]).stem[3:])])
    apex_file.write_bytes(
        Path(edited.frame_paths[0]).read_bytes()
    )  # the apex now shows the first frame
    changed = run()
    assert not changed.up_to_date and changed.version_id != first.version_id
    latest = open_store(store_path)
    assert latest.version_id == changed.version_id
    assert list(latest.versions()["version_id"]) == [changed.version_id, first.version_id]
    old = open_store(store_path, version=first.version_id)
    np.testing.assert_array_equal(old.array("frames"), store.array("frames"))


def test_motion_recipes_write_keyframes_flow_and_masked_sequences(tmp_path, cluster, synth_dataset):
    from flows.preprocess import run_preprocess

    root, written = synth_dataset(
        "casme2",
        n_subjects=2,
        clips_per_subject=2,
        seed=3,
        amplitude_px=(1.5, 2.0),
        missing_apex=0.5,
    )
    by_id = {w.sample_id: w for w in written}
    for recipe, shapes in (
        (
            "msres3d",
            {"frames": (16, 134, 134), "flow": (16, 134, 134, 2), "strain": (16, 134, 134)},
        ),
        ("dacwb3d", {"frames": (16, 128, 128)}),
    ):
        summary = run_preprocess(
            "casme2",
            str(root),
            recipe,
            str(tmp_path / recipe),
            n_workers=1,
            dask_address=cluster.scheduler_address,
        )
        assert summary.n_failed == 0, summary
        store = open_store(tmp_path / recipe)
        assert store.recipe.name == recipe
        for name, shape in shapes.items():
            assert store.array(name).shape == (len(written), *shape), name
        if recipe == "dacwb3d":
            # eyes and mouth are black in every frame; the cheeks are not
            frames = store.array("frames", dtype="float32")
            assert (frames == 0).mean() > 0.05 and (frames[:, :, 100, 10:30] > 0).all()
            continue
        assert set(store.xarray()["flow"].dims) == {"sample", "frame", "y", "x", "uv"}
        flow = store.array("flow", dtype="float32")
        for i, row in enumerate(store.table.itertuples()):
            w, truth = by_id[row.sample_id], load_ground_truth(root, row.sample_id)
            keys = list(row.source_frames)
            assert np.all(np.diff(keys) > 0) and w.onset in keys and row.apex in keys
            assert row.apex_source == ("annotated" if w.apex is not None else "spotted")
            assert 0 < row.flow_error_px <= 2.0**-11 * np.abs(flow[i]).max()
            onset = keys.index(w.onset)
            assert not flow[i, onset].any()
            # magnified: at the apex the expression moves several times its true amplitude
            eyes = truth.landmarks(truth.onset)
            scale = 0.42 * 134 / np.linalg.norm(eyes[42:48].mean(0) - eyes[36:42].mean(0))
            apex_flow = np.hypot(*np.moveaxis(flow[i, keys.index(row.apex)], -1, 0))
            assert apex_flow.max() > 3.0 * truth.amplitude_px * scale


def test_broadbent64_stores_samm_clips_with_photometric_copies(tmp_path, cluster, synth_dataset):
    from flows.preprocess import run_preprocess

    root, written = synth_dataset(
        "samm", n_subjects=2, clips_per_subject=4, seed=5, n_frames=20, size=(240, 320)
    )
    summary = run_preprocess(
        "samm",
        str(root),
        "broadbent64",
        str(tmp_path / "store"),
        n_workers=1,
        dask_address=cluster.scheduler_address,
    )
    assert summary.n_failed == 0
    store = open_store(tmp_path / "store")
    assert len(store.class_names) == 8  # SAMM's eight native classes (paper 001)
    frames = store.array("frames", dtype="float32")
    assert frames.shape == (3 * len(written), 8, 64, 64) and 0 <= frames.min() <= frames.max() <= 1
    children = np.flatnonzero(store.parents >= 0)
    assert len(children) == 2 * len(written)
    for child in children:
        params = store.table["aug_params"][child]
        parent = frames[store.parents[child]]
        assert params["angle_deg"] == 0 and params["shift_px"] == [0, 0] and not params["flip"]
        assert 0.8 <= params["contrast"] <= 1.2 and abs(params["brightness"]) <= 0.1
        # photometric only: the copy is an affine function of its parent's intensities
        inside = (parent > 0.05) & (parent < 0.95) & (frames[child] > 0.0) & (frames[child] < 1.0)
        slope = np.polyfit(parent[inside], frames[child][inside], 1)[0]
        assert abs(slope - params["contrast"]) < 0.02
