"""``ststnet28``: onset-to-apex TV-L1 u, v and optical strain at 28x28, computed on 128x128
aligned faces, checked against the synthetic ground-truth motion."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from mer_prep.datasets import scan_dataset
from mer_prep.face import (
    align_clip,
    alignment_matrix,
    detect_clip_face,
    fit_landmarks,
    read_frames,
    resize_frames,
)
from mer_prep.pipeline.process import process_sample
from mer_prep.pipeline.render import working_matrix
from mer_prep.recipes import load_recipe
from mer_prep.synth.ground_truth import load_ground_truth


def test_recipe_declares_28x28_arrays_on_the_usual_dimensions():
    recipe = load_recipe("ststnet28")
    specs = recipe.array_specs()
    assert specs["flow"].dims == ("frame", "y", "x", "uv") and specs["flow"].shape == (2, 28, 28, 2)
    assert specs["strain"].dims == ("frame", "y", "x") and specs["strain"].shape == (2, 28, 28)
    assert specs["frames"].shape == (2, 28, 28) and specs["frames"].dtype == "float32"
    assert recipe.flow.working_size == (128, 128)
    assert recipe.parameters()["flow"]["working_size"] == [128, 128]
    assert recipe.hash == "56bc80e0d7bacc31"


@pytest.fixture(scope="module")
def synthetic(synth_dataset):
    # test_face_on_synth.py's CASME II look-alike (640x480; half the apexes not annotated)
    root, _ = synth_dataset(
        "casme2", n_subjects=3, clips_per_subject=2, n_frames=24, seed=7, missing_apex=0.5
    )
    return root, scan_dataset("casme2", root).samples


def _true_flow(truth, onset: np.ndarray, size: int = 28) -> np.ndarray:
    """The true onset -> apex flow seen on the aligned size x size grid, in its pixels: the
    source flow averaged over each output pixel's footprint, mapped through the alignment."""
    matrix = alignment_matrix(
        fit_landmarks(onset, detect_clip_face(onset)),
        size=(size, size),
        inter_ocular=0.42,
        eye_row=0.36,
    )
    scale = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
    footprint = int(round(1 / scale)) | 1
    source = cv2.blur(truth.flow(truth.onset, truth.apex), (footprint, footprint))
    inverse = cv2.invertAffineTransform(matrix)
    qx, qy = np.meshgrid(np.arange(size, dtype=np.float64), np.arange(size, dtype=np.float64))
    px = inverse[0, 0] * qx + inverse[0, 1] * qy + inverse[0, 2]
    py = inverse[1, 0] * qx + inverse[1, 1] * qy + inverse[1, 2]
    sampled = cv2.remap(source, px.astype(np.float32), py.astype(np.float32), cv2.INTER_LINEAR)
    return sampled @ matrix[:, :2].T


def test_flow_at_28x28_follows_the_true_motion_in_28x28_pixels(synthetic):
    root, samples = synthetic
    recipe = load_recipe("ststnet28")
    annotated = [s for s in samples if s.apex is not None]
    truths = {s.sample_id: load_ground_truth(root, s.sample_id) for s in annotated}
    sample = max(annotated, key=lambda s: truths[s.sample_id].amplitude_px)
    truth = truths[sample.sample_id]
    assert truth.amplitude_px > 0.5
    out = process_sample(sample, recipe)
    flow, strain = out.arrays["flow"], out.arrays["strain"]
    assert flow.dtype == strain.dtype == np.float32
    assert not flow[0].any() and not strain[0].any()  # onset to onset
    assert (strain[1] >= 0).all() and strain[1].mean() > 0
    true = _true_flow(truth, read_frames([sample.frame_paths[truth.onset]], gray=True)[0])
    inner = (slice(4, 24), slice(4, 24))
    got, want = flow[1][inner].ravel(), true[inner].ravel()
    assert np.corrcoef(got, want)[0, 1] > 0.9  # 0.99
    # in 28x28 pixels: the flow at 128x128 is ~128/28 = 4.6 times larger
    ratio = np.linalg.norm(got) / np.linalg.norm(want)
    assert 0.75 < ratio < 1.25, ratio  # 0.96


def test_working_size_grid_is_the_output_grid_resized(synthetic):
    _, samples = synthetic
    sample = next(s for s in samples if s.apex is not None)
    recipe = load_recipe("ststnet28")
    out = process_sample(sample, recipe)
    onset = read_frames([sample.frame_paths[sample.frame_numbers.index(sample.onset)]], gray=True)
    matrix = alignment_matrix(
        fit_landmarks(onset[0], detect_clip_face(onset[0])),
        size=(28, 28),
        inter_ocular=0.42,
        eye_row=0.36,
    )
    fine = align_clip(onset, working_matrix(matrix, (28, 28), (128, 128)), (128, 128))
    coarse = resize_frames(fine, (28, 28))[0]
    stored = out.arrays["frames"][0]
    # both are the same face on the same 28x28 grid (two low-pass filters apart)
    assert np.abs(coarse - stored)[2:-2, 2:-2].mean() < 0.02
    shifted = np.abs(np.roll(coarse, 1, axis=1) - stored)[2:-2, 2:-2].mean()
    assert shifted > 4 * np.abs(coarse - stored)[2:-2, 2:-2].mean()  # 0.060 vs 0.007


def test_missing_apex_is_spotted(synthetic):
    _, samples = synthetic
    sample = next(s for s in samples if s.apex is None)
    out = process_sample(sample, load_recipe("ststnet28"))
    assert out.apex_source == "spotted" and out.arrays["flow"].shape == (2, 28, 28, 2)
