"""Spatio-temporal-slice keyframes (paper 003): hand-made sequences and synthetic clips."""

import cv2
import numpy as np
import pytest

from mer_prep.datasets import scan_dataset
from mer_prep.face import (
    align_clip,
    alignment_matrix,
    detect_face,
    fit_landmarks,
    read_frames,
)
from mer_prep.motion.keyframes import (
    default_slice_lines,
    global_shifts,
    keyframes_from_scores,
    select_keyframes,
    slice_change,
    stabilise,
    temporal_slices,
)
from mer_prep.synth.ground_truth import load_ground_truth

SIZE = (128, 128)


def aligned_clip(sample):
    """Every frame of ``sample`` aligned like the recipes do (one warp from the onset's
    landmarks): (T, 128, 128) float32 in [0, 1]."""
    decoded = read_frames(list(sample.frame_paths), gray=True)
    onset = decoded[sample.frame_numbers.index(sample.onset)]
    landmarks = fit_landmarks(onset, detect_face(onset))
    matrix = alignment_matrix(landmarks, size=SIZE, inter_ocular=0.42, eye_row=0.36)
    return align_clip(decoded, matrix, SIZE)


@pytest.fixture(scope="module")
def clips(synth_dataset):
    """Eight 40-frame CASME II look-alikes (0.2-2 px expressions, default jitter and noise) on a
    320x240 canvas (the face stays detectable; 4x faster to render than 640x480)."""
    root, _ = synth_dataset("casme2", n_subjects=4, clips_per_subject=2, seed=6, size=(240, 320))
    samples = scan_dataset("casme2", root).samples
    assert len(samples) == 8
    return [(aligned_clip(s), load_ground_truth(root, s.sample_id)) for s in samples]


def test_keyframes_concentrate_inside_the_expression(clips):
    inside_total = 0
    for frames, truth in clips:
        keys = select_keyframes(frames, 16, truth.onset, truth.apex)
        assert keys.dtype == np.int64 and keys.shape == (16,)
        assert np.all(np.diff(keys) > 0) and 0 <= keys[0] and keys[-1] < len(frames)
        assert truth.onset in keys and truth.apex in keys
        inside = int(np.sum((keys >= truth.onset) & (keys <= truth.offset)))
        assert inside > 16 - inside, (truth.sample_id, keys, truth.onset, truth.offset)
        inside_total += inside
        np.testing.assert_array_equal(keys, select_keyframes(frames, 16, truth.onset, truth.apex))
    # Measured 0.93 here (at least 13 of 16 per clip); plain slice differences, without the
    # stabilisation and the temporal blur, reach 0.69 and fail one clip.
    assert inside_total / (16 * len(clips)) > 0.85


def test_largest_slice_change_lies_inside_the_expression(clips):
    for frames, truth in clips:
        scores = slice_change(frames)
        assert scores.shape == (len(frames),) and np.all(scores >= 0)
        assert truth.onset <= int(np.argmax(scores)) <= truth.offset, truth.sample_id


def test_global_shifts_follow_the_head_jitter(clips):
    """The estimated global shifts are the true jitter times the alignment's scale."""
    for frames, truth in clips:
        shifts = global_shifts(frames)[:, 0]
        jitter = truth.jitter[:, 0] - truth.jitter[:, 0].mean()
        shifts = shifts - shifts.mean()
        # The alignment scales canvas px by one factor (54 px between the eyes / 35-42 px on
        # the canvas); fit it on x, which the mostly vertical facial motions leave alone (a
        # wide brow raise does pull the least-squares y estimate by up to 0.2 px).
        scale = float(np.sum(shifts * jitter) / np.sum(jitter * jitter))
        assert 1.1 < scale < 1.9, (truth.sample_id, scale)
        assert np.std(shifts - scale * jitter) < 0.05, truth.sample_id  # measured <= 0.025 px


def _texture(shape=(48, 64), seed=0):
    rng = np.random.default_rng(seed)
    return cv2.GaussianBlur(rng.random(shape).astype(np.float32), (0, 0), 1.5)


def test_global_shifts_recover_a_known_translation():
    base = _texture((64, 64))
    truth = np.array([[0.0, 0.0], [0.3, -0.2], [-0.25, 0.15], [0.1, 0.35]])
    # frames[t](x + d) == base(x): frame t is base moved by +d
    frames = np.stack(
        [
            cv2.warpAffine(
                base,
                np.array([[1, 0, dx], [0, 1, dy]]),
                (64, 64),
                flags=cv2.INTER_LINEAR,
                borderMode=cv2.BORDER_REFLECT,
            )
            for dx, dy in truth
        ]
    )
    shifts = global_shifts(frames)
    np.testing.assert_allclose(shifts - shifts[0], truth, atol=0.02)
    # What is left after stabilising is the blur of the two bilinear resamplings (measured 1/3).
    steady, raw = stabilise(frames)[:, 10:-10, 10:-10], frames[:, 10:-10, 10:-10]
    assert np.abs(steady - steady.mean(axis=0)).mean() < 0.5 * np.abs(raw - raw.mean(axis=0)).mean()


def test_temporal_slices_take_rows_and_columns():
    frames = np.random.default_rng(1).random((5, 12, 10)).astype(np.float32)
    horizontal, vertical = temporal_slices(frames, rows=[2, 7], cols=[0, 3, 9])
    assert horizontal.shape == (5, 2, 10) and vertical.shape == (5, 3, 12)
    np.testing.assert_array_equal(horizontal[:, 1], frames[:, 7, :])
    np.testing.assert_array_equal(vertical[:, 2], frames[:, :, 9])
    rows, cols = default_slice_lines((128, 128))
    assert (rows[0], rows[-1], cols[0], cols[-1]) == (19, 121, 13, 114)
    horizontal, vertical = temporal_slices(frames)
    assert horizontal.shape[1] == len(default_slice_lines((12, 10))[0])


RAW = {"sigma": 0.0, "temporal_sigma": 0.0, "stabilise_first": False}


def test_one_changed_frame_gets_the_top_score():
    frames = np.repeat(_texture()[None], 9, axis=0)
    frames[5, 10:30, 20:40] += 0.2
    scores = slice_change(frames, **RAW)
    assert int(np.argmax(scores)) == 5
    assert scores[5] == pytest.approx(2 * scores[4]) and scores[4] == pytest.approx(scores[6])
    np.testing.assert_array_equal(scores[[0, 1, 2, 3, 7, 8]], 0.0)
    # with the default blurs and stabilisation the changed frame still stands out
    assert int(np.argmax(slice_change(frames, temporal_sigma=0.0))) == 5


def test_nearest_pixel_matching_tolerates_a_one_pixel_shift_but_not_a_change():
    texture = _texture((48, 66))
    still = np.repeat(texture[None, :, 1:-1], 3, axis=0)
    shifted = still.copy()
    shifted[1] = texture[:, 2:]  # the middle frame moved 1 px along the rows
    changed = still.copy()
    changed[1, :, 20:40] = _texture((48, 20), seed=5)  # a real change of the texture
    rows, no_cols = np.arange(48), np.array([], dtype=np.int64)
    shift_score = slice_change(shifted, rows, no_cols, search=1, **RAW)[1]
    shift_exact = slice_change(shifted, rows, no_cols, search=0, **RAW)[1]
    change_score = slice_change(changed, rows, no_cols, search=1, **RAW)[1]
    # only the one edge pixel per row that has no match inside the slice costs anything
    assert shift_score < 0.05 * shift_exact
    assert change_score > 10 * shift_score


def test_keyframes_from_scores_ranks_forces_and_breaks_ties():
    scores = np.array([0.0, 5.0, 1.0, 3.0, 3.0, 0.5, 4.0, np.nan])
    np.testing.assert_array_equal(keyframes_from_scores(scores, 4, onset=0, apex=2), [0, 1, 2, 6])
    # equal scores 3.0 at positions 3 and 4: the earlier one wins
    np.testing.assert_array_equal(
        keyframes_from_scores(scores, 5, onset=0, apex=2), [0, 1, 2, 3, 6]
    )
    np.testing.assert_array_equal(keyframes_from_scores(scores, 8, 0, 2), np.arange(8))
    assert keyframes_from_scores(scores, 1, onset=4, apex=4).tolist() == [4]
    for k, onset, apex in ((9, 0, 2), (1, 0, 2), (3, 0, 8), (3, -1, 2)):
        with pytest.raises(ValueError):
            keyframes_from_scores(scores, k, onset, apex)
    with pytest.raises(ValueError, match="keyframes from 8 frames"):
        select_keyframes(np.zeros((8, 16, 16), np.float32), 9, 0, 2)
