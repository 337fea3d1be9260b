"""TV-L1 flow against known motion: an exactly rendered smooth field on a real face, an
independent solver (scikit-image's TV-L1), and the generator's truth on synthetic clips."""

import cv2
import numpy as np
import pytest
from skimage import color, data
from skimage.registration import optical_flow_tvl1

from mer_prep.datasets import scan_dataset
from mer_prep.face import (
    align_clip,
    alignment_matrix,
    detect_face,
    fit_landmarks,
    read_frames,
)
from mer_prep.motion.flow import (
    TVL1Params,
    float16_error_bound,
    flow_magnitude,
    flow_orientation,
    flows_from_reference,
    optical_strain,
    tvl1_flow,
)
from mer_prep.synth.animate import make_scene, render_frames
from mer_prep.synth.ground_truth import load_ground_truth

SIZE = 134
INSIDE = (slice(24, SIZE - 24), slice(24, SIZE - 24))  # the face, away from hair and border


def bump(shape, centre, sigma):
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float32)
    return np.exp(-((xx - centre[0]) ** 2 + (yy - centre[1]) ** 2) / (2 * sigma**2))


@pytest.fixture(scope="module")
def face_pair():
    """The astronaut's face at 134x134 and the same face moved by a known field D (0.2-1.5 px):
    frame 1 shows the point of frame 0 at x at x + D(x), exactly (B-spline rendering, 1 grey
    level of sensor noise)."""
    gray = color.rgb2gray(data.astronaut())[20:240, 120:340]
    face = cv2.resize(gray.astype(np.float32), (SIZE, SIZE), interpolation=cv2.INTER_AREA) * 255
    field = np.zeros((SIZE, SIZE, 2), np.float32)
    field[..., 0] = 0.2 + 1.3 * bump(field.shape, (80, 90), 18)  # cheek/mouth pull to the right
    field[..., 1] = -0.2 - 1.0 * bump(field.shape, (50, 45), 15)  # brow raise
    scene = make_scene(np.repeat(face[..., None], 3, axis=2), gray=True)
    frames = render_frames(
        scene, field, np.array([0.0, 1.0]), np.zeros((2, 2)), 1.0, np.random.default_rng(7)
    )
    return frames.astype(np.float32) / 255, field


def endpoint_error(flow, truth):
    return float(np.hypot(*(flow - truth)[INSIDE].reshape(-1, 2).T).mean())


def test_opencv_tvl1_recovers_a_known_subpixel_field(face_pair):
    frames, field = face_pair
    magnitude = flow_magnitude(field)[INSIDE]
    assert 0.2 <= magnitude.min() < 0.4 and 1.3 < magnitude.max() <= 1.6  # the field asked for
    flow = tvl1_flow(frames[0], frames[1])
    assert flow.shape == (SIZE, SIZE, 2) and flow.dtype == np.float32
    assert endpoint_error(flow, field) < 0.15
    assert endpoint_error(np.zeros_like(field), field) > 0.5  # the check has teeth
    # uint8 input means the same thing as [0, 1] floats
    as_uint8 = np.rint(frames * 255).astype(np.uint8)
    assert endpoint_error(tvl1_flow(as_uint8[0], as_uint8[1]), field) < 0.15


def test_opencv_and_scikit_image_tvl1_agree(face_pair):
    frames, field = face_pair
    ours = tvl1_flow(frames[0], frames[1])
    rows, cols = optical_flow_tvl1(frames[0], frames[1])  # (v, u): same convention, row first
    theirs = np.stack([cols, rows], axis=-1).astype(np.float32)
    assert endpoint_error(theirs, field) < 0.2  # the oracle itself sees the field
    assert endpoint_error(ours, theirs) < 0.2


def test_flows_from_reference_and_derived_maps(face_pair):
    frames, field = face_pair
    stack = np.stack([frames[0], frames[1], frames[0]])
    flows = flows_from_reference(stack, reference=0)
    assert flows.shape == (3, SIZE, SIZE, 2)
    assert not flows[0].any()  # the reference against itself is zero by definition
    assert endpoint_error(flows[1], field) < 0.15
    assert float(np.abs(flows[2][INSIDE]).mean()) < 0.05  # same frame: no motion
    # strain of an exactly linear field u = a x + b y, v = c x + d y is constant
    yy, xx = np.mgrid[0:20, 0:30].astype(np.float32)
    linear = np.stack([0.01 * xx + 0.02 * yy, 0.04 * xx - 0.03 * yy], axis=-1)
    expected = np.sqrt(0.01**2 + 0.03**2 + 2 * (0.5 * (0.02 + 0.04)) ** 2)
    np.testing.assert_allclose(optical_strain(linear), expected, rtol=1e-5)
    assert not optical_strain(np.ones((5, 6, 2), np.float32)).any()  # translation: no strain
    np.testing.assert_allclose(
        flow_orientation(np.array([[0.0, 1.0], [-1.0, 0.0]])), [np.pi / 2, np.pi]
    )  # y points down the image
    bound = float16_error_bound(flows)
    assert 0 < bound <= np.abs(flows).max() * 2.0**-11


def test_solver_parameters_reach_opencv():
    params = TVL1Params(lambda_=0.3, warps=3, scales=4, epsilon=0.02)
    solver = params.create()
    assert (
        solver.getLambda(),
        solver.getWarpingsNumber(),
        solver.getScalesNumber(),
        solver.getEpsilon(),
    ) == pytest.approx((0.3, 3, 4, 0.02))


@pytest.fixture(scope="module")
def clips(synth_dataset):
    """Six synthetic CASME II clips without head jitter (so static parts are truly static)."""
    root, _ = synth_dataset(
        "casme2", n_subjects=2, clips_per_subject=3, seed=11, amplitude_px=(1.0, 2.0), jitter_px=0.0
    )
    return root, scan_dataset("casme2", root).samples


def truth_in_aligned_frame(truth_flow, matrix):
    """Resample a source-pixel flow field onto the aligned grid and rotate/scale it there."""
    inverse = cv2.invertAffineTransform(matrix)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    src_x = inverse[0, 0] * xx + inverse[0, 1] * yy + inverse[0, 2]
    src_y = inverse[1, 0] * xx + inverse[1, 1] * yy + inverse[1, 2]
    sampled = cv2.remap(
        truth_flow, src_x.astype(np.float32), src_y.astype(np.float32), cv2.INTER_LINEAR
    )
    return sampled @ matrix[:, :2].T.astype(np.float32)


def test_onset_to_apex_flow_follows_the_generator(clips):
    root, samples = clips
    for sample in samples:
        truth = load_ground_truth(root, sample.sample_id)
        frames = read_frames(
            [sample.frame_paths[truth.onset], sample.frame_paths[truth.apex]], gray=True
        )
        landmarks = fit_landmarks(frames[0], detect_face(frames[0]))
        matrix = alignment_matrix(landmarks, size=(SIZE, SIZE), inter_ocular=0.42, eye_row=0.36)
        aligned = align_clip(frames, matrix, (SIZE, SIZE))
        measured = tvl1_flow(aligned[0], aligned[1])
        expected = truth_in_aligned_frame(truth.flow(truth.onset, truth.apex), matrix)
        size = flow_magnitude(expected)
        moving = size >= 0.5 * size.max()
        cosine = (measured * expected).sum(-1) / (flow_magnitude(measured) * size + 1e-9)
        assert cosine[moving].mean() > 0.8, sample.sample_id
        static = size < 0.01
        static[:8] = static[-8:] = static[:, :8] = static[:, -8:] = False  # border effects
        assert static.sum() > 0.1 * static.size
        assert flow_magnitude(measured)[static].mean() < 0.1, sample.sample_id
