"""The long-video store (mer_prep.store.long_*, mer_prep.pipeline.long_sequence): rendered
synthetic long videos in CAS(ME)^2's layout written as a versioned store, read back bit-exactly,
verified, refreshed per video, and bad inputs recorded per video."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from mer_prep.datasets.long_video import scan_long_videos
from mer_prep.errors import (
    ArrayNotFoundError,
    CorruptDataError,
    InvalidArgumentError,
    SchemaError,
)
from mer_prep.pipeline.long_sequence import make_long_version
from mer_prep.pipeline.long_video import locate_face, video_motion
from mer_prep.pipeline.sequence import InProcess
from mer_prep.recipes.long_video import load_long_video_recipe
from mer_prep.store.long_reader import (
    is_long_video_store,
    long_videos,
    open_long_store,
    read_video_motion,
)
from mer_prep.store.reader import open_store
from mer_prep.store.verify import verify_store
from mer_prep.synth.long_video_layouts import write_long_layout
from mer_prep.synth.long_videos import plan_long_video

DATASET = "casme-sq-long"
#: lv64 with two pair distances (3 and 12 frames at 30 fps) and short chunks, so that each
#: 48-frame video is several overlapping time chunks at each k
RECIPE = load_long_video_recipe("lv64").model_copy(
    update={"name": "lv64t", "pair_seconds": 0.1, "more_pair_seconds": (0.4,), "chunk_pairs": 16}
)


def _layout(root: Path, n_videos: int = 3) -> list:
    plans = [
        plan_long_video(s, n_frames=48, fps=30.0, n_me=1, n_mae=0, n_blinks=0, key=DATASET)
        for s in range(n_videos)
    ]
    return write_long_layout(DATASET, root, plans)


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """(dataset root, store, the run) of three 48-frame videos."""
    base = tmp_path_factory.mktemp("long")
    root, store = base / "data", base / "store"
    _layout(root)
    run = make_long_version(DATASET, root, RECIPE, store, InProcess())
    return root, store, run


def test_a_long_video_version_holds_each_videos_motion_bit_exactly(written):
    root, store, run = written
    assert run.summary.n_ok == 3 and run.summary.n_failed == 0 and len(run.computed) == 3
    opened = open_long_store(store)
    assert opened.version_id == run.summary.version_id and is_long_video_store(store)
    videos = {v.key: v for v in scan_long_videos(DATASET, root).videos}
    entries = long_videos(opened)
    assert [e.video_id for e in entries] == sorted(videos)
    first = videos[entries[0].video_id]
    face = locate_face(first, RECIPE)
    for k in (3, 12):  # ks_for(30 fps): 0.1 s and 0.4 s
        stored = read_video_motion(opened, first.key, k)
        direct = video_motion(first, RECIPE, face=face, k=k, chunk_pairs=10_000)
        assert stored.k == k and stored.n_pairs == 48 - k
        for name in ("magnitude", "main_direction", "strain"):
            assert np.array_equal(getattr(stored, name), getattr(direct, name))
        assert np.array_equal(stored.frame_numbers, np.asarray(first.frame_numbers))
    entry = entries[0]
    assert entry.attrs.ks == [3, 12] and entry.attrs.face["box"] == list(face.box)
    assert len(entry.attrs.face["landmarks"]) == 68 and entry.attrs.chunk_pairs == 16
    assert [(t.onset, t.offset, t.kind) for t in entry.truths] == [
        (t.onset, t.offset, t.kind) for t in first.truths()
    ]
    # 45 pairs at k=3 in chunks of 16: three time chunks, each with its checksum
    assert len(entry.attrs.content_crc32c["k3/magnitude"]) == 3


def test_verify_checks_long_versions_and_reports_no_clip_features(written):
    _, store, _ = written
    assert verify_store(store) == [] and verify_store(store, all_versions=True) == []
    with pytest.raises(ArrayNotFoundError, match="long-video motion"):
        open_store(store)


def _damage(store: Path, change) -> None:
    """Commit ``change(root group)`` on ``main`` behind the writer's back: what a flipped bit
    in a chunk or in metadata reads back as."""
    import zarr

    from mer_prep.store.repo import open_repository

    session = open_repository(str(store)).writable_session("main")
    change(zarr.open_group(session.store, mode="r+"))
    session.commit("damage")


def test_damaged_values_or_video_attributes_are_found_by_verify_and_reads(tmp_path, written):
    values, attrs = tmp_path / "values", tmp_path / "attrs"
    shutil.copytree(written[1], values)
    shutil.copytree(written[1], attrs)
    first = open_long_store(values).info.videos[0]

    def other_numbers(root) -> None:  # time chunk 1 of k=3 (pairs 16..31)
        array = root[f"videos/{first}/k3/strain"]
        array[20] = array[20] + 0.5

    def other_fps(root) -> None:
        group = root[f"videos/{first}"]
        group.attrs["fps"] = 25.0

    _damage(values, other_numbers)
    _damage(attrs, other_fps)
    (found,) = verify_store(values)
    assert found.sample_id == first and found.array.endswith("k3/strain chunk 1"), found
    with pytest.raises(CorruptDataError, match="time chunk 1"):
        read_video_motion(values, first, 3)
    read_video_motion(values, first, 12)  # the other arrays still read
    (found,) = verify_store(attrs)
    assert first in found.problem and "digest" in found.problem, found
    with pytest.raises(CorruptDataError, match="digest"):
        read_video_motion(attrs, first)


def test_an_unchanged_rerun_is_up_to_date(written):
    root, store, run = written
    again = make_long_version(DATASET, root, RECIPE, store, InProcess())
    assert again.summary.up_to_date and again.summary.version_id == run.summary.version_id
    assert again.writer is None


def test_reading_names_what_is_missing(written):
    _, store, _ = written
    with pytest.raises(InvalidArgumentError, match="no video"):
        read_video_motion(store, "casme-sq-long/s99/none")
    with pytest.raises(InvalidArgumentError, match="holds k"):
        read_video_motion(store, open_long_store(store).info.videos[0], 5)


def _brighten(path: Path) -> None:
    image = cv2.imread(str(path))
    cv2.imwrite(str(path), np.clip(image.astype(int) + 9, 0, 255).astype(np.uint8))


@pytest.mark.slow  # two runs (about 10 s)
def test_a_refresh_after_one_video_changed_recomputes_that_video_only(tmp_path, written):
    root = tmp_path / "data"
    shutil.copytree(written[0], root)
    store = tmp_path / "store"
    first = make_long_version(DATASET, root, RECIPE, store, InProcess())
    before = {e.video_id: read_video_motion(store, e.video_id) for e in long_videos(store)}
    changed = scan_long_videos(DATASET, root).videos[1]
    _brighten(Path(changed.frame_paths[20]))
    second = make_long_version(DATASET, root, RECIPE, store, InProcess())
    assert second.computed == (changed.key,)
    assert second.summary.n_recomputed == 1 and second.summary.n_reused == 2
    assert second.summary.reused_from == first.summary.version_id
    assert second.summary.version_id != first.summary.version_id
    after = {e.video_id: read_video_motion(store, e.video_id) for e in long_videos(store)}
    for video_id, motion in before.items():
        same = np.array_equal(motion.magnitude, after[video_id].magnitude)
        assert same == (video_id != changed.key), video_id
    assert verify_store(store, all_versions=True) == []
    # a spotting run asked for the first version (as a commit's trigger asks) reads that one
    from mer_prep.spotting.run import store_videos

    for version, motions in ((first.summary.version_id, before), (None, after)):
        videos, info = store_videos(str(store), version)
        assert info["version_id"] == (version or second.summary.version_id)
        changed_video = next(v for v in videos if v.key == changed.key)
        assert np.array_equal(changed_video.first.magnitude, motions[changed.key].magnitude), (
            version
        )


@pytest.mark.slow  # a run of three videos (about 5 s)
def test_a_corrupt_frame_or_no_face_fails_that_video_only(tmp_path, written):
    root = tmp_path / "data"
    shutil.copytree(written[0], root)
    videos = scan_long_videos(DATASET, root).videos
    corrupt = Path(videos[0].frame_paths[30])
    corrupt.write_bytes(corrupt.read_bytes()[:200])  # a JPEG cut short
    for path in videos[2].frame_paths[:8]:  # a blank first frames: no face on them
        cv2.imwrite(path, np.full((128, 128, 3), 128, np.uint8))
    run = make_long_version(DATASET, root, RECIPE, tmp_path / "store", InProcess())
    failed = {f.sample_id: f for f in run.summary.failures if f.stage != "scan"}
    assert set(failed) == {videos[0].key, videos[2].key} and run.summary.n_ok == 1
    cut = failed[videos[0].key]
    assert cut.stage == "process" and "\n" not in cut.message
    assert videos[0].key in cut.message and cut.file.endswith(corrupt.name)
    assert not cut.file.startswith("/")  # relative to the dataset root
    assert failed[videos[2].key].stage == "face"
    entries = {e.video_id: e for e in long_videos(tmp_path / "store")}
    assert not entries[videos[0].key].ok and entries[videos[1].key].ok
    with pytest.raises(InvalidArgumentError, match="failed when it was computed"):
        read_video_motion(tmp_path / "store", videos[0].key)
    assert verify_store(tmp_path / "store") == []


def test_a_clip_store_is_not_opened_as_a_long_video_store(tmp_path):
    from mer_prep.store.repo import open_repository

    open_repository(str(tmp_path / "empty"), create=True)
    assert not is_long_video_store(tmp_path / "empty")
    with pytest.raises(SchemaError):
        from mer_prep.store.long_layout import long_version_attrs

        long_version_attrs({"schema": "mer-prep/feature-store"})


def test_a_request_with_a_long_video_recipe_runs_the_long_video_sequence(written):
    from mer_prep.errors import UnknownDatasetError
    from mer_prep.pipeline.local import commit_request
    from mer_prep.pipeline.request import PreprocessRequest
    from mer_prep.recipes.long_video import LongVideoRecipe

    root, store, run = written
    with pytest.raises(UnknownDatasetError, match="needs a long-video dataset"):
        PreprocessRequest(dataset="casme2", root=str(root), recipe="lv128")
    with pytest.raises(InvalidArgumentError, match="is a long-video dataset"):
        PreprocessRequest(dataset=DATASET, root=str(root), recipe="ha3d")
    request = PreprocessRequest(dataset=DATASET, root=str(root), recipe=RECIPE, store=str(store))
    assert request.is_long_video and isinstance(request.check_inputs(), LongVideoRecipe)
    plan, writer = commit_request(request)  # make_version hands it to make_long_version
    assert plan.version_id == run.summary.version_id and writer is None  # up to date


@pytest.mark.slow  # a run of three videos (about 10 s)
def test_a_tracking_recipe_finds_the_face_per_chunk_and_streams_exactly(tmp_path, written):
    root, _, untracked = written
    recipe = RECIPE.model_copy(update={"name": "lv64track", "track": True})
    run = make_long_version(DATASET, root, recipe, tmp_path / "store", InProcess())
    assert run.summary.n_ok == 3 and run.summary.version_id != untracked.summary.version_id
    video = scan_long_videos(DATASET, root).videos[0]
    entry = long_videos(tmp_path / "store")[0]
    assert entry.video_id == video.key and len(entry.attrs.chunk_boxes) == 3  # 45 pairs / 16
    assert entry.attrs.chunk_boxes[0] == entry.attrs.face["box"]
    stored = read_video_motion(tmp_path / "store", video.key, 3)
    direct = video_motion(video, recipe, 3)  # chunked at the recipe's 16 pairs, tracked too
    assert np.array_equal(stored.magnitude, direct.magnitude)
    assert np.array_equal(stored.strain, direct.strain)


def test_info_lists_a_long_video_versions_videos(written):
    from click.testing import CliRunner

    from mer_prep.cli import main
    from mer_prep.store.long_reader import long_videos

    _, store, _ = written
    shown = CliRunner().invoke(main, ["info", str(store)])
    assert shown.exit_code == 0, shown.output
    opened = open_long_store(store)
    assert f"version {opened.version_id}" in shown.output
    entries = long_videos(opened)
    assert f"videos: {len(entries)} ok of {len(entries)}" in shown.output
    for entry in entries:
        (line,) = [x for x in shown.output.splitlines() if x.strip().startswith(entry.video_id)]
        kinds = [t.kind for t in entry.truths]
        assert f"{entry.attrs.n_frames} frames at 30 fps" in line and line.endswith("ok")
        assert f"{kinds.count('me')} ME / {kinds.count('mae')} MaE" in line


def test_show_of_a_long_video_store_lists_its_videos(written, tmp_path):
    from click.testing import CliRunner

    from mer_prep.cli import main

    _, store, _ = written
    out = tmp_path / "long.html"
    shown = CliRunner().invoke(main, ["show", str(store), "--out", str(out)])
    assert shown.exit_code == 0, shown.output
    page = out.read_text()
    assert "<h2>Videos</h2>" in page and "Spotting runs" in page
    for video_id in open_long_store(store).info.videos:
        assert f"<td>{video_id}</td>" in page
