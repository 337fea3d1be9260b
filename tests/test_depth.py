"""``depth: true`` recipes: CAS(ME)^3's 16-bit depth frames warped by the frames' alignment,
nearest neighbour, stored uint16; their bytes count in the input fingerprint."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest
import yaml
from plot_stores import build_store, small
from pydantic import ValidationError

from mer_prep.datasets import scan_dataset
from mer_prep.errors import FrameReadError, RecipeError, SampleError
from mer_prep.face import alignment_matrix, fit_landmarks, read_frames, transform_points
from mer_prep.face.detect import FaceBox
from mer_prep.pipeline.fingerprint import sample_fingerprint
from mer_prep.pipeline.frame_selection import clip_span
from mer_prep.pipeline.process import process_sample
from mer_prep.recipes import builtin_recipes, load_recipe

SYNTH = {"n_subjects": 1, "clips_per_subject": 2, "seed": 4, "n_frames": 12, "size": (240, 320)}


def depth_recipe(**changes):
    return small("mbcc64", 64, name="mbcc64_depth", depth=True, **changes)


@pytest.fixture(scope="module")
def casme3(synth_dataset):
    root, _ = synth_dataset("casme3", **SYNTH)
    samples = scan_dataset("casme3", root).samples
    assert samples and all(s.depth_paths for s in samples)
    return root, samples


def test_depth_switch_leaves_other_recipes_alone():
    for name, recipe in builtin_recipes().items():
        assert not recipe.depth and "depth" not in recipe.parameters(), name
        assert "depth" not in recipe.array_specs(), name
    plain, depth = small("mbcc64", 64), depth_recipe()
    assert depth.parameters()["depth"] is True and depth.hash != plain.hash
    assert small("mbcc64", 64, depth=False).hash == plain.hash
    spec = depth.array_specs()["depth"]
    assert spec.dims == ("frame", "y", "x") and spec.shape == (2, 64, 64)
    assert spec.dtype == "uint16"


def test_depth_with_augment_is_refused(tmp_path):
    with pytest.raises(ValidationError, match="depth cannot be combined with augment"):
        small("ha3d_aug", 64, depth=True)
    params = load_recipe("ha3d_aug").model_dump(mode="json", by_alias=True)
    (tmp_path / "r.yaml").write_text(yaml.safe_dump({**params, "depth": True}))
    with pytest.raises(RecipeError, match="depth cannot be combined with augment"):
        load_recipe(tmp_path / "r.yaml")


def test_depth_is_the_nearest_source_depth_under_the_frames_alignment(casme3):
    _, samples = casme3
    recipe = depth_recipe()
    sample = samples[0]
    result = process_sample(sample, recipe)
    depth = result.arrays["depth"]
    assert depth.dtype == np.uint16 and depth.shape == (2, 64, 64)
    assert result.arrays["frames"].shape == depth.shape

    # the alignment of the frames, recomputed from the onset frame and the recorded face box
    onset = read_frames([sample.frame_paths[clip_span(sample).onset]], gray=True)[0]
    box = FaceBox(*result.face_box, score=0.0, method=result.detector)
    landmarks = fit_landmarks(onset, box)
    matrix = alignment_matrix(
        landmarks,
        size=(64, 64),
        inter_ocular=recipe.align.inter_ocular,
        eye_row=recipe.align.eye_row,
    )
    np.testing.assert_allclose(
        transform_points(landmarks, matrix), result.arrays["landmarks"], atol=1e-3
    )
    inverse = cv2.invertAffineTransform(matrix)
    yy, xx = np.mgrid[0:64, 0:64]
    source_xy = np.stack([xx, yy], -1).reshape(-1, 2) @ inverse[:, :2].T + inverse[:, 2]
    positions = [sample.frame_numbers.index(n) for n in result.source_frames]
    for t, position in enumerate(positions):
        source = cv2.imread(sample.depth_paths[position], cv2.IMREAD_UNCHANGED)
        assert source.dtype == np.uint16
        h, w = source.shape
        stored = depth[t].reshape(-1)
        # nearest neighbour never invents a value, and blends none
        assert set(np.unique(stored)) <= set(np.unique(source)) | {0}
        inside = (
            (source_xy[:, 0] > 0.5)
            & (source_xy[:, 0] < w - 1.5)
            & (source_xy[:, 1] > 0.5)
            & (source_xy[:, 1] < h - 1.5)
        )
        assert inside.mean() > 0.9 and (stored[inside] > 0).all()  # the face region has depth
        # away from a rounding tie, the stored value is the source's at the nearest pixel
        fraction = np.abs(source_xy - np.round(source_xy))
        clear = inside & (np.abs(fraction - 0.5) > 0.05).all(axis=1)
        nearest = np.round(source_xy[clear]).astype(int)
        expected = source[nearest[:, 1], nearest[:, 0]]
        assert np.mean(stored[clear] == expected) > 0.98
        # ... and never that of a pixel further away than the four around it
        floor = np.floor(source_xy[inside]).astype(int)
        around = np.stack(
            [source[floor[:, 1] + dy, floor[:, 0] + dx] for dy in (0, 1) for dx in (0, 1)], -1
        )
        assert (around == stored[inside][:, None]).any(axis=1).all()


def test_depth_store_and_source_copies(casme3, tmp_path):
    from mer_prep.store import open_store

    root, samples = casme3
    recipe = depth_recipe()
    store = open_store(build_store(root, tmp_path / "store", recipe, dataset="casme3"))
    assert store.attrs["arrays"]["depth"] == {
        "dims": ["sample", "frame", "y", "x"],
        "shape": [len(samples), 2, 64, 64],
        "dtype": "uint16",
    }
    stored = store.array("depth")
    assert stored.dtype == np.uint16 and stored.shape == (len(samples), 2, 64, 64)
    ids = list(store.table["sample_id"])
    for sample in samples:
        expected = process_sample(sample, recipe).arrays["depth"]
        np.testing.assert_array_equal(stored[ids.index(sample.sample_id)], expected)

    # copies made before alignment warp depth with their own matrix: the mirror is the mirror
    mirrored = depth_recipe(source_augment={"shift_px": 0.0, "flip": True})
    result = process_sample(samples[0], mirrored)
    ((params, copy),) = result.copies
    assert params["flip"] is True and copy["depth"].dtype == np.uint16
    # exact by construction: the copy is a slice of the stored alignment, not a second warp
    # (re-warping moved nearest-neighbour samples by a whole pixel on some OpenCV builds)
    np.testing.assert_array_equal(copy["depth"], result.arrays["depth"][:, :, ::-1])
    np.testing.assert_array_equal(copy["frames"], result.arrays["frames"][:, :, ::-1])


def test_a_sample_without_depth_or_with_a_missing_depth_frame_fails_clearly(casme3, tmp_path):
    _, samples = casme3
    recipe = depth_recipe()
    with pytest.raises(SampleError, match="recipe stores depth but the sample has no depth"):
        process_sample(dataclasses.replace(samples[0], depth_paths=()), recipe)
    position = clip_span(samples[0]).onset
    gone = str(tmp_path / "missing.png")
    paths = list(samples[0].depth_paths)
    paths[position] = gone
    with pytest.raises(FrameReadError) as error:
        process_sample(dataclasses.replace(samples[0], depth_paths=tuple(paths)), recipe)
    assert gone in str(error.value) and samples[0].sample_id in str(error.value)


def test_editing_a_depth_file_changes_the_fingerprint_of_depth_recipes_only(
    synth_dataset, tmp_path
):
    root, _ = synth_dataset("casme3", copy_to=tmp_path / "copy", **SYNTH)
    sample = scan_dataset("casme3", root).samples[0]
    recipe, plain = depth_recipe(), small("mbcc64", 64)
    before, plain_before = sample_fingerprint(sample, recipe), sample_fingerprint(sample, plain)
    assert before != plain_before
    path = sample.depth_paths[clip_span(sample).onset]
    image = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    image[0, 0] += 1
    assert cv2.imwrite(path, image)
    assert sample_fingerprint(sample, recipe) != before
    assert sample_fingerprint(sample, plain) == plain_before
