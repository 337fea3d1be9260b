"""Stage 9: deterministic, recorded augmentation (mer_prep.pipeline.augment)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
from pydantic import ValidationError

from mer_prep.face import split_halves, transform_points
from mer_prep.face.landmarks import MIRROR_68
from mer_prep.motion.flow import optical_strain
from mer_prep.pipeline.augment import (
    AugmentParams,
    augment_arrays,
    augment_copies,
    augmentation_matrix,
    draw_all,
    draw_params,
    photometric,
    sample_entropy,
)
from mer_prep.recipes import AugmentConfig

# The papers' bounds: 002/004 rotation 15 deg, crop 10 %, contrast 30 %; 003 +-15 px and flips.
PAPERS = AugmentConfig(
    copies=4,
    seed=7,
    rotation_deg=15.0,
    crop=0.1,
    shift_px=15.0,
    flip=True,
    brightness=0.2,
    contrast=0.3,
)


def _blobs(points: np.ndarray, size: tuple[int, int], sigma: float = 1.0) -> np.ndarray:
    """(H, W) float32 image with a Gaussian dot of peak 1 at each (x, y) point."""
    height, width = size
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    image = np.zeros(size)
    for x, y in points:
        image += np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * sigma * sigma))
    return np.clip(image, 0, 1).astype(np.float32)


def _centroids(image: np.ndarray, guesses: np.ndarray, radius: int = 4) -> np.ndarray:
    """Intensity-weighted centroid of ``image`` in a window around each guessed (x, y)."""
    found = []
    for x, y in guesses:
        cx, cy = round(float(x)), round(float(y))
        win = image[cy - radius : cy + radius + 1, cx - radius : cx + radius + 1].astype(np.float64)
        ys, xs = np.mgrid[cy - radius : cy + radius + 1, cx - radius : cx + radius + 1]
        found.append([(win * xs).sum() / win.sum(), (win * ys).sum() / win.sum()])
    return np.array(found)


def _face_points(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    """68 well-separated (x, y) points; each MIRROR_68 pair straddles
    the vertical centre line (the lower index on the image left), self-paired ones lie on it."""
    height, width = size
    cx = (width - 1) / 2.0
    points = np.zeros((68, 2))
    # Candidate sites on a jittered 12 x 10 px grid left of the centre line, mirrored to the right.
    top = (height - 1) / 2.0 - 45
    grid = [(cx - 12 - 12 * i, top + 10 * j) for i in range(5) for j in range(10)]
    order = rng.permutation(len(grid))
    k = 0
    mid_rows = iter(top + 10 * j for j in range(10))
    for i in range(68):
        partner = int(MIRROR_68[i])
        if partner == i:
            points[i] = (cx, next(mid_rows))
        elif i < partner:
            x, y = grid[order[k]]
            k += 1
            points[i] = (x + rng.uniform(-1.0, 1.0), y + rng.uniform(-1.0, 1.0))
            points[partner] = (2 * cx - x + rng.uniform(-1.0, 1.0), y + rng.uniform(-1.0, 1.0))
    return points


# --- draws ---------------------------------------------------------------------------------------


def test_draws_are_deterministic_and_independent_of_call_order():
    a = draw_params(PAPERS, "casme2/sub01/EP02_01f", 2)
    draw_params(PAPERS, "samm/006/006_1_2", 0)  # an unrelated draw in between changes nothing
    assert draw_params(PAPERS, "casme2/sub01/EP02_01f", 2) == a
    # A fresh config object with the same values gives the same draw.
    assert draw_params(AugmentConfig(**PAPERS.model_dump()), "casme2/sub01/EP02_01f", 2) == a
    assert draw_params(PAPERS, "casme2/sub01/EP02_01f", 3) != a
    assert draw_params(PAPERS, "casme2/sub01/EP02_01g", 2) != a
    assert draw_params(PAPERS.model_copy(update={"seed": 8}), "casme2/sub01/EP02_01f", 2) != a
    assert draw_all(PAPERS, "x") == [draw_params(PAPERS, "x", i) for i in range(PAPERS.copies)]
    # Every copy of a sample is different.
    assert len({p.angle_deg for p in draw_all(PAPERS, "x")}) == PAPERS.copies


def test_sample_hash_is_stable_across_processes():
    """sample_id enters through SHA-256, not Python's per-process salted hash()."""
    code = (
        "from mer_prep.pipeline.augment import *; from mer_prep.recipes import AugmentConfig; "
        "import json; "
        "c = AugmentConfig(**json.loads(input())); "
        "print(json.dumps(draw_params(c, 'casme2/sub01/EP02_01f', 1).to_dict()))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    done = subprocess.run(
        [sys.executable, "-c", code],
        input=PAPERS.model_dump_json(),
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    other = AugmentParams.from_dict(json.loads(done.stdout))
    assert other == draw_params(PAPERS, "casme2/sub01/EP02_01f", 1)
    assert sample_entropy("abc") == int.from_bytes(
        bytes.fromhex("ba7816bf8f01cfea414140de5dae2223"), "little"
    )


def test_draws_stay_within_bounds_and_reach_them():
    draws = [draw_params(PAPERS, f"s{i % 37}", i) for i in range(1000)]
    angle = np.array([p.angle_deg for p in draws])
    crop = np.array([p.crop for p in draws])
    offset = np.array([p.crop_offset for p in draws])
    shift = np.array([p.shift_px for p in draws])
    flip = np.array([p.flip for p in draws])
    bright = np.array([p.brightness for p in draws])
    contrast = np.array([p.contrast for p in draws])
    assert np.abs(angle).max() <= 15.0 and angle.min() < -14.5 and angle.max() > 14.5
    assert crop.min() >= 0.0 and crop.max() <= 0.1 and crop.max() > 0.097 and crop.min() < 0.003
    assert offset.min() >= 0.0 and offset.max() <= 1.0
    assert np.abs(shift).max() <= 15.0 and shift.min() < -14.5 and shift.max() > 14.5
    assert abs(np.corrcoef(shift[:, 0], shift[:, 1])[0, 1]) < 0.1  # dx, dy drawn independently
    assert 0.44 < flip.mean() < 0.56
    assert np.abs(bright).max() <= 0.2 and bright.min() < -0.19 and bright.max() > 0.19
    assert contrast.min() >= 0.7 and contrast.max() <= 1.3
    assert contrast.min() < 0.71 and contrast.max() > 1.29
    assert abs(np.mean(angle)) < 0.6  # symmetric, not biased to one side


def test_switched_off_transforms_are_exact_identities_and_do_not_shift_other_draws():
    only_rotation = AugmentConfig(copies=1, seed=7, rotation_deg=15.0)
    p = draw_params(only_rotation, "a", 0)
    assert p.crop == 0.0 and p.shift_px == (0.0, 0.0) and not p.flip
    assert p.brightness == 0.0 and p.contrast == 1.0
    assert math.copysign(1.0, p.brightness) == 1.0  # 0.0, never -0.0, in the record
    # The angle of a copy does not depend on whether the other transforms are enabled.
    fewer = PAPERS.model_copy(update={"flip": False, "crop": 0.0, "brightness": 0.0})
    assert draw_params(PAPERS, "a", 0).angle_deg == draw_params(fewer, "a", 0).angle_deg
    assert draw_params(PAPERS, "a", 0).contrast == draw_params(fewer, "a", 0).contrast
    assert draw_params(AugmentConfig(seed=7), "a", 0) == AugmentParams()


def test_config_rejects_out_of_range_values():
    for bad in (
        {"copies": 0},
        {"contrast": 1.0},
        {"crop": -0.1},
        {"rotation_deg": -1.0},
        {"seed": -1},
        {"unknown": 1},
    ):
        with pytest.raises(ValidationError):
            AugmentConfig(**bad)
    with pytest.raises(ValidationError):
        PAPERS.seed = 3  # frozen
    with pytest.raises(ValueError):
        AugmentParams(contrast=0.0)
    with pytest.raises(ValueError):
        AugmentParams(crop=1.0)


def test_params_round_trip_through_json_exactly():
    for i in range(50):
        params = draw_params(PAPERS, "casme2/sub05/EP09_01", i)
        text = json.dumps(params.to_dict())
        back = AugmentParams.from_dict(json.loads(text))
        assert back == params
        assert back.to_dict() == params.to_dict()
    record = draw_params(PAPERS, "x", 0).to_dict()
    with pytest.raises(ValueError):
        AugmentParams.from_dict({k: v for k, v in record.items() if k != "flip"})
    with pytest.raises(ValueError):
        AugmentParams.from_dict({**record, "gamma": 1.0})


# --- geometry ------------------------------------------------------------------------------------


def test_matrix_components():
    size = (100, 120)
    assert np.array_equal(augmentation_matrix(AugmentParams(), size), np.eye(3)[:2])
    mirror = augmentation_matrix(AugmentParams(flip=True), size)
    assert np.allclose(mirror, [[-1, 0, 119], [0, 1, 0]])
    shift = augmentation_matrix(AugmentParams(shift_px=(3.0, -2.0)), size)
    assert np.allclose(shift, [[1, 0, 3], [0, 1, -2]])
    # A centred 20 % crop zooms by 1.25 about the centre, which stays fixed.
    zoom = augmentation_matrix(AugmentParams(crop=0.2), size)
    centre = np.array([59.5, 49.5])
    assert np.allclose(zoom[:, :2], 1.25 * np.eye(2))
    assert np.allclose(transform_points(centre, zoom), centre)
    # The crop window's top-left edge (-0.5, -0.5) + offset lands on the output's edge.
    corner = AugmentParams(crop=0.2, crop_offset=(1.0, 0.0))
    edge = np.array([-0.5 + 0.2 * 120, -0.5])
    assert np.allclose(transform_points(edge, augmentation_matrix(corner, size)), [-0.5, -0.5])
    # Rotation keeps the centre and turns +x toward -y (counter-clockwise as displayed).
    rot = augmentation_matrix(AugmentParams(angle_deg=90.0), size)
    assert np.allclose(transform_points(centre, rot), centre)
    assert np.allclose(transform_points(centre + [10.0, 0.0], rot), centre + [0.0, -10.0])


def test_landmarks_follow_the_moved_dots():
    size = (256, 256)
    rng = np.random.default_rng(0)
    points = _face_points(rng, size).astype(np.float32)
    frame = _blobs(points, size)
    assert np.abs(_centroids(frame, points) - points).max() < 0.05  # the probe itself is exact
    frames = np.stack([frame, frame])
    config = PAPERS.model_copy(update={"shift_px": 8.0, "brightness": 0.0, "contrast": 0.0})
    checked_flip = False
    for i in range(6):
        params = draw_params(config, "dots", i)
        out = augment_arrays({"frames": frames, "landmarks": points}, params)
        moved = out["landmarks"]
        assert moved.dtype == np.float32 and moved.shape == (68, 2)
        found = _centroids(out["frames"][1], moved)
        assert np.abs(found - moved).max() < 0.5, params
        checked_flip |= params.flip
    assert checked_flip


def test_mirror_reindexes_landmarks_to_keep_dlibs_image_order():
    size = (128, 128)
    points = _face_points(np.random.default_rng(1), size)
    cx = (size[1] - 1) / 2.0
    out = augment_arrays({"landmarks": points}, AugmentParams(flip=True), size)["landmarks"]
    assert np.allclose(
        out,
        transform_points(points, augmentation_matrix(AugmentParams(flip=True), size))[MIRROR_68],
    )
    # Every point stays on its side of the face: 36-41 is still the image-left eye, etc.
    paired = MIRROR_68 != np.arange(68)
    assert np.array_equal(np.sign(out[paired, 0] - cx), np.sign(points[paired, 0] - cx))
    assert out[36:42, 0].mean() < cx < out[42:48, 0].mean()
    assert out[0, 0] < out[16, 0]


def test_flipping_twice_restores_every_array():
    size = (48, 64)
    rng = np.random.default_rng(2)
    arrays = {
        "frames": rng.random((3, *size)).astype(np.float16),
        "landmarks": _face_points(rng, (128, 128)).astype(np.float32) * 0.4,
        "flow": rng.normal(size=(3, *size, 2)).astype(np.float32),
        "strain": rng.random((3, *size)).astype(np.float32),
    }
    flip = AugmentParams(flip=True)
    once = augment_arrays(arrays, flip)
    assert np.array_equal(once["frames"], arrays["frames"][:, :, ::-1])
    assert np.array_equal(once["strain"], arrays["strain"][:, :, ::-1])
    # The field is mirrored and its dx negated; dy unchanged.
    assert np.array_equal(once["flow"][..., 0], -arrays["flow"][:, :, ::-1, 0])
    assert np.array_equal(once["flow"][..., 1], arrays["flow"][:, :, ::-1, 1])
    twice = augment_arrays(once, flip)
    for name, array in arrays.items():
        assert twice[name].dtype == array.dtype and twice[name].shape == array.shape
        assert np.allclose(twice[name], array, atol=1e-5), name


def test_constant_flow_is_rotated_and_scaled_by_the_warp():
    size = (64, 64)
    v = np.array([1.0, 0.5], dtype=np.float32)
    flow = np.broadcast_to(v, (2, *size, 2)).copy()
    ys, xs = np.mgrid[0:64, 0:64]
    interior = np.hypot(xs - 31.5, ys - 31.5) < 20
    for angle in (10.0, -15.0, 90.0):
        out = augment_arrays({"flow": flow}, AugmentParams(angle_deg=angle))["flow"]
        t = math.radians(angle)
        expected = [
            math.cos(t) * v[0] + math.sin(t) * v[1],
            -math.sin(t) * v[0] + math.cos(t) * v[1],
        ]
        assert np.allclose(out[:, interior], expected, atol=1e-5)
        # Its length is kept, and outside the input there is no motion.
        assert np.allclose(np.linalg.norm(out[:, interior], axis=-1), np.linalg.norm(v), atol=1e-5)
        if angle != 90.0:
            assert np.all(out[:, 0, 0] == 0.0)
    zoomed = augment_arrays({"flow": flow}, AugmentParams(crop=0.2))["flow"]
    assert np.allclose(zoomed[:, interior], 1.25 * v, atol=1e-5)
    mirrored = augment_arrays({"flow": flow}, AugmentParams(flip=True, angle_deg=10.0))["flow"]
    t = math.radians(10.0)
    rotated = [math.cos(t) * v[0] + math.sin(t) * v[1], -math.sin(t) * v[0] + math.cos(t) * v[1]]
    assert np.allclose(mirrored[:, interior], [-rotated[0], rotated[1]], atol=1e-5)


def test_strain_of_the_augmented_flow_matches_the_augmented_strain():
    """Strain is invariant to rotation, mirroring and zoom: with the vectors mapped correctly,
    recomputing it from the augmented flow gives the resampled strain."""
    ys, xs = np.mgrid[0:96, 0:96].astype(np.float32) - 47.5
    u = 0.02 * xs + 0.01 * ys + 0.3 * np.sin(xs / 9.0) * np.cos(ys / 11.0)
    v = -0.015 * xs + 0.03 * ys + 0.2 * np.cos(xs / 7.0)
    flow = np.stack([u, v], axis=-1)[None].astype(np.float32)
    strain = optical_strain(flow)
    interior = np.hypot(xs, ys) < 28
    for i in range(4):
        params = draw_params(PAPERS, "strain", i)
        out = augment_arrays({"flow": flow, "strain": strain}, params)
        recomputed = optical_strain(out["flow"])
        err = np.abs(recomputed - out["strain"])[0][interior]
        assert err.max() < 0.02 * strain.max() + 1e-3, (params, err.max())
    # Resampling the vector components without mapping them would not match.
    bad = augment_arrays({"strain": flow[..., 0]}, AugmentParams(angle_deg=40.0))["strain"]
    unmapped = np.stack(
        [bad, augment_arrays({"strain": flow[..., 1]}, AugmentParams(angle_deg=40.0))["strain"]], -1
    )
    good = augment_arrays({"strain": strain}, AugmentParams(angle_deg=40.0))["strain"]
    assert np.abs(optical_strain(unmapped) - good)[0][interior].max() > 0.01


def test_every_frame_gets_the_same_transform():
    size = (64, 80)
    rng = np.random.default_rng(3)
    a, b = rng.random(size).astype(np.float32), rng.random(size).astype(np.float32)
    frames = np.stack([a, b, a, a])
    params = draw_params(PAPERS, "same", 1)
    out = augment_arrays({"frames": frames}, params)["frames"]
    assert np.array_equal(out[0], out[2]) and np.array_equal(out[0], out[3])
    assert not np.array_equal(out[0], out[1])
    alone = augment_arrays({"frames": frames[1:2]}, params)["frames"]
    assert np.array_equal(alone[0], out[1])


def test_masked_regions_move_with_the_face():
    size = (64, 64)
    frame = np.full(size, 0.5, np.float32)
    frame[20:30, 10:25] = 0.0  # a blacked-out eye on the image left
    params = AugmentParams(flip=True, brightness=0.1)
    out = augment_arrays({"frames": frame[None]}, params)["frames"][0]
    # The black box is mirrored to the right and, like the rest of the frame, brightened by 0.1.
    assert np.allclose(out[20:30, 39:54], 0.1) and np.allclose(out[40:, :], 0.6)


# --- photometric ---------------------------------------------------------------------------------


def test_contrast_and_brightness_change_mean_and_std_as_specified():
    rng = np.random.default_rng(4)
    frames = rng.uniform(0.3, 0.7, size=(3, 40, 50)).astype(np.float32)
    frames[1] += 0.05  # frames with different means: contrast acts about each one's own mean
    for c, b in ((1.3, 0.1), (0.7, -0.2), (1.0, 0.15), (1.2, 0.0)):
        out = augment_arrays({"frames": frames}, AugmentParams(contrast=c, brightness=b))["frames"]
        assert out.dtype == np.float32
        mean, std = frames.mean(axis=(1, 2)), frames.std(axis=(1, 2))
        assert np.allclose(out.mean(axis=(1, 2)), mean + b, atol=1e-5)
        assert np.allclose(out.std(axis=(1, 2)), c * std, atol=1e-5)


def test_photometric_output_is_clipped_to_unit_range_and_keeps_dtype():
    rng = np.random.default_rng(5)
    frames = rng.random((2, 32, 32)).astype(np.float16)
    for c, b in ((1.3, 0.3), (0.7, -0.3)):
        out = photometric(frames, AugmentParams(contrast=c, brightness=b))
        assert out.dtype == np.float16 and out.shape == frames.shape
        assert out.min() >= 0.0 and out.max() <= 1.0
        assert (out == 0.0).any() or (out == 1.0).any()
    # Flow, strain and landmarks are untouched by a purely photometric change.
    arrays = {
        "frames": frames,
        "flow": rng.normal(size=(2, 32, 32, 2)).astype(np.float16),
        "strain": rng.random((2, 32, 32)).astype(np.float16),
        "landmarks": rng.random((68, 2)).astype(np.float32) * 31,
    }
    out = augment_arrays(arrays, AugmentParams(contrast=1.2, brightness=0.1))
    for name in ("flow", "strain", "landmarks"):
        assert np.array_equal(out[name], arrays[name]) and out[name].dtype == arrays[name].dtype
        assert out[name] is not arrays[name]


# --- arrays --------------------------------------------------------------------------------------


def test_halves_are_recomputed_from_the_augmented_frames():
    size = (64, 64)
    rng = np.random.default_rng(6)
    frames = rng.random((2, *size)).astype(np.float32)
    landmarks = _face_points(rng, (128, 128)).astype(np.float32) * 0.5
    upper, lower = split_halves(frames)
    arrays = {
        "frames": frames,
        "landmarks": landmarks,
        "upper": upper.copy(),
        "lower": lower.copy(),
    }
    params = draw_params(PAPERS, "halves", 0)
    out = augment_arrays(arrays, params, split="middle")
    assert list(out) == list(arrays)
    assert np.array_equal(out["upper"], out["frames"][:, :32])
    assert np.array_equal(out["lower"], out["frames"][:, 32:])
    by_row = augment_arrays(arrays, params, split="landmarks")
    assert by_row["upper"].shape == (2, 32, 64) and by_row["lower"].shape == (2, 32, 64)
    with pytest.raises(ValueError, match="split"):
        augment_arrays(arrays, params)


def test_bad_arrays_are_rejected():
    frames = np.zeros((2, 16, 16), np.float32)
    with pytest.raises(ValueError, match="optical"):
        augment_arrays({"frames": frames, "optical": frames}, AugmentParams())
    with pytest.raises(ValueError, match="frame size"):
        augment_arrays(
            {"frames": frames, "strain": np.zeros((2, 16, 8), np.float32)}, AugmentParams()
        )
    with pytest.raises(ValueError, match="size"):
        augment_arrays({"landmarks": np.zeros((68, 2), np.float32)}, AugmentParams())
    with pytest.raises(ValueError, match="68"):
        augment_arrays(
            {"landmarks": np.zeros((5, 2), np.float32)}, AugmentParams(flip=True), (16, 16)
        )


def test_augment_copies_are_reproducible_from_the_record():
    rng = np.random.default_rng(8)
    arrays = {
        "frames": rng.random((2, 32, 32)).astype(np.float16),
        "landmarks": rng.random((68, 2)).astype(np.float32) * 31,
        "flow": rng.normal(size=(2, 32, 32, 2)).astype(np.float16),
    }
    copies = augment_copies(arrays, PAPERS, "casme2/sub01/EP02_01f")
    assert len(copies) == PAPERS.copies
    for params, out in copies:
        record = json.loads(json.dumps(params.to_dict()))
        again = augment_arrays(arrays, AugmentParams.from_dict(record))
        for name, array in arrays.items():
            assert again[name].dtype == array.dtype
            assert np.array_equal(again[name], out[name])
    assert not np.array_equal(copies[0][1]["frames"], copies[1][1]["frames"])


def test_a_mirror_is_a_slice_not_an_interpolation():
    """A flip alone moves each value to x -> W - 1 - x and touches nothing else: exact by
    construction on any OpenCV build. Bilinear taps of weight 0 would still spread a
    non-finite value (0 * inf is NaN) to the neighbours, as the warp used to."""
    strain = np.zeros((1, 8, 8), np.float32)
    strain[0, 3, 3] = np.inf
    out = augment_arrays({"strain": strain}, AugmentParams(flip=True))["strain"]
    assert np.argwhere(~np.isfinite(out)).tolist() == [[0, 3, 4]]
    assert np.array_equal(out, strain[:, :, ::-1]) and out.flags.c_contiguous
