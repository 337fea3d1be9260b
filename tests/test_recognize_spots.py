"""Issue 24 item 2: spot-then-recognise. The MEs a spotting run found in rendered synthetic long
videos (a CAS(ME)^2 layout on disk) are cut from the videos' frames, processed as ``ststnet28``
clips, and classified leave one subject out by STSTNet trained on the training subjects'
annotated MEs; STRS scores the whole. Planted emotions move different facial regions, so the
classes are learnable: recognition scores well above chance, shuffled labels at chance."""

from __future__ import annotations

import numpy as np
import pytest

from mer_prep.datasets.long_video import scan_long_videos
from mer_prep.errors import InvalidArgumentError
from mer_prep.recognize_spots.intervals import interval_sample
from mer_prep.recognize_spots.recognizer import RecognizerSettings
from mer_prep.recognize_spots.run import recognize_spots, recognized_record
from mer_prep.spotting.board import spot_leaderboard
from mer_prep.spotting.records import list_spot_runs, save_spot_run, spot_record
from mer_prep.spotting.tuning import SpotVideo, spot_loso
from mer_prep.synth.long_motion import planted_motion
from mer_prep.synth.long_video_layouts import write_long_layout
from mer_prep.synth.long_videos import plan_long_video


@pytest.fixture(scope="module")
def spotted(tmp_path_factory):
    """8 videos of 4 subjects (5 MEs, 1 MaE, 1 blink each) written as CAS(ME)^2 long videos,
    spotted from their planted region motion (the spotters' own tests cover motion from
    frames), and the run's record."""
    root = tmp_path_factory.mktemp("str") / "casme-sq-long"
    plans = [
        plan_long_video(i, n_frames=300, n_me=5, n_mae=1, n_blinks=1, key="casme-sq-long")
        for i in range(8)
    ]
    written = write_long_layout("casme-sq-long", root, plans, quirks=False)
    videos = {v.key: v for v in scan_long_videos("casme-sq-long", root)}
    to_spot = []
    for plan, done in zip(plans, written, strict=True):
        video = videos[done.key]
        motions = {
            k: planted_motion(plan, video_id=video.key, subject=video.subject, k=k, seed=1)
            for k in (3, 8)
        }
        to_spot.append(SpotVideo(motions, tuple(video.truths())))
    result = spot_loso(to_spot, "threshold")
    return list(videos.values()), spot_record(result, store={"location": str(root)})


def test_an_interval_is_a_clip_of_the_videos_own_frames(spotted):
    videos, _ = spotted
    video = videos[0]
    me = next(i for i in video.intervals if i.kind == "me")
    sample = interval_sample(video, onset=me.onset, apex=None, offset=me.offset, emotion="x")
    assert sample.frame_numbers == tuple(range(me.onset, me.offset + 1))
    assert sample.frame_paths[0].endswith(f"img{me.onset}.jpg")
    assert (sample.onset, sample.offset, sample.apex) == (me.onset, me.offset, None)
    with pytest.raises(InvalidArgumentError, match=r"holds 0 of its frames"):
        interval_sample(video, onset=10_000, apex=None, offset=10_010)


@pytest.mark.slow  # about two minutes: ~80 intervals through TV-L1, 2 x 4 folds of STSTNet
@pytest.mark.timeout(1800)  # a loaded machine (other suites beside it) takes several times that
def test_spotted_mes_are_recognised_above_chance_and_shuffled_labels_are_not(spotted, tmp_path):
    videos, record = spotted
    settings = RecognizerSettings(model="ststnet", seed=0)  # the preset's 500 epochs
    cache: dict = {}
    real = recognize_spots(record, videos, settings, cache=cache)
    assert real.score.spotting.f1 > 0.8  # the planted MEs are spotted
    assert [f["n_recognised"] for f in real.folds] == [f["n_spotted_me"] for f in real.folds]
    assert all(f["n_trained"] == 30 for f in real.folds)  # the other 3 subjects' 3 x 2 x 5 MEs
    classes = len(real.classes)
    assert classes == 3 and real.score.f1_analysis > 2 / classes, real.score.as_dict()
    shuffled = recognize_spots(record, videos, settings, shuffle_seed=1, cache=cache)
    assert shuffled.score.f1_analysis < real.score.f1_analysis - 0.3, shuffled.score.as_dict()
    assert shuffled.score.spotting == real.score.spotting  # the same spotted intervals
    # every recognised ME carries a class; MaEs none
    me = [p for p in real.predictions if p.kind == "me"]
    assert all(p.emotion in real.classes for p in me)
    assert all(p.emotion is None for p in real.predictions if p.kind == "mae")
    # recorded beside the spotting run: a row of its own with its STRS
    from mer_prep.store.repo import StoreLocation, open_repository

    store = str(tmp_path / "store")
    open_repository(StoreLocation.parse(store), create=True)  # a store to record the runs on
    save_spot_run(store, record)
    save_spot_run(store, recognized_record(record, real))
    board = spot_leaderboard(list_spot_runs(store))
    strs_rows = [r for r in board.rows if np.isfinite(r.stat("strs")[0])]
    (row,) = strs_rows
    assert row.stat("strs")[0] == pytest.approx(real.score.strs)
    assert len(board.rows) == 2


def test_recognising_planted_motion_is_refused_in_one_line(tmp_path):
    from click.testing import CliRunner

    from mer_prep.cli import main

    store = str(tmp_path / "s")
    done = CliRunner().invoke(
        main, ["spot", store, "--method", "mdmd", "--synthetic", "--recognize", "ststnet"]
    )
    assert done.exit_code == 2 and done.output.count("\n") == 1
    assert "--root" in done.output
