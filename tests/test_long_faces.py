"""The aligned faces of a long-video store (``faces``: mer_prep.store.long_*, written by the
time chunks of mer_prep.pipeline.long_jobs) and the apex contact strips drawn from them
(mer_prep.plot.spot_timeline, ``mer-prep show``): stored as the pipeline aligned them, each
frame written once by one time chunk, checked on read and by verify, switched off by the
recipe, kept by a refresh, read from the version a spotting run read."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import zarr
from click.testing import CliRunner

from mer_prep.cli import main
from mer_prep.datasets.long_video import scan_long_videos
from mer_prep.errors import ArrayNotFoundError, CorruptDataError, VersionNotFoundError
from mer_prep.pipeline.long_sequence import make_long_version
from mer_prep.pipeline.long_video import (
    aligned_frames,
    chunk_ranges,
    faces_to_store,
    grey_levels,
    locate_face,
)
from mer_prep.pipeline.sequence import InProcess
from mer_prep.plot.spot_timeline import spot_page, spot_run_markdown
from mer_prep.recipes.long_video import load_long_video_recipe
from mer_prep.spotting.run import spot_store
from mer_prep.store.long_reader import long_videos, open_long_store, stored_faces
from mer_prep.store.repo import open_repository
from mer_prep.store.verify import verify_store
from mer_prep.synth.long_video_layouts import write_long_layout
from mer_prep.synth.long_videos import plan_long_video

DATASET = "casme-sq-long"
N_FRAMES = 50
#: lv64 at k 3 and 12 (30 fps) in chunks of 16: at the smallest k, 47 pairs are time chunks
#: 0..15, 16..31 and 32..46, while the 50 frames are four zarr chunks of ``faces`` (the last
#: two frames alone): the last time chunk writes two of them (frames 32..49)
RECIPE = load_long_video_recipe("lv64").model_copy(
    update={
        "name": "lv64faces",
        "pair_seconds": 0.1,
        "more_pair_seconds": (0.4,),
        "chunk_pairs": 16,
    }
)


def _layout(root: Path) -> None:
    """Three videos of two subjects (casme-sq-long puts two videos per participant)."""
    plans = [
        plan_long_video(s, n_frames=N_FRAMES, fps=30.0, n_me=1, n_mae=0, n_blinks=0, key="faces")
        for s in range(3)
    ]
    write_long_layout(DATASET, root, plans, quirks=False)


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """(dataset root, store, the run) of three 50-frame videos with their faces stored."""
    base = tmp_path_factory.mktemp("faces")
    root, store = base / "data", base / "store"
    _layout(root)
    return root, store, make_long_version(DATASET, root, RECIPE, store, InProcess())


def test_each_smallest_k_chunk_stores_its_own_frames_once(written):
    """Which frames each time chunk's job stores: together every frame once, each job's from
    a zarr chunk boundary of ``faces`` (so no two forks write one chunk), for k > 1."""
    video = scan_long_videos(DATASET, written[0]).videos[0]
    assert video.n_frames == N_FRAMES and RECIPE.ks_for(video.fps) == (3, 12)
    stored = []
    for k in (3, 12):
        for pairs in chunk_ranges(N_FRAMES - k, RECIPE.chunk_pairs):
            frames = np.zeros((len(pairs) + k, 2, 2), np.float32)
            faces = faces_to_store(video, RECIPE, k, pairs, frames)
            if k == 12:
                assert faces is None  # only the smallest k stores faces
                continue
            assert faces is not None and faces.dtype == np.uint8
            assert pairs.start % RECIPE.chunk_pairs == 0
            stored.append(range(pairs.start, pairs.start + len(faces)))
    assert [(r.start, r.stop) for r in stored] == [(0, 16), (16, 32), (32, 50)]
    off = RECIPE.model_copy(update={"store_faces": False})
    assert faces_to_store(video, off, 3, range(0, 16), np.zeros((19, 2, 2), np.float32)) is None


def test_stored_faces_are_the_pipelines_aligned_frames(written):
    root, store, run = written
    assert run.summary.n_ok == 3
    opened = open_long_store(store)
    assert opened.faces_size == (64, 64)
    videos = {v.key: v for v in scan_long_videos(DATASET, root).videos}
    for entry in long_videos(opened):
        video = videos[entry.video_id]
        aligned = aligned_frames(video, locate_face(video, RECIPE), RECIPE.size, 0, N_FRAMES)
        stored = opened.faces(entry.video_id)
        assert stored.shape == (N_FRAMES, 64, 64) and stored.dtype == np.uint8
        # round(255 * aligned), every frame written (an unwritten one would read as zeros)
        expected = np.rint(aligned * 255.0)
        assert np.abs(stored.astype(np.int16) - expected).max() <= 1
        assert np.array_equal(stored, grey_levels(aligned))
        assert stored.reshape(N_FRAMES, -1).mean(axis=1).min() > 20  # a face, not fill
        # one CRC-32C per zarr chunk: frames 0..15, 16..31, 32..47, 48..49
        assert len(entry.attrs.content_crc32c["faces"]) == 4
        group = zarr.open_group(opened.session.store, mode="r")
        array = group[f"videos/{entry.video_id}/faces"]
        dims = tuple(array.metadata.dimension_names)
        assert array.chunks == (16, 64, 64) and dims == ("frame", "y", "x")
    # by frame number (the dataset's, 1-based here) and by position, in the order asked
    first = long_videos(opened)[0]
    numbers = [int(n) for n in videos[first.video_id].frame_numbers]
    by_number = opened.faces(first.video_id, frames=[numbers[49], numbers[3]])
    by_position = opened.faces(first.video_id, positions=[49, 3])
    assert np.array_equal(by_number, by_position)
    assert np.array_equal(by_position, opened.faces(first.video_id)[[49, 3]])
    assert verify_store(store) == []


def test_info_says_the_faces_are_kept(written):
    shown = CliRunner().invoke(main, ["info", str(written[1])])
    assert shown.exit_code == 0, shown.output
    assert "faces: 64x64 uint8 per frame (4 KiB raw)" in shown.output


def _damage(store: Path, change) -> None:
    """Commit ``change(root group)`` on ``main`` behind the writer's back."""
    session = open_repository(str(store)).writable_session("main")
    change(zarr.open_group(session.store, mode="r+"))
    session.commit("damage")


def test_a_flipped_byte_in_a_faces_chunk_is_found_by_verify_and_reads(tmp_path, written):
    store = tmp_path / "store"
    shutil.copytree(written[1], store)
    video_id = open_long_store(store).info.videos[1]

    def flip(root) -> None:  # frame 20: zarr chunk 1 (frames 16..31)
        array = root[f"videos/{video_id}/faces"]
        array[20, 30, 30] = array[20, 30, 30] ^ 0x01

    _damage(store, flip)
    (found,) = verify_store(store)
    assert found.sample_id == video_id and found.array.endswith("faces chunk 1"), found
    opened = open_long_store(store)
    with pytest.raises(CorruptDataError, match="time chunk 1"):
        opened.faces(video_id, positions=[20])
    # the chunks not asked for are not read: frames of chunks 0 and 3 still read
    assert opened.faces(video_id, positions=[0, 49]).shape == (2, 64, 64)


def test_store_faces_off_stores_none_and_reads_say_so(tmp_path, written):
    root = written[0]
    recipe = RECIPE.model_copy(update={"name": "lv64nofaces", "store_faces": False})
    assert recipe.hash != RECIPE.hash
    store = tmp_path / "store"
    run = make_long_version(DATASET, root, recipe, store, InProcess())
    assert run.summary.n_ok == 3 and verify_store(store) == []
    opened = open_long_store(store)
    video_id = opened.info.videos[0]
    group = zarr.open_group(opened.session.store, mode="r")
    assert "faces" not in group[f"videos/{video_id}"]
    assert "faces" not in long_videos(opened)[0].attrs.content_crc32c
    assert opened.faces_size is None
    with pytest.raises(ArrayNotFoundError) as raised:
        opened.faces(video_id, positions=[0])
    assert "\n" not in str(raised.value) and "store_faces is off" in str(raised.value)
    get = stored_faces(store)
    with pytest.raises(ArrayNotFoundError, match="store_faces is off"):
        get(video_id, [1])
    shown = CliRunner().invoke(main, ["info", str(store)])
    assert "faces: not stored (recipe store_faces off)" in shown.output


def _brighten(path: Path) -> None:
    image = cv2.imread(str(path))
    cv2.imwrite(str(path), np.clip(image.astype(int) + 9, 0, 255).astype(np.uint8))


def test_a_refresh_keeps_the_faces_of_unchanged_videos(tmp_path, written):
    root, store = tmp_path / "data", tmp_path / "store"
    shutil.copytree(written[0], root)
    shutil.copytree(written[1], store)
    before = open_long_store(store)
    old = {v: before.faces(v) for v in before.info.videos}
    changed = scan_long_videos(DATASET, root).videos[2]
    _brighten(Path(changed.frame_paths[40]))
    again = make_long_version(DATASET, root, RECIPE, store, InProcess())
    assert again.computed == (changed.key,) and again.summary.n_reused == 2
    after = open_long_store(store)
    assert after.version_id != before.version_id
    for video_id, faces in old.items():
        same = np.array_equal(faces, after.faces(video_id))
        assert same == (video_id != changed.key), video_id
    brighter = after.faces(changed.key, positions=[40]).astype(int) - old[changed.key][40]
    assert brighter.mean() > 4  # the frame made 9 levels brighter, seen through the alignment
    assert verify_store(store, all_versions=True) == []


def _strip_count(page: str) -> int:
    return len(re.findall(r'<img alt="apex strip ', page))


def test_show_draws_an_apex_strip_under_each_timeline_with_predictions(tmp_path, written):
    store = tmp_path / "store"
    shutil.copytree(written[1], store)
    *_, record = spot_store(str(store), "threshold")
    predicted = {p.video_key for p in record.predictions()}
    drawn = record.video_keys  # three videos: every one is drawn (up to four per run)
    assert predicted and len(drawn) == 3
    out = tmp_path / "page.html"
    shown = CliRunner().invoke(main, ["show", str(store), "--out", str(out)])
    assert shown.exit_code == 0, shown.output
    page = out.read_text()
    assert _strip_count(page) == len(predicted & set(drawn)) and "no apex strips" not in page
    for key in predicted:
        assert f'alt="apex strip {key}"' in page
    # the Prefect artifact: a strip after each timeline with predictions
    get = stored_faces(store, record.attrs["store"])
    text = spot_run_markdown(record, timelines=3, get_faces=get)
    assert text.count("](data:image/png;base64,") == 3 + len(predicted)
    # a version the run read that is gone: one line, no strips, nothing raised
    gone = stored_faces(store, {"version_id": "v-0000000000000000"})
    with pytest.raises(VersionNotFoundError):
        gone(record.video_keys[0], [1])
    page = spot_page([record], "gone", faces=lambda _record: gone)
    assert _strip_count(page) == 0 and page.count("no apex strips:") == 1
    assert "v-0000000000000000" in page
