"""Synthetic clips: the rendered motion is the stored motion, and the datasets look right.

Oracles are independent of the renderer: scipy's cubic B-spline (``map_coordinates``) read at
forward-mapped positions, least-squares and phase-correlation patch registration, and dlib.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import dlib
import numpy as np
import pytest
from scipy import ndimage as ndi
from scipy.optimize import least_squares
from skimage.registration import phase_cross_correlation

from mer_prep.face.landmarks import predictor_path
from mer_prep.synth.animate import make_scene, render_frames
from mer_prep.synth.faces import (
    make_subject,
    render_subject,
    source_face,
    subject_face_box,
    subject_landmarks,
)
from mer_prep.synth.generate import plan_clips, render_plan, subject_for
from mer_prep.synth.ground_truth import ground_truth_dir, load_ground_truth, load_manifest
from mer_prep.synth.motion import au_field, head_jitter, invert_motion, temporal_profile

AMP = 2.0


def _gray(rgb: np.ndarray) -> np.ndarray:
    return rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114])


@pytest.fixture(scope="module")
def smile():
    """A noise-free gray AU6+12 clip at 2 px with 0.4 px jitter: (subject, neutral, D, a, j,
    frames)."""
    subject = make_subject(np.random.default_rng(5))
    neutral = render_subject(subject)
    field = au_field(subject_landmarks(subject), "6+12", subject.size, AMP)
    profile = temporal_profile(12, 2, 6, 10)
    jitter = head_jitter(12, np.random.default_rng(1), 0.4)
    frames = render_frames(make_scene(neutral, gray=True), field, profile, jitter, 0.0, None)
    return subject, _gray(neutral), field, profile, jitter, frames.astype(np.float64)


@pytest.fixture(scope="module")
def casme2(synth_dataset):
    return synth_dataset(
        "casme2", n_subjects=3, clips_per_subject=2, seed=7, n_frames=24, missing_apex=0.5
    )


def _back_warp_residual(frame, neutral, u):
    """frame(x + u(x)) - neutral(x): zero when frame shows neutral point x at x + u(x)."""
    h, w = neutral.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    back = ndi.map_coordinates(frame, [yy + u[..., 1], xx + u[..., 0]], order=3, mode="mirror")
    return back - neutral


def test_rendered_frame_is_the_neutral_face_moved_by_the_stored_field(smile):
    _, neutral, field, a, j, frames = smile
    t = 6
    moving = np.hypot(field[..., 0], field[..., 1]) > 0.5 * AMP
    right = _back_warp_residual(frames[t], neutral, a[t] * field + j[t])
    flipped = _back_warp_residual(frames[t], neutral, -a[t] * field + j[t])
    still = _back_warp_residual(frames[t], neutral, np.broadcast_to(j[t], field.shape))
    # Only uint8 rounding is left with the right convention; the wrong ones leave the motion.
    assert right[moving].std() < 0.6
    assert np.abs(right[20:-20, 20:-20]).mean() < 0.4
    assert still[moving].std() > 8 * right[moving].std()
    assert flipped[moving].std() > 1.5 * still[moving].std()


def test_patch_registration_recovers_the_apex_displacement(smile):
    _, _, field, a, j, frames = smile
    t = 6
    iy, ix = np.unravel_index(np.argmax(np.hypot(field[..., 0], field[..., 1])), field.shape[:2])
    r = 6
    # onset -> apex, averaged over the patch (the field changes by ~8 % across it)
    expected = (
        a[t] * field[iy - r : iy + r + 1, ix - r : ix + r + 1].reshape(-1, 2).mean(0) + j[t] - j[0]
    )
    py, px = np.mgrid[iy - r : iy + r + 1, ix - r : ix + r + 1].astype(np.float64)
    ref = frames[0][iy - r : iy + r + 1, ix - r : ix + r + 1].ravel()
    fit = least_squares(
        lambda s: (
            ndi.map_coordinates(frames[t], [py + s[1], px + s[0]], order=3, mode="mirror").ravel()
            - ref
        ),
        x0=[0.0, 0.0],
    ).x
    assert np.abs(fit - expected).max() < 0.1
    win = np.outer(np.hanning(32), np.hanning(32))
    sl = (slice(iy - 16, iy + 16), slice(ix - 16, ix + 16))
    shift, _, _ = phase_cross_correlation(
        frames[t][sl] * win, frames[0][sl] * win, upsample_factor=100
    )
    assert np.allclose(shift[::-1], expected, atol=0.25)  # (dy, dx); coarser, but independent


def test_pure_translation_matches_an_independent_spline(smile):
    subject, neutral, field, a, j, frames = smile
    h, w = neutral.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    for t in (0, 1, 2, 10, 11):  # a(t) = 0: only the jitter moves the frame
        assert a[t] == 0.0
        expected = ndi.map_coordinates(
            neutral, [yy - j[t, 1], xx - j[t, 0]], order=3, mode="mirror"
        )
        unclipped = (expected > 0.5) & (expected < 254.5)  # uint8 saturates, the spline does not
        assert np.abs(frames[t] - expected)[unclipped].max() <= 0.5 + 1e-3  # rounding only
    shifted = render_frames(
        make_scene(np.repeat(neutral[..., None], 3, -1).astype(np.float32), gray=True),
        np.full_like(field, 0.0),
        np.ones(1),
        np.array([[0.37, -0.21]]),
        0.0,
        None,
    )[0].astype(np.float64)
    fit = least_squares(
        lambda s: (
            ndi.map_coordinates(neutral, [yy - s[1], xx - s[0]], order=3, mode="mirror") - shifted
        )[40:-40, 40:-40][::3, ::3].ravel(),
        x0=[0.0, 0.0],
    ).x
    assert np.abs(fit - [0.37, -0.21]).max() < 2e-3


def test_motion_inverse_is_exact():
    rng = np.random.default_rng(0)
    subject = make_subject(rng)
    field = au_field(subject_landmarks(subject), "1+2", subject.size, 2.0)
    q = rng.uniform([100, 60], [540, 420], size=(2000, 2))
    p = invert_motion(field, 0.8, np.array([0.2, -0.3]), q[:, 0], q[:, 1], tol=1e-9)
    # forward map by an independent bilinear reader
    fwd = np.stack(
        [
            ndi.map_coordinates(field[..., c].astype(np.float64), [p[:, 1], p[:, 0]], order=1)
            for c in range(2)
        ],
        axis=-1,
    )
    assert np.abs(p + 0.8 * fwd + [0.2, -0.3] - q).max() < 1e-6


def test_profile_zero_outside_onset_offset_and_one_at_apex():
    a = temporal_profile(40, 8, 15, 30)
    assert np.all(a[:9] == 0) and np.all(a[30:] == 0)
    assert a[15] == 1.0 and a.argmax() == 15 and np.all(a[9:30] > 0)
    assert np.all(np.diff(a[8:16]) > 0) and np.all(np.diff(a[15:31]) < 0)
    with pytest.raises(ValueError):
        temporal_profile(40, 8, 8, 30)


def test_ground_truth_motion_is_still_outside_the_expression(casme2):
    root, written = casme2
    for clip in written:
        truth = load_ground_truth(root, clip.sample_id)
        for t in range(truth.n_frames):
            u = truth.displacement(t)
            still = not truth.onset < t < truth.offset
            assert (np.abs(u - truth.jitter[t].astype(np.float32)).max() < 1e-6) == still
        apex = truth.displacement(truth.apex) - truth.jitter[truth.apex].astype(np.float32)
        assert 0.2 <= np.hypot(apex[..., 0], apex[..., 1]).max() <= 2.0
        assert np.isclose(np.hypot(apex[..., 0], apex[..., 1]).max(), truth.amplitude_px, rtol=1e-5)
        assert np.hypot(truth.jitter[:, 0], truth.jitter[:, 1]).max() <= 0.3 + 1e-9
        assert 1.0 <= truth.noise_sigma <= 2.0


def test_ground_truth_sits_beside_the_dataset_and_matches_the_annotation(casme2):
    root, written = casme2
    folder = ground_truth_dir(root)
    assert folder == root.parent / "_ground_truth" / "CASME2" and not folder.is_relative_to(root)
    manifest = load_manifest(root)
    assert set(manifest["clips"]) == {c.sample_id for c in written}
    assert json.loads((folder / "manifest.json").read_text())["version"] == 1
    missing = 0
    for clip in written:
        truth = load_ground_truth(root, clip.sample_id)
        assert truth.onset_number == clip.onset and truth.offset_number == clip.offset
        assert truth.apex_number == clip.apex
        missing += clip.apex is None
        assert truth.number(truth.onset) == clip.onset and truth.index(clip.offset) == truth.offset
        if clip.apex is not None:
            assert truth.number(truth.apex) == clip.apex
        assert len(truth.frame_paths) == len(clip.frame_paths) == truth.n_frames
        assert Path(clip.frame_paths[truth.onset]).name == f"img{clip.onset}.jpg"
        assert truth.onset >= 2 and truth.offset <= truth.n_frames - 3  # neutral frames around
    assert 0 < missing < len(written)


def test_dlib_finds_the_face_and_landmarks_where_the_truth_says(casme2):
    root, written = casme2
    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(predictor_path()))
    for clip in written[::2]:
        truth = load_ground_truth(root, clip.sample_id)
        image = cv2.cvtColor(cv2.imread(clip.frame_paths[truth.onset]), cv2.COLOR_BGR2RGB)
        boxes = detector(image, 1)
        assert boxes, clip.sample_id
        box = max(boxes, key=lambda r: r.area())
        found = np.array([box.left(), box.top(), box.right(), box.bottom()], float)
        known = np.array(truth.face_box())
        inter = np.prod(
            np.clip(np.minimum(found[2:], known[2:]) - np.maximum(found[:2], known[:2]), 0, None)
        )
        union = np.prod(found[2:] - found[:2]) + np.prod(known[2:] - known[:2]) - inter
        assert inter / union > 0.6, clip.sample_id
        inner = truth.landmarks(truth.onset)[17:]  # brows, eyes, nose, mouth
        assert np.all((inner >= found[:2]) & (inner <= found[2:])), clip.sample_id
        shape = predictor(image, box)
        fitted = np.array([(shape.part(i).x, shape.part(i).y) for i in range(68)], float)
        assert np.linalg.norm(fitted - truth.landmarks(truth.onset), axis=1).mean() < 3.0
        left_eye, right_eye = inner[36 - 17 : 42 - 17].mean(0), inner[42 - 17 : 48 - 17].mean(0)
        assert right_eye[0] - left_eye[0] > 50  # inter-ocular distance, image-ordered


def test_flow_between_frames(casme2):
    root, written = casme2
    truth = load_ground_truth(root, written[0].sample_id)
    on, ap = truth.onset, truth.apex
    flow = truth.flow(on, ap)
    assert np.abs(truth.flow(ap, ap)).max() < 1e-6
    # farther from the expression than it and the jitter move anything: jitter only
    far = ndi.binary_erosion(np.all(truth.field == 0, axis=-1), iterations=4)
    assert np.allclose(flow[far], truth.jitter[ap] - truth.jitter[on], atol=1e-6)
    # a(onset) = 0, so flow(q) = a D(q - j_on) + j_ap - j_on: close to the stored field.
    approx = truth.displacement(ap) - truth.jitter[on].astype(np.float32)
    assert np.abs(flow - approx).max() < 0.02
    back = truth.flow(ap, on)  # round trip onset -> apex -> onset
    h, w = truth.size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    bx = ndi.map_coordinates(back[..., 0], [yy + flow[..., 1], xx + flow[..., 0]], order=1)
    by = ndi.map_coordinates(back[..., 1], [yy + flow[..., 1], xx + flow[..., 0]], order=1)
    assert np.abs(flow[..., 0] + bx)[5:-5, 5:-5].max() < 2e-3
    assert np.abs(flow[..., 1] + by)[5:-5, 5:-5].max() < 2e-3


def test_subjects_look_distinct_and_stay_themselves(casme2):
    root, written = casme2
    by_subject: dict[str, list] = {}
    for clip in written:
        truth = load_ground_truth(root, clip.sample_id)
        image = cv2.cvtColor(cv2.imread(clip.frame_paths[0]), cv2.COLOR_BGR2RGB).astype(np.float64)
        # Align the face with its true landmarks so that position and scale do not count.
        lm = truth.landmarks(0)
        template = np.array([[40.0, 48.0], [88.0, 48.0], [64.0, 100.0]])
        src = np.array([lm[36:42].mean(0), lm[42:48].mean(0), lm[48:68].mean(0)], np.float32)
        warp = cv2.getAffineTransform(src, template.astype(np.float32))
        face = cv2.warpAffine(image, warp, (128, 128), flags=cv2.INTER_LINEAR)
        by_subject.setdefault(truth.subject, []).append(face)
    subjects = sorted(by_subject)
    assert len(subjects) == 3
    same = [np.abs(by_subject[s][0] - by_subject[s][1]).mean() for s in subjects]
    other = [
        np.abs(by_subject[a][0] - by_subject[b][0]).mean()
        for i, a in enumerate(subjects)
        for b in subjects[i + 1 :]
    ]
    assert max(same) < 4.0  # the same person, apart from noise and a little expression
    assert min(other) > 3 * max(same)
    placements = [subject_for("casme2", n, 7, (480, 640)) for n in (1, 2, 3)]
    canvases = [_gray(render_subject(p)).ravel() for p in placements]
    corr = np.corrcoef(canvases)
    assert np.abs(corr[np.triu_indices(3, 1)]).max() < 0.8


def test_generation_is_deterministic():
    kwargs = dict(n_subjects=2, clips_per_subject=2, n_frames=16)
    a = plan_clips("samm", seed=3, **kwargs)
    assert a == plan_clips("samm", seed=3, **kwargs)
    assert a != plan_clips("samm", seed=4, **kwargs)
    assert [p.subject for p in a] == [6, 6, 7, 7] and all(p.gray for p in a)
    subject = subject_for("samm", 6, 3, (240, 320))
    first = render_plan(a[0], subject)
    again = render_plan(a[0], subject_for("samm", 6, 3, (240, 320)))
    assert first[0].shape == (16, 240, 320) and first[0].dtype == np.uint8
    for x, y in zip(first, again, strict=True):
        assert np.array_equal(x, y)
    other = render_plan(
        plan_clips("samm", seed=4, **kwargs)[0], subject_for("samm", 6, 4, (240, 320))
    )
    assert not np.array_equal(first[0], other[0])


def test_noise_has_the_requested_sigma(smile):
    subject, neutral, field, a, j, _ = smile
    scene = make_scene(np.repeat(neutral[..., None], 3, -1).astype(np.float32), gray=True)
    clean = render_frames(scene, field, a[:3], j[:3], 0.0, None).astype(np.float64)
    noisy = render_frames(scene, field, a[:3], j[:3], 1.5, np.random.default_rng(2)).astype(
        np.float64
    )
    inside = (neutral > 10) & (neutral < 245)
    assert abs((noisy - clean)[:, inside].std() - np.hypot(1.5, 0.0)) < 0.1
    assert abs((noisy - clean)[:, inside].mean()) < 0.02


def test_smic_clips_are_onset_to_offset(synth_dataset):
    root, written = synth_dataset(
        "smic", n_subjects=2, clips_per_subject=2, seed=4, size=(240, 320)
    )
    for clip in written:
        truth = load_ground_truth(root, clip.sample_id)
        assert clip.apex is None and truth.apex_number is None
        assert truth.onset == 0 and truth.offset == truth.n_frames - 1 == len(clip.frame_paths) - 1
        assert 0 < truth.apex < truth.offset and truth.profile[truth.apex] == 1.0
        assert truth.emotion in ("negative", "positive", "surprise")


def test_source_face_and_mirroring():
    src = source_face()
    assert src.image.shape == (512, 512, 3) and src.landmarks.shape == (68, 2)
    assert 170 < src.box[0] < 185 and 70 < src.box[1] < 85  # the face, not the suit's patch
    mirrored = [s for s in (make_subject(np.random.default_rng(k)) for k in range(6)) if s.mirrored]
    plain = [
        s for s in (make_subject(np.random.default_rng(k)) for k in range(6)) if not s.mirrored
    ]
    assert mirrored and plain
    for subject in mirrored + plain:
        lm = subject_landmarks(subject)
        assert lm[36, 0] < lm[39, 0] < lm[42, 0] < lm[45, 0]  # image-left eye first
        assert lm[48, 0] < lm[54, 0] and lm[0, 0] < lm[16, 0]
        left, top, right, bottom = subject_face_box(subject)
        assert left < lm[36, 0] and right > lm[45, 0] and top < lm[19, 1]
