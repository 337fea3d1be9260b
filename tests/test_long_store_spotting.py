"""`mer-prep spot STORE` on a long-video store made from rendered synthetic long videos: the
motion read from the store (mer_prep.spotting.run.store_videos) spotted end to end, by the
training-free spotters and a learned one, far above random intervals of the same kinds and
lengths; and the one-line refusal of a clip store."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from mer_prep.cli import main
from mer_prep.evaluation.spotting import score_spotting
from mer_prep.evaluation.spotting_intervals import SpotPrediction
from mer_prep.pipeline.long_sequence import make_long_version
from mer_prep.pipeline.sequence import InProcess
from mer_prep.recipes.long_video import load_long_video_recipe
from mer_prep.spotting.records import load_spot_run
from mer_prep.spotting.run import store_videos
from mer_prep.synth.long_video_layouts import write_long_layout
from mer_prep.synth.long_videos import plan_long_video

DATASET = "casme-sq-long"
#: lv128 at k 3 and 12 frames (0.1 s and 0.4 s at 30 fps): the MEs' and the MaEs' scales
RECIPE = load_long_video_recipe("lv128").model_copy(
    update={"name": "lv128spot", "pair_seconds": 0.1, "more_pair_seconds": (0.4,)}
)


def _random_f1(predictions, truths, n_frames: dict[str, int], n: int = 20) -> float:
    """Mean overall F1 of the predictions moved to random places of their videos (same kind
    and length): the baseline a spotter must beat."""
    rng = np.random.default_rng(0)
    scores = []
    for _ in range(n):
        moved = []
        for p in predictions:
            length = p.offset - p.onset
            onset = int(rng.integers(1, n_frames[p.video_key] - length + 1))
            moved.append(SpotPrediction(p.video, onset, onset + length, p.kind, p.subject))
        scores.append(score_spotting(moved, truths, list(n_frames)).overall.f1)
    return float(np.mean(scores))


@pytest.mark.slow  # renders 6 videos of 240 frames and computes their flow at two ks (~2 min)
def test_mer_prep_spot_on_a_long_video_store_of_rendered_videos(tmp_path):
    plans = [
        plan_long_video(s + 1, n_frames=240, n_me=2, n_mae=1, n_blinks=1, key="") for s in range(6)
    ]
    write_long_layout(DATASET, tmp_path / "data", plans, quirks=False)
    store = tmp_path / "store"
    run = make_long_version(DATASET, tmp_path / "data", RECIPE, store, InProcess())
    assert run.summary.n_ok == 6
    videos, info = store_videos(str(store))
    assert info["version_id"] == run.summary.version_id and "k [3, 12]" in info["motion"]
    truths = [t for v in videos for t in v.truths]
    n_frames = {v.key: v.first.n_frames for v in videos}
    assert len(videos) == 6 and len(truths) == 18
    # the training-free spotters and a learned one (trained per fold on the stored motion)
    for method, extra in (("mdmd", []), ("threshold", []), ("softnet", ["--preset", "quick"])):
        out = CliRunner().invoke(
            main, ["spot", str(store), "--method", method, "--format", "json", *extra]
        )
        assert out.exit_code == 0, out.output
        run_id = json.loads(out.output)["run_id"]
        predicted = load_spot_run(str(store), run_id).predictions()
        overall = score_spotting(predicted, truths, list(n_frames)).overall
        chance = _random_f1(predicted, truths, n_frames)
        assert overall.f1 >= 0.4 and overall.f1 > 4 * chance, (method, overall, chance)


def test_spot_refuses_a_store_without_long_video_motion(tmp_path):
    from mer_prep.store.repo import open_repository

    open_repository(str(tmp_path / "empty"), create=True)
    out = CliRunner().invoke(main, ["spot", str(tmp_path / "empty"), "--method", "mdmd"])
    assert out.exit_code == 3 and out.output.count("\n") == 1, out.output
    assert "no committed version" in out.output
