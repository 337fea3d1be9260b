"""Face stages (pipeline stages 1-5) checked against a known geometric ground truth.

The astronaut from scikit-image is placed on a 640x480 canvas by a known affine (rotation,
scale, sub-pixel shift); landmarks fitted on the original and mapped through that affine are the
reference for everything fitted on the canvas.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data
from skimage.draw import polygon as draw_polygon

import mer_prep.face.detect as detect_module
from mer_prep.errors import FrameReadError, NoFaceError
from mer_prep.face import (
    REGIONS,
    FaceBox,
    alignment_matrix,
    apply_mask,
    crop_box,
    detect_face,
    eye_centers,
    fit_landmarks,
    landmark_split_row,
    read_frames,
    read_video_frames,
    region_mask,
    resize_frames,
    split_halves,
    to_gray,
    to_unit,
    transform_points,
    warp_frames,
)

CANVAS_SIZE = (480, 640)  # (height, width)
# Astronaut pixels -> canvas pixels: 4 degrees, 0.9x, sub-pixel shift.
AFFINE = cv2.getRotationMatrix2D((0.0, 0.0), 4.0, 0.9)
AFFINE[:, 2] = (170.3, 20.6)
# The HOG detector's known false face on the astronaut's suit (astronaut pixels).
SUIT_CENTER = np.array([175.0, 382.0])


def _eye_distance(landmarks: np.ndarray) -> float:
    left, right = eye_centers(landmarks)
    return float(np.linalg.norm(right - left))


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return data.astronaut()


@pytest.fixture(scope="module")
def reference(astronaut: np.ndarray) -> np.ndarray:
    """Landmarks fitted on the untransformed astronaut, mapped onto the canvas."""
    return transform_points(fit_landmarks(astronaut, detect_face(astronaut)), AFFINE)


@pytest.fixture(scope="module")
def canvas(astronaut: np.ndarray) -> np.ndarray:
    return cv2.warpAffine(astronaut, AFFINE, CANVAS_SIZE[::-1])


@pytest.fixture(scope="module")
def canvas_box(canvas: np.ndarray) -> FaceBox:
    return detect_face(canvas, sample="synthetic/astronaut")


@pytest.fixture(scope="module")
def canvas_landmarks(canvas: np.ndarray, canvas_box: FaceBox) -> np.ndarray:
    return fit_landmarks(canvas, canvas_box)


# --- detection ------------------------------------------------------------------------------


def test_hog_box_contains_face_not_suit(canvas_box: FaceBox, reference: np.ndarray) -> None:
    assert canvas_box.method == "hog"
    for x, y in (*eye_centers(reference), reference[48:60].mean(axis=0), reference[30]):
        assert canvas_box.contains(x, y)
    suit_x, suit_y = transform_points(SUIT_CENTER, AFFINE)
    assert not canvas_box.contains(suit_x, suit_y)
    # A face box, not a head box: roughly 1.5-3 eye distances wide.
    assert 1.5 < canvas_box.width / _eye_distance(reference) < 3.0
    assert canvas_box.width == canvas_box.right - canvas_box.left


def test_best_score_wins_over_larger_suit_box(astronaut: np.ndarray) -> None:
    box = detect_face(astronaut)
    face_center = np.array(box.center)
    assert np.linalg.norm(face_center - [222, 127]) < 15
    assert not box.contains(*SUIT_CENTER)


def test_lbp_cascade_alone_finds_face(canvas: np.ndarray, reference: np.ndarray) -> None:
    box = detect_face(canvas, method="haar", fallback=False)
    assert box.method == "haar"
    for x, y in eye_centers(reference):
        assert box.contains(x, y)
    # The box is mapped to HOG geometry, so the shape predictor still fits well on it.
    error = np.linalg.norm(fit_landmarks(canvas, box) - reference, axis=1)
    assert error.mean() < 0.03 * _eye_distance(reference)


def test_fallback_reaches_cascade_when_hog_finds_nothing(
    canvas: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    upsamples: list[int] = []

    def blind_hog(image: np.ndarray, upsample: int) -> None:
        upsamples.append(upsample)
        return None

    monkeypatch.setattr(detect_module, "_detect_hog", blind_hog)
    assert detect_face(canvas).method == "haar"
    assert upsamples == [0, 1]
    with pytest.raises(NoFaceError):
        detect_face(canvas, fallback=False, sample="s")


def test_detection_is_thread_safe(canvas: np.ndarray, canvas_box: FaceBox) -> None:
    # dlib's scanner keeps per-call state and releases the GIL: shared use would race.
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=4) as pool:
        boxes = list(pool.map(lambda _: detect_face(canvas), range(8)))
    assert all(box == canvas_box for box in boxes)


def test_blank_image_raises_no_face_naming_sample() -> None:
    blank = np.full(CANVAS_SIZE, 128, np.uint8)
    with pytest.raises(NoFaceError) as info:
        detect_face(blank, sample="casme2/sub01/EP02_01f")
    assert info.value.sample == "casme2/sub01/EP02_01f"
    assert "casme2/sub01/EP02_01f" in str(info.value)


def test_rejects_non_uint8_image() -> None:
    with pytest.raises(ValueError):
        detect_face(np.zeros((64, 64), np.float32))


# --- landmarks ------------------------------------------------------------------------------


def test_landmarks_follow_known_affine(canvas_landmarks: np.ndarray, reference: np.ndarray) -> None:
    assert canvas_landmarks.shape == (68, 2) and canvas_landmarks.dtype == np.float32
    eye_distance = _eye_distance(reference)
    error = np.linalg.norm(canvas_landmarks - reference, axis=1) / eye_distance
    assert error.mean() < 0.03
    assert error.max() < 0.08
    for fitted, expected in zip(eye_centers(canvas_landmarks), eye_centers(reference), strict=True):
        assert np.linalg.norm(fitted - expected) < 0.03 * eye_distance


# --- alignment ------------------------------------------------------------------------------


def test_alignment_matrix_puts_eyes_where_asked(canvas_landmarks: np.ndarray) -> None:
    size = (128, 112)
    matrix = alignment_matrix(canvas_landmarks, size=size, inter_ocular=0.4, eye_row=0.35)
    assert matrix.shape == (2, 3) and matrix.dtype == np.float64
    left, right = eye_centers(transform_points(canvas_landmarks, matrix))
    dx, dy = right - left
    assert abs(np.degrees(np.arctan2(dy, dx))) < 0.5
    assert dx > 0  # not mirrored: the image-left eye stays on the left
    assert np.hypot(dx, dy) == pytest.approx(0.4 * size[1], abs=1e-4)
    assert (left + right) / 2 == pytest.approx([0.5 * size[1], 0.35 * size[0]], abs=1e-4)


def test_aligned_output_refits_to_requested_geometry(
    canvas: np.ndarray, canvas_landmarks: np.ndarray
) -> None:
    size = (320, 320)
    matrix = alignment_matrix(canvas_landmarks, size=size, inter_ocular=0.3, eye_row=0.4)
    aligned = warp_frames(canvas[None], matrix, size)[0]
    refit = fit_landmarks(aligned, detect_face(aligned))
    left, right = eye_centers(refit)
    dx, dy = right - left
    assert abs(np.degrees(np.arctan2(dy, dx))) < 0.5
    assert np.hypot(dx, dy) == pytest.approx(0.3 * 320, rel=0.03)
    assert (left + right) / 2 == pytest.approx([160, 128], abs=2.0)


def test_warp_moves_pixels_like_transform_points() -> None:
    # A sub-pixel Gaussian blob: its centroid after warping must land where the matrix says.
    yy, xx = np.mgrid[0:200, 0:300]
    blob_xy = np.array([120.3, 80.6])
    frame = np.exp(-((xx - blob_xy[0]) ** 2 + (yy - blob_xy[1]) ** 2) / (2 * 3.0**2))
    frames = np.stack([(frame * 250).astype(np.uint8)] * 3)
    matrix = cv2.getRotationMatrix2D((100.0, 90.0), 17.0, 0.7)
    matrix[:, 2] += (-30.25, 10.5)
    warped = warp_frames(frames, matrix, (150, 160))
    assert warped.shape == (3, 150, 160) and warped.dtype == np.uint8
    weights = warped[1].astype(np.float64)
    wy, wx = np.mgrid[0:150, 0:160]
    centroid = np.array([(wx * weights).sum(), (wy * weights).sum()]) / weights.sum()
    assert centroid == pytest.approx(transform_points(blob_xy, matrix), abs=0.15)
    assert np.array_equal(warped[0], warped[2])


def test_warp_antialias_shrink_keeps_geometry_and_smooths() -> None:
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (2, 400, 400, 3), dtype=np.uint8)
    matrix = cv2.getRotationMatrix2D((200.0, 200.0), 3.0, 0.25)
    matrix[:, 2] += (50.0 - 200.0, 50.0 - 200.0)  # source centre -> output centre
    smooth = warp_frames(frames, matrix, (100, 100))
    sharp = warp_frames(frames, matrix, (100, 100), antialias=False)
    assert smooth.shape == (2, 100, 100, 3)
    # Averaging ~16 noisy pixels per output pixel shrinks the noise; point sampling does not.
    assert smooth[:, 20:80, 20:80].std() < 0.5 * sharp[:, 20:80, 20:80].std()
    assert abs(float(smooth[:, 20:80, 20:80].mean()) - 127.5) < 3
    # On a smooth image the blur changes nothing visible: the cropped, shifted source region
    # lines up exactly with the original geometry.
    yy, xx = np.mgrid[0:400, 0:400]
    blob = 250 * np.exp(-((xx - 190.5) ** 2 + (yy - 215.25) ** 2) / (2 * 40.0**2))
    smooth_blob = np.stack([blob.astype(np.uint8)] * 2)
    difference = warp_frames(smooth_blob, matrix, (100, 100)).astype(int) - warp_frames(
        smooth_blob, matrix, (100, 100), antialias=False
    )
    assert np.abs(difference).max() <= 2


def test_crop_box_pads_outside_image() -> None:
    frames = np.arange(2 * 10 * 12, dtype=np.uint8).reshape(2, 10, 12)
    inside = crop_box(frames, FaceBox(2, 3, 7, 8, 1.0, "hog"))
    assert np.array_equal(inside, frames[:, 3:8, 2:7])
    edge = crop_box(frames, FaceBox(8, -2, 14, 4, 1.0, "hog"), margin=0.5)
    assert edge.shape == (2, 6 + 6, 6 + 6)
    # Box with margin covers columns 5..16 and rows -5..6: image part first, zeros elsewhere.
    assert np.array_equal(edge[:, 5:12, :7], frames[:, 0:7, 5:12])
    assert not edge[:, :5].any() and not edge[:, :, 7:].any()


def test_resize_frames_shape_and_content() -> None:
    frames = np.zeros((3, 64, 80, 3), np.uint8)
    frames[:, :, 40:] = 200
    small = resize_frames(frames, (32, 40))
    assert small.shape == (3, 32, 40, 3) and small.dtype == np.uint8
    assert (small[:, :, :20] == 0).all() and (small[:, :, 20:] == 200).all()
    assert resize_frames(frames[..., 0], (128, 160)).shape == (3, 128, 160)


# --- intensity ------------------------------------------------------------------------------


def test_to_gray_uses_bt601_and_passes_gray_through() -> None:
    rgb = np.array([[[[255, 0, 0], [0, 255, 0], [0, 0, 255], [100, 150, 200]]]], np.uint8)
    gray = to_gray(rgb)
    assert gray.shape == (1, 1, 4) and gray.dtype == np.uint8
    expected = np.round(rgb.astype(float) @ [0.299, 0.587, 0.114])
    assert np.abs(gray.astype(float) - expected).max() <= 1
    assert to_gray(gray) is gray


def test_to_unit_range() -> None:
    frames = np.array([[[0, 51, 255]]], np.uint8)
    unit = to_unit(frames)
    assert unit.dtype == np.float32
    assert unit.ravel().tolist() == pytest.approx([0.0, 0.2, 1.0])


# --- masks ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def aligned_landmarks(canvas_landmarks: np.ndarray) -> np.ndarray:
    matrix = alignment_matrix(canvas_landmarks, size=(128, 128), inter_ocular=0.4)
    return transform_points(canvas_landmarks, matrix)


def _cheek_points(landmarks: np.ndarray) -> list[np.ndarray]:
    return [
        (landmarks[2] + landmarks[31]) / 2,
        (landmarks[14] + landmarks[35]) / 2,
        (landmarks[3] + landmarks[48]) / 2,
        (landmarks[13] + landmarks[54]) / 2,
    ]


@pytest.mark.parametrize("margin", [0, 3])
def test_mask_covers_eyes_and_mouth_not_cheeks(aligned_landmarks: np.ndarray, margin: int) -> None:
    shape = (128, 128)
    mask = region_mask(aligned_landmarks, shape, margin=margin)
    assert mask.shape == shape and mask.dtype == bool
    for name in ("left_eye", "right_eye", "mouth"):
        polygon = aligned_landmarks[list(REGIONS[name])]
        rows, cols = draw_polygon(polygon[:, 1], polygon[:, 0], shape)  # centres inside
        assert len(rows) > 5
        assert mask[rows, cols].all(), name
        vertices = np.round(polygon).astype(int)
        assert mask[vertices[:, 1], vertices[:, 0]].all(), name
    for x, y in np.round(_cheek_points(aligned_landmarks)).astype(int):
        assert not mask[y - 1 : y + 2, x - 1 : x + 2].any()  # a 3x3 patch on each cheek
    # Only the masked regions: a small fraction of the face.
    assert mask.mean() < 0.15


def test_mask_margin_grows_by_that_many_pixels(aligned_landmarks: np.ndarray) -> None:
    tight = region_mask(aligned_landmarks, (128, 128))
    wide = region_mask(aligned_landmarks, (128, 128), margin=3)
    assert (wide >= tight).all() and wide.sum() > tight.sum()
    distance = cv2.distanceTransform((~tight).astype(np.uint8), cv2.DIST_L2, 5)
    assert (wide[distance <= 3]).all()
    assert not wide[distance > 3.6].any()


def test_mask_groups_and_unknown_region(aligned_landmarks: np.ndarray) -> None:
    eyes = region_mask(aligned_landmarks, (128, 128), regions=("eyes",))
    both = region_mask(aligned_landmarks, (128, 128), regions=("left_eye", "right_eye"))
    assert np.array_equal(eyes, both)
    with pytest.raises(ValueError, match="unknown face region"):
        region_mask(aligned_landmarks, (128, 128), regions=("ears",))


def test_black_out_and_keep_only_are_complements(aligned_landmarks: np.ndarray) -> None:
    rng = np.random.default_rng(1)
    mask = region_mask(aligned_landmarks, (128, 128), margin=2)
    for frames in (
        rng.integers(1, 256, (4, 128, 128), dtype=np.uint8),
        rng.integers(1, 256, (4, 128, 128, 3), dtype=np.uint8),
    ):
        out = apply_mask(frames, mask, mode="black_out")
        kept = apply_mask(frames, mask, mode="keep_only")
        assert out.shape == frames.shape and out.dtype == frames.dtype
        assert np.array_equal(out + kept, frames)
        assert not out[:, mask].any() and (out[:, ~mask] == frames[:, ~mask]).all()
        assert not kept[:, ~mask].any()


# --- split ----------------------------------------------------------------------------------


def test_split_halves_fixed() -> None:
    rows = np.broadcast_to(np.arange(128, dtype=np.uint8)[:, None], (128, 128))
    frames = np.stack([rows + k for k in range(3)]).astype(np.uint8)
    upper, lower = split_halves(frames)
    assert upper.shape == lower.shape == (3, 64, 128)
    assert np.array_equal(upper, frames[:, :64]) and np.array_equal(lower, frames[:, 64:])


def test_split_halves_at_landmark_row(aligned_landmarks: np.ndarray) -> None:
    row = landmark_split_row(aligned_landmarks)
    left, right = eye_centers(aligned_landmarks)
    assert max(left[1], right[1]) < row < aligned_landmarks[48:60, 1].min()
    rows = np.broadcast_to(np.arange(128, dtype=np.uint8)[:, None], (2, 128, 128))
    upper, lower = split_halves(np.ascontiguousarray(rows), split_row=row)
    assert upper.shape == lower.shape == (2, 64, 128)
    # Each half spans its source rows, resized to 64: values run from the first to last row.
    assert upper[0, 0, 0] <= 1 and abs(int(upper[0, -1, 0]) - (row - 1)) <= 1
    assert abs(int(lower[0, 0, 0]) - row) <= 1 and lower[0, -1, 0] >= 126
    assert (np.diff(upper[0, :, 0].astype(int)) >= 0).all()
    with pytest.raises(ValueError):
        split_halves(rows, split_row=0)


# --- frame reading --------------------------------------------------------------------------


def _write_frames(folder: Path, numbers: list[int], size: tuple[int, int] = (48, 64)) -> None:
    for n in numbers:
        frame = np.full((*size, 3), (n * 20) % 256, np.uint8)
        frame[..., 0] = 255 - frame[..., 0]  # R differs from G, B: channel order is checked
        cv2.imwrite(str(folder / f"img{n}.jpg"), frame[..., ::-1])


def test_read_frames_reads_exactly_the_given_files(tmp_path: Path) -> None:
    _write_frames(tmp_path, list(range(1, 13)))
    order = [10, 2, 1, 12]
    frames = read_frames([tmp_path / f"img{n}.jpg" for n in order])
    assert frames.shape == (4, 48, 64, 3) and frames.dtype == np.uint8
    for frame, n in zip(frames, order, strict=True):
        value = (n * 20) % 256
        assert np.abs(frame[..., 1].astype(int) - value).max() <= 2
        assert np.abs(frame[..., 0].astype(int) - (255 - value)).max() <= 2
    gray = read_frames([str(tmp_path / "img2.jpg")], gray=True)
    assert gray.shape == (1, 48, 64)
    expected = 0.299 * (255 - 40) + 0.587 * 40 + 0.114 * 40
    assert abs(float(gray.mean()) - expected) < 3


def test_truncated_jpeg_raises_naming_file_and_sample(
    tmp_path: Path, astronaut: np.ndarray
) -> None:
    good = tmp_path / "img1.jpg"
    cv2.imwrite(str(good), astronaut[..., ::-1])
    cut = tmp_path / "img2.jpg"
    payload = good.read_bytes()
    cut.write_bytes(payload[: len(payload) // 2])
    with pytest.raises(FrameReadError) as info:
        read_frames([good, cut], sample="casme2/sub01/EP02_01f")
    assert info.value.file == str(cut)
    assert str(cut) in str(info.value) and "casme2/sub01/EP02_01f" in str(info.value)
    assert "truncated" in str(info.value)


def test_missing_and_mismatched_frames_raise(tmp_path: Path) -> None:
    _write_frames(tmp_path, [1])
    with pytest.raises(FrameReadError) as info:
        read_frames([tmp_path / "img1.jpg", tmp_path / "img7.jpg"], sample="s/1")
    assert info.value.file == str(tmp_path / "img7.jpg") and info.value.sample == "s/1"
    cv2.imwrite(str(tmp_path / "img2.jpg"), np.zeros((10, 10, 3), np.uint8))
    with pytest.raises(FrameReadError, match="differs"):
        read_frames([tmp_path / "img1.jpg", tmp_path / "img2.jpg"])
    garbage = tmp_path / "img3.jpg"
    garbage.write_bytes(b"\xff\xd8not a jpeg at all\xff\xd9")
    with pytest.raises(FrameReadError, match="decode"):
        read_frames([garbage])


@pytest.fixture(scope="module")
def video_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("video") / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (64, 48))
    if not writer.isOpened():
        pytest.skip("no MJPG video writer in this OpenCV build")
    for i in range(30):
        writer.write(np.full((48, 64, 3), i * 8, np.uint8))
    writer.release()
    return path


@pytest.mark.parametrize("seek_gap", [None, 4])
def test_read_video_frames_returns_requested_frames(video_path: Path, seek_gap: int | None) -> None:
    indices = [17, 3, 3, 25, 0]
    frames = read_video_frames(video_path, indices, seek_gap=seek_gap)
    assert frames.shape == (5, 48, 64, 3) and frames.dtype == np.uint8
    means = frames.reshape(5, -1).mean(axis=1)
    assert means == pytest.approx([i * 8 for i in indices], abs=2.5)
    gray = read_video_frames(video_path, [29], gray=True)
    assert gray.shape == (1, 48, 64) and abs(float(gray.mean()) - 29 * 8) < 2.5


def test_read_video_frames_past_end_names_index(video_path: Path, tmp_path: Path) -> None:
    with pytest.raises(FrameReadError) as info:
        read_video_frames(video_path, [2, 40], sample="casme-sq/s15/0101")
    assert "40" in str(info.value) and info.value.file == os.fspath(video_path)
    assert info.value.sample == "casme-sq/s15/0101"
    with pytest.raises(FrameReadError):
        read_video_frames(tmp_path / "absent.avi", [0])
