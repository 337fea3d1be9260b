"""The preprocess flow with a long-video recipe: faces and time chunks as Prefect tasks on a
local two-worker Dask cluster write the same version, bit for bit, as the in-process run."""

from __future__ import annotations

import numpy as np
import pytest

from mer_prep.pipeline.long_sequence import make_long_version
from mer_prep.pipeline.sequence import InProcess
from mer_prep.store.long_reader import long_videos, read_video_motion
from mer_prep.store.verify import verify_store
from mer_prep.synth.long_video_layouts import write_long_layout
from mer_prep.synth.long_videos import plan_long_video

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_server")]


def test_the_flow_on_dask_writes_the_in_process_version(tmp_path):
    from flows.preprocess import run_preprocess

    plans = [
        plan_long_video(s, n_frames=48, fps=30.0, n_me=1, n_mae=0, n_blinks=0, key="f")
        for s in range(2)
    ]
    write_long_layout("casme-sq-long", tmp_path / "data", plans)
    here = make_long_version(
        "casme-sq-long", tmp_path / "data", "lv64", tmp_path / "a", InProcess()
    )
    summary = run_preprocess(
        "casme-sq-long", str(tmp_path / "data"), "lv64", str(tmp_path / "b"), n_workers=2
    )
    assert summary.version_id == here.summary.version_id and summary.n_ok == 2
    assert summary.n_recomputed == 2 and verify_store(tmp_path / "b") == []
    for entry in long_videos(tmp_path / "a"):
        a = read_video_motion(tmp_path / "a", entry.video_id)
        b = read_video_motion(tmp_path / "b", entry.video_id)
        assert np.array_equal(a.magnitude, b.magnitude) and np.array_equal(a.strain, b.strain)
    again = run_preprocess(
        "casme-sq-long", str(tmp_path / "data"), "lv64", str(tmp_path / "b"), n_workers=1
    )
    assert again.up_to_date and again.version_id == summary.version_id
