"""Region motion (mer_prep.motion.region_motion) against known synthetic motion."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from mer_prep.errors import InvalidArgumentError
from mer_prep.face.align import alignment_matrix, transform_points
from mer_prep.motion.region_motion import (
    face_regions,
    main_directional_mean,
    pair_motion,
    region_motion,
)
from mer_prep.motion.video_motion import ROI_NAMES
from mer_prep.synth.faces import source_face

SIZE = (96, 96)
MOUTH = [ROI_NAMES.index("mouth_left"), ROI_NAMES.index("mouth_right")]
NOT_MOUTH = [i for i in range(len(ROI_NAMES)) if i not in MOUTH]


@pytest.fixture(scope="module")
def landmarks() -> np.ndarray:
    """The source face's 68 landmarks, aligned into SIZE as the store aligns faces."""
    points = source_face().landmarks
    matrix = alignment_matrix(points, size=SIZE, inter_ocular=0.4, eye_row=0.36)
    return transform_points(points, matrix)


@pytest.fixture(scope="module")
def regions(landmarks):
    return face_regions(landmarks, SIZE)


def _texture(size: tuple[int, int], seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    image = rng.random((size[0] + 16, size[1] + 16)).astype(np.float32)
    return cv2.GaussianBlur(image, (0, 0), 1.5)


def test_regions_are_where_the_landmarks_are_and_leave_the_eyes_out(regions, landmarks):
    assert regions.names == ROI_NAMES and regions.masks.shape == (len(ROI_NAMES), *SIZE)
    assert (
        not (regions.masks & regions.eye_mask).any() and not (regions.nose & regions.eye_mask).any()
    )
    for eye in (range(36, 42), range(42, 48)):
        x, y = np.round(landmarks[list(eye)].mean(axis=0)).astype(int)
        assert regions.eye_mask[y, x]
    mouth_left, mouth_right = regions.masks[MOUTH[0]], regions.masks[MOUTH[1]]
    assert not (mouth_left & mouth_right).any()
    assert np.nonzero(mouth_left)[1].max() < np.nonzero(mouth_right)[1].min()
    brow = regions.masks[ROI_NAMES.index("brow_left")]
    assert np.nonzero(brow)[0].mean() < np.nonzero(regions.masks[MOUTH[0]])[0].mean()


def test_known_flow_field_gives_its_region_values(regions):
    """A constant head shift everywhere, a 2 px downward mouth motion on top, and a huge motion
    inside the eye mask: head removed, the mouth reads 2 px, the eyes' huge motion is unseen."""
    flow = np.zeros((*SIZE, 2), np.float32)
    flow[...] = (1.5, -0.5)  # the head
    mouth = regions.masks[MOUTH[0]] | regions.masks[MOUTH[1]]
    flow[mouth] += (0.0, 2.0)
    flow[regions.eye_mask] += (30.0, 30.0)
    magnitude, main, strain = pair_motion(flow, regions)
    assert magnitude[MOUTH] == pytest.approx(2.0, abs=1e-5)
    assert main[MOUTH] == pytest.approx(2.0, abs=1e-5)
    assert magnitude[NOT_MOUTH] == pytest.approx(0.0, abs=1e-5)
    assert main[NOT_MOUTH] == pytest.approx(0.0, abs=1e-5)
    assert magnitude.dtype == np.float32 and strain.dtype == np.float32
    head_only = np.zeros((*SIZE, 2), np.float32) + np.float32(2.0)
    assert pair_motion(head_only, regions)[2] == pytest.approx(0.0, abs=1e-6)  # no strain


def test_main_directional_mean_takes_the_most_populated_direction():
    right = np.tile([[1.0, 0.0]], (10, 1))
    up = np.tile([[0.0, -3.0]], (4, 1))
    assert main_directional_mean(np.vstack([right, up])) == pytest.approx(1.0)
    assert main_directional_mean(np.vstack([right[:3], up])) == pytest.approx(3.0)
    assert main_directional_mean(np.zeros((0, 2))) == 0.0
    # opposite directions cancel in a mean flow but not in MDMD
    both = np.vstack([right, -right[:9]])
    assert main_directional_mean(both) == pytest.approx(1.0)


def test_translated_texture_is_measured_then_removed_as_head_motion(regions):
    """A whole-frame translation of a texture: TV-L1 finds it (before removal, the nose's own
    mean flow is the shift) and, as head motion, it is removed from every region."""
    texture = _texture(SIZE)
    frame0 = texture[8:-8, 8:-8]
    frame1 = texture[8:-8, 7:-9]  # content moves one pixel right
    flow = cv2.optflow.DualTVL1OpticalFlow_create().calc(frame0, frame1, None)
    assert flow[regions.nose].mean(axis=0) == pytest.approx([1.0, 0.0], abs=0.1)
    magnitude, _, _ = region_motion(np.stack([frame0, frame1]), regions, k=1)
    assert magnitude.shape == (1, len(ROI_NAMES))
    assert magnitude.max() < 0.15


def test_a_patch_moving_in_the_mouth_only_moves_the_mouth_columns(regions):
    texture = _texture(SIZE, seed=1)
    frames = np.stack([texture[8:-8, 8:-8]] * 4)
    mouth = regions.masks[MOUTH[0]] | regions.masks[MOUTH[1]]
    rows, cols = np.nonzero(mouth)
    y0, y1, x0, x1 = rows.min() + 3, rows.max() - 2, cols.min() + 3, cols.max() - 2
    for t in (2, 3):  # frames 2 and 3: the mouth patch is one pixel lower
        frames[t, y0:y1, x0:x1] = texture[8 + y0 - 1 : 8 + y1 - 1, 8 + x0 : 8 + x1]
    magnitude, main, _ = region_motion(frames, regions, k=2)
    assert magnitude.shape == (2, len(ROI_NAMES))
    for row in (0, 1):  # pairs 0->2 and 1->3 both see the motion
        assert magnitude[row, MOUTH].min() > 0.4
        assert main[row, MOUTH].min() > 0.6
        assert magnitude[row, NOT_MOUTH].max() < 0.5 * magnitude[row, MOUTH].min()
        others = [i for i in NOT_MOUTH if i != ROI_NAMES.index("nose")]
        assert magnitude[row, others].max() < 0.1
    still, _, _ = region_motion(frames[:2], regions, k=1)
    assert still.max() < 0.05


def test_bad_inputs_are_refused(regions, landmarks):
    with pytest.raises(InvalidArgumentError):
        region_motion(np.zeros((3, 10, 10), np.float32), regions, k=1)
    with pytest.raises(InvalidArgumentError):
        region_motion(np.zeros((3, *SIZE), np.float32), regions, k=0)
    with pytest.raises(InvalidArgumentError):
        face_regions(landmarks, SIZE, names=("cheek",))
    empty, _, _ = region_motion(np.zeros((2, *SIZE), np.float32), regions, k=2)
    assert empty.shape == (0, len(ROI_NAMES))
