"""Face stages against the synthetic ground truth: boxes, landmarks, masks on real clips."""

import cv2
import numpy as np
import pytest

from mer_prep.datasets import scan_dataset
from mer_prep.face import detect_face, eye_centers, fit_landmarks, read_frames, transform_points
from mer_prep.face.align import alignment_matrix
from mer_prep.face.mask import REGIONS
from mer_prep.pipeline.process import process_sample
from mer_prep.recipes import load_recipe
from mer_prep.synth.ground_truth import load_ground_truth


@pytest.fixture(scope="module", params=["casme2", "samm"])
def synthetic(request, synth_dataset):
    # the CASME II look-alike is test_synth.py's (half its clips annotated without an apex)
    params = {"seed": 7, "missing_apex": 0.5} if request.param == "casme2" else {"seed": 11}
    root, _ = synth_dataset(request.param, n_subjects=3, clips_per_subject=2, n_frames=24, **params)
    samples = scan_dataset(request.param, root).samples
    assert len(samples) == 6
    return root, samples


def _iou(box, other):
    left, top, right, bottom = other
    w = max(0.0, min(box.right, right) - max(box.left, left))
    h = max(0.0, min(box.bottom, bottom) - max(box.top, top))
    union = box.width * box.height + (right - left) * (bottom - top) - w * h
    return w * h / union


def _onset_frame(sample):
    return read_frames([sample.frame_paths[sample.frame_numbers.index(sample.onset)]], gray=True)[0]


def test_box_contains_the_known_face_and_landmarks_match_truth(synthetic):
    root, samples = synthetic
    errors = []
    for sample in samples:
        truth = load_ground_truth(root, sample.sample_id)
        frame = _onset_frame(sample)
        box = detect_face(frame)
        expected = np.asarray(truth.landmarks(truth.onset))
        # the known face: its eyes, nose and mouth lie in the box, which matches the true box
        inner = expected[27:]
        assert _iou(box, truth.face_box()) > 0.6, (sample.sample_id, box, truth.face_box())
        assert (inner[:, 0] >= box.left).all() and (inner[:, 0] < box.right).all(), sample.sample_id
        assert (inner[:, 1] >= box.top).all() and (inner[:, 1] < box.bottom).all(), sample.sample_id
        predicted = fit_landmarks(frame, box)
        left, right = eye_centers(expected)
        inter_ocular = float(np.hypot(*(right - left)))
        errors.append(np.linalg.norm(predicted - expected, axis=1).mean() / inter_ocular)
    assert max(errors) < 0.03, errors


def test_masks_cover_eyes_and_mouth_and_spare_the_cheeks(synthetic):
    root, samples = synthetic
    recipe = load_recipe("ha3d")
    size = tuple(recipe.align.size)
    for sample in samples:
        truth = load_ground_truth(root, sample.sample_id)
        out = process_sample(sample, recipe)
        masked = out.arrays["frames"][0] == 0
        frame = _onset_frame(sample)
        matrix = alignment_matrix(
            fit_landmarks(frame, detect_face(frame)),
            size=size,
            inter_ocular=recipe.align.inter_ocular,
            eye_row=recipe.align.eye_row,
        )
        true_points = transform_points(np.asarray(truth.landmarks(truth.onset)), matrix)
        for region in ("left_eye", "right_eye", "mouth"):
            polygon = np.zeros(size, np.uint8)
            cv2.fillPoly(polygon, [np.rint(true_points[list(REGIONS[region])]).astype(np.int32)], 1)
            covered = masked[polygon.astype(bool)].mean()
            assert covered > 0.98, (sample.sample_id, region, covered)
        cheeks = [
            0.5 * (true_points[2] + true_points[31]),
            0.5 * (true_points[14] + true_points[35]),
            0.5 * (true_points[3] + true_points[48]),
            0.5 * (true_points[13] + true_points[54]),
        ]
        for x, y in cheeks:
            patch = masked[int(y) - 2 : int(y) + 3, int(x) - 2 : int(x) + 3]
            assert patch.size and not patch.any(), (sample.sample_id, x, y)
        assert 0.03 < masked.mean() < 0.25  # eyes + mouth only, not half the face


def test_alignment_puts_the_true_eyes_level_at_the_recipe_distance(synthetic):
    root, samples = synthetic
    recipe = load_recipe("mbcc64")
    h, w = recipe.align.size
    for sample in samples:
        truth = load_ground_truth(root, sample.sample_id)
        frame = _onset_frame(sample)
        matrix = alignment_matrix(
            fit_landmarks(frame, detect_face(frame)),
            size=(h, w),
            inter_ocular=recipe.align.inter_ocular,
            eye_row=recipe.align.eye_row,
        )
        left, right = eye_centers(
            transform_points(np.asarray(truth.landmarks(truth.onset)), matrix)
        )
        angle = np.degrees(np.arctan2(right[1] - left[1], right[0] - left[0]))
        assert abs(angle) < 2.0, (sample.sample_id, angle)
        distance = np.hypot(*(right - left)) / w
        assert abs(distance - recipe.align.inter_ocular) < 0.03 * recipe.align.inter_ocular
        assert abs(0.5 * (left[1] + right[1]) / h - recipe.align.eye_row) < 0.03
