"""Streaming one synthetic long video (mer_prep.pipeline.long_video): chunks overlapping by k
concatenate to exactly the whole video's VideoMotion."""

from __future__ import annotations

import numpy as np

from mer_prep.datasets.long_video import scan_long_videos
from mer_prep.pipeline.long_video import chunk_ranges, locate_face, video_motion
from mer_prep.recipes.long_video import is_long_video_recipe, load_long_video_recipe
from mer_prep.synth.long_video_layouts import write_long_layout
from mer_prep.synth.long_videos import plan_long_video


def test_chunks_concatenate_to_the_whole_video(tmp_path):
    plan = plan_long_video(0, n_frames=60, fps=30.0, n_me=1, n_mae=0, n_blinks=1, key="t")
    write_long_layout("casme-sq-long", tmp_path, [plan])
    video = scan_long_videos("casme-sq-long", tmp_path).videos[0]
    recipe = load_long_video_recipe("lv64")
    face = locate_face(video, recipe)
    whole = video_motion(video, recipe, face=face, chunk_pairs=10_000)
    chunked = video_motion(video, recipe, face=face, chunk_pairs=7)
    k = recipe.k_for(30.0)
    assert whole.k == k and whole.n_pairs == 60 - k and whole.roi_names == recipe.regions
    for name in ("magnitude", "main_direction", "strain"):
        assert np.array_equal(getattr(whole, name), getattr(chunked, name))
    assert np.array_equal(whole.frame_numbers, np.asarray(video.frame_numbers))


def test_chunk_ranges_and_recipe_kinds():
    assert [(r.start, r.stop) for r in chunk_ranges(10, 4)] == [(0, 4), (4, 8), (8, 10)]
    assert is_long_video_recipe("lv128") and not is_long_video_recipe("ha3d")
    assert load_long_video_recipe("lv128").k_for(200.0) == 40
