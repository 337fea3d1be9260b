"""Copies made before alignment (paper 003, recipe msres3d_aug): the face box moved in source
pixels and a mirror, each a copy that keeps real pixels and gets its own magnification and flow."""

from __future__ import annotations

import numpy as np
import pytest

from mer_prep.datasets import scan_dataset
from mer_prep.face import MIRROR_68, detect_face, eye_centers, fit_landmarks, read_frames
from mer_prep.pipeline.frame_selection import clip_span
from mer_prep.pipeline.process import process_sample
from mer_prep.recipes import load_recipe
from mer_prep.recipes.model import Recipe


@pytest.fixture(scope="module")
def processed(tmp_path_factory):
    from mer_prep.synth.generate import generate_dataset

    root = tmp_path_factory.mktemp("srcaug") / "CASME2"
    generate_dataset(
        "casme2",
        root,
        n_subjects=1,
        clips_per_subject=1,
        seed=3,
        n_frames=14,
        size=(240, 320),
        amplitude_px=2.0,
        classes=["happiness"],
    )
    (sample,) = scan_dataset("casme2", root).samples
    params = load_recipe("msres3d_aug").model_dump(mode="json", by_alias=True)
    params.update(
        name="msres3d_aug_small",
        align={"size": [64, 64], "inter_ocular": 0.42, "eye_row": 0.36},
        frames={"mode": "keyframes", "n_frames": 6},
    )
    recipe = Recipe.model_validate(params)
    onset = read_frames([sample.frame_paths[clip_span(sample).onset]], gray=True)[0]
    left, right = eye_centers(fit_landmarks(onset, detect_face(onset)))
    scale = 0.42 * 64 / np.hypot(*(right - left))  # output px per source px of the warp
    return recipe, process_sample(sample, recipe), scale


def test_five_copies_shifted_in_source_pixels_and_one_mirror(processed):
    recipe, result, scale = processed
    assert recipe.rows_per_sample == 6 and len(result.copies) == 5
    shifts = [tuple(p["source_shift_px"]) for p, _ in result.copies]
    assert shifts == [(-15, 0), (15, 0), (0, -15), (0, 15), (0, 0)]
    assert [p["flip"] for p, _ in result.copies] == [False] * 4 + [True]
    original = result.arrays["landmarks"].astype(np.float64)
    steps = []
    for params, arrays in result.copies[:4]:
        moved = arrays["landmarks"].astype(np.float64) - original
        # the warp is a similarity: every point moves by the same output vector
        assert np.ptp(moved, axis=0).max() < 1e-3
        steps.append(moved[0])
        dx, dy = params["source_shift_px"]
        assert np.dot(moved[0], [dx, dy]) < 0  # the content moves against the box
        assert (arrays["frames"][:, :, :4] > 0.02).mean() > 0.9  # real pixels, no black band
    # left/right and up/down are opposite, of one length (15 source px times the warp's scale)
    np.testing.assert_allclose(steps[0], -steps[1], atol=1e-3)
    np.testing.assert_allclose(steps[2], -steps[3], atol=1e-3)
    assert np.linalg.norm(steps[0]) == pytest.approx(np.linalg.norm(steps[2]), rel=1e-3)
    assert np.linalg.norm(steps[0]) == pytest.approx(15 * scale, rel=1e-3)
    _, mirrored = result.copies[4]
    expected = original.copy()
    expected[:, 0] = 63 - expected[:, 0]
    np.testing.assert_allclose(mirrored["landmarks"], expected[MIRROR_68], atol=1e-3)
    difference = np.abs(
        mirrored["frames"].astype(np.float32)
        - result.arrays["frames"][..., ::-1].astype(np.float32)
    )
    assert difference.mean() < 2e-3 and difference.max() < 0.03  # same pixels, resampled once


def test_each_copy_gets_its_own_flow(processed):
    _, result, _ = processed
    flow = result.arrays["flow"].astype(np.float32)
    _, mirrored = result.copies[4]
    # the mirror's flow is the mirrored flow with u negated (recomputed, not copied)
    expected = flow[:, :, ::-1].copy()
    expected[..., 0] *= -1
    moving = np.hypot(*np.moveaxis(flow, -1, 0)) > 0.3
    got = mirrored["flow"].astype(np.float32)
    assert moving.sum() > 20
    cosine = (got * expected).sum(-1)[moving[:, :, ::-1]].mean() / (
        np.linalg.norm(got, axis=-1) * np.linalg.norm(expected, axis=-1) + 1e-6
    )[moving[:, :, ::-1]].mean()
    assert cosine > 0.7
    assert not np.array_equal(got, expected)  # computed on the copy's own pixels
