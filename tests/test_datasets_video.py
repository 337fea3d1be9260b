"""Samples read from videos: CAS(ME)^2's ``rawvideo/`` against its ``rawpic/`` frames, and a
lab's manifest of frame folders and videos (whose paths may not leave the root)."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from layout_helpers import casme_sq_layout
from synth_clips import FRAMES, by_id, clip

from mer_prep.datasets import scan_dataset
from mer_prep.pipeline.fingerprint import fingerprint_inputs
from mer_prep.pipeline.process import decode_clip_frames
from mer_prep.recipes import load_recipe
from mer_prep.synth.layouts import SynthClip, write_layout


def _smooth_frames(n: int, seed: int) -> np.ndarray:
    """(n, 48, 64, 3) uint8 frames with image-like (smooth) content, drifting over time."""
    rng = np.random.default_rng(seed)
    base = cv2.GaussianBlur(rng.uniform(0, 255, (48, 64, 3)).astype(np.float32), (0, 0), 3)
    base = (base - base.min()) / np.ptp(base) * 200 + 20
    return np.stack([np.clip(np.roll(base, t, axis=1) + t, 0, 255) for t in range(n)]).astype(
        np.uint8
    )


@pytest.fixture(scope="module")
def casme_sq_with_videos(tmp_path_factory) -> Path:
    """CAS(ME)^2 look-alike with rawpic JPEGs and lossless rawvideo; two MEs share a recording."""
    root = tmp_path_factory.mktemp("casme_sq") / "CASME_SQ"
    clips = [
        SynthClip(
            1, "negative", _smooth_frames(10, 1), 2, 4, 7, clip="anger1", first_frame_number=3
        ),
        SynthClip(1, "negative", _smooth_frames(8, 2), 1, 3, 5, clip="anger1"),
        SynthClip(2, "positive", _smooth_frames(9, 3), 1, 5, 6, clip="happy1"),
        SynthClip(
            2, "negative", _smooth_frames(12, 4), 3, 6, 9, clip="disgust1", first_frame_number=20
        ),
    ]
    write_layout("casme-sq", root, clips, videos=True)
    return root


def test_rawvideo_samples_equal_the_rawpic_samples(casme_sq_with_videos: Path) -> None:
    root = casme_sq_with_videos
    pictures = by_id(scan_dataset("casme-sq", root, kind="all").samples)
    videos = scan_dataset("casme-sq", root, kind="all", source="rawvideo")
    assert (
        videos.problems == []
        and sorted(pictures) == sorted(s.sample_id for s in videos)
        and len(videos) == 4
    )
    for video in videos:
        frames = pictures[video.sample_id]
        # 0-based video indices: rawpic imgN is video frame N-1
        assert video.frame_paths == () and Path(video.video_path).parent.parent.name == "rawvideo"
        assert video.frame_numbers == tuple(n - 1 for n in frames.frame_numbers)
        assert (video.onset, video.apex, video.offset) == (
            frames.onset - 1,
            frames.apex - 1,
            frames.offset - 1,
        )
        assert (video.label, video.emotion, video.fps) == (frames.label, frames.emotion, frames.fps)
        assert ("frame_numbering", "video index = sheet frame - 1") in video.extra
        # what the pipeline decodes: the same pixels within JPEG tolerance (the video is lossless)
        positions = np.arange(video.n_frames)
        from_video = decode_clip_frames(video, positions).astype(np.int16)
        from_pictures = decode_clip_frames(frames, positions).astype(np.int16)
        difference = np.abs(from_video - from_pictures)
        assert from_video.shape == from_pictures.shape
        assert difference.mean() < 1.0 and difference.max() <= 12  # one frame off: mean > 2


def test_the_video_fingerprint_covers_its_bytes(casme_sq_with_videos: Path, tmp_path: Path) -> None:
    (sample, *_) = scan_dataset(
        "casme-sq", casme_sq_with_videos, kind="all", source="rawvideo"
    ).samples
    recipe = load_recipe("mbcc64")
    fingerprint, readable = fingerprint_inputs(sample, recipe)
    assert readable
    copy = tmp_path / "copy.avi"
    data = bytearray(Path(sample.video_path).read_bytes())
    copy.write_bytes(bytes(data))
    moved = type(sample)(**{**sample.__dict__, "video_path": str(copy)})
    assert fingerprint_inputs(moved, recipe)[0] == fingerprint  # same bytes, same fingerprint
    data[len(data) // 2] ^= 0xFF
    copy.write_bytes(bytes(data))
    os.utime(copy, ns=(1, 1))
    assert fingerprint_inputs(moved, recipe)[0] != fingerprint
    copy.unlink()
    assert fingerprint_inputs(moved, recipe)[1] is False


def test_rawvideo_problems_are_named(tmp_path: Path) -> None:
    casme_sq_layout(
        tmp_path,
        (1, "negative", "anger1"),
        (2, "positive", "happy1"),
        (2, "negative", "disgust1"),
        videos=True,
    )
    rawvideo = tmp_path / "rawvideo"
    (rawvideo / "s16" / "16_0101disgustingteeth.avi").unlink()
    (rawvideo / "s16" / "16_0507climbing.avi").write_bytes(b"")  # a video no row names
    (rawvideo / "s15" / "15_0401girlcrashing.avi").write_bytes(b"")  # an empty (broken) video
    scan = scan_dataset("casme-sq", tmp_path, source="rawvideo")
    problems = {p.sample_id: p.message for p in scan.problems}
    assert "no video file" in problems["casme-sq/s16/disgust1_1"]
    assert problems["casme-sq/s16/16_0507climbing.avi"] == "video file has no annotation row"
    assert (
        "cannot open video" in problems["casme-sq/s15/anger1_1"]
        or "no frame count" in problems["casme-sq/s15/anger1_1"]
    )
    assert [s.sample_id for s in scan] == ["casme-sq/s16/happy1_1"]
    with pytest.raises(FileNotFoundError, match="rawvideo"):
        scan_dataset("casme-sq", tmp_path / "rawpic", source="rawvideo")


# --- a lab's manifest -----------------------------------------------------------------------------


def test_manifest_reads_frame_folders_and_videos(tmp_path: Path) -> None:
    clips = [
        clip(1, "Happy", fps=200, action_units="6+12"),
        clip(1, "sad", fps=200, n=8, onset=2, apex=4, offset=6),
        clip(2, "happy", fps=100),
        clip(2, "neutral-ish", fps=100, action_units="R14 or 14"),
    ]
    written = write_layout("manifest", tmp_path, clips, variant="mixed")
    scan = scan_dataset("manifest", tmp_path)
    assert scan.problems == []
    samples = by_id(scan.samples)
    assert sorted(samples) == sorted(w.sample_id for w in written)
    frames, video = samples["manifest/p01/take1"], samples["manifest/p01/take2"]
    assert frames.frame_paths == written[0].frame_paths and frames.video_path is None
    assert (frames.onset, frames.apex, frames.offset, frames.fps) == (2, 4, 5, 200.0)
    assert frames.label == "happy" and frames.aus == (6, 12) and frames.subject == "manifest/p01"
    assert Path(video.video_path).name == "p01_take2.avi" and video.frame_paths == ()
    assert (video.onset, video.apex, video.offset, video.frame_numbers) == (
        2,
        4,
        6,
        (2, 3, 4, 5, 6),
    )
    # the video's frames are the ones written, losslessly
    decoded = decode_clip_frames(video, np.arange(video.n_frames))
    expected = np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in FRAMES[2:7]])
    assert np.abs(decoded.astype(int) - expected).max() <= 1
    assert (
        samples["manifest/p02/take2"].label == "neutral-ish"
    )  # under native every label is a class
    assert scan_dataset("manifest", tmp_path, prefix="lab7").samples[0].subject.startswith("lab7/")


def test_manifest_paths_may_not_leave_the_root(tmp_path: Path) -> None:
    root = tmp_path / "lab"
    write_layout("manifest", root, [clip(1, "happy"), clip(2, "sad")])
    outside = tmp_path / "elsewhere"
    write_layout("manifest", outside, [clip(3, "happy")])  # real frames, outside the root
    (root / "frames" / "link").symlink_to(outside / "frames" / "p03" / "take1")
    lines = (root / "manifest.csv").read_text().splitlines()
    lines += [
        "p03,escape,../elsewhere/frames/p03/take1,2,4,5,happy,100,",
        f"p03,absolute,{outside / 'frames' / 'p03' / 'take1'},2,4,5,happy,100,",
        "p03,linked,frames/link,2,4,5,happy,100,",
        "p03,missing,frames/p09/take1,2,4,5,happy,100,",
        "p03,nofps,frames/p01/take1,2,4,5,happy,,",
        "p03,a/b,frames/p01/take1,2,4,5,happy,100,",
    ]
    (root / "manifest.csv").write_text("\n".join(lines) + "\n")
    scan = scan_dataset("manifest", root)
    assert sorted(s.sample_id for s in scan) == ["manifest/p01/take1", "manifest/p02/take1"]
    problems = {p.sample_id: p for p in scan.problems}
    for name, row in (("escape", 4), ("absolute", 5), ("linked", 6)):
        problem = problems[f"manifest/p03/{name}"]
        assert "leaves the dataset root" in problem.message and problem.file.endswith(
            f"manifest.csv:{row}"
        )
    assert "clip folder or video" in problems["manifest/p03/missing"].message
    assert problems["manifest/p03/nofps"].message == "fps 'blank' is not a frame rate"
    assert "is a path" in problems["manifest row 9 (p03/a/b)"].message


def test_manifest_as_xlsx(tmp_path: Path) -> None:
    from mer_prep.synth import sheets

    written = write_layout("manifest", tmp_path, [clip(1, "happy", fps=30.0)], variant="video")
    rows = [("p01", "take1", "videos/p01_take1.avi", 1, None, 4, "happy", 30, "")]
    (tmp_path / "manifest.csv").unlink()
    sheets.manifest_file(tmp_path, rows, xlsx=True)
    (sample,) = scan_dataset("manifest", tmp_path).samples
    assert (
        sample.sample_id == written[0].sample_id
        and sample.apex is None
        and sample.frame_numbers == (1, 2, 3, 4)
    )
