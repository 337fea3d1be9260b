"""Eulerian video magnification (stage 7): pyramid, temporal filters, gains, and measured motion."""

import numpy as np
import pytest
from scipy import ndimage, optimize
from skimage import color, data

from mer_prep.motion.flow import tvl1_flow
from mer_prep.motion.magnify import (
    collapse_pyramid,
    ideal_bandpass,
    iir_bandpass,
    laplacian_pyramid,
    level_gains,
    level_wavelengths,
    magnify,
)

FPS = 200.0
N_FRAMES = 100  # 0.5 s: 20 and 80 Hz make whole periods, 2 Hz one period
BAND = {"f_low": 5.0, "f_high": 30.0}  # the second harmonic of 20 Hz (40 Hz) stays outside
ALPHA = 4.0
AMPLITUDE = 0.2  # px; (1 + ALPHA) * AMPLITUDE = 1 px, the Eq. 14 bound at λc
CUTOFF = 8.0  # px, so every level but the finest gets the full ALPHA
DIRECTION = np.array([0.6, 0.8])  # unit (dx, dy): both image axes move
SIZE = 134
INNER = slice(30, SIZE - 30)  # away from the borders, where flow and pyramid are least sure


@pytest.fixture(scope="module")
def face() -> np.ndarray:
    """Cubic-spline coefficients of the astronaut's face (float64), smoothed with σ = 3 px.

    Magnification moves only what the amplified levels hold. The finest level keeps gain 0 and
    holds wavelengths up to ~6 px at half amplitude, with a tail beyond: on the unsmoothed face
    TV-L1 reads 0.67 (1 + α), 0.85 (1 + α) at σ = 1.5 px and 0.94 (1 + α) at σ = 3 px. σ = 3 px
    on this 512 px portrait (the face is ~220 px wide) leaves mostly structure that the full-α
    levels hold, the regime in which Wu et al.'s (1 + α) claim is made and tested here.
    """
    gray = color.rgb2gray(data.astronaut())[40:240, 130:330]
    return ndimage.spline_filter(ndimage.gaussian_filter(gray, 3.0), order=3)


def render(face: np.ndarray, displacement: np.ndarray) -> np.ndarray:
    """A (T, SIZE, SIZE) float32 clip whose content moves by displacement[t] * DIRECTION px.

    Cubic-spline shifts are exact to well below 0.01 px on a smooth image, unlike
    cv2.warpAffine, which rounds sub-pixel positions to 1/32 px.
    """
    top = (face.shape[0] - SIZE) // 2, (face.shape[1] - SIZE) // 2
    frames = np.empty((len(displacement), SIZE, SIZE), np.float32)
    for t, d in enumerate(displacement):
        # ndimage.shift moves content by +shift, in (row, col) = (dy, dx) order
        moved = ndimage.shift(face, d * DIRECTION[::-1], order=3, mode="mirror", prefilter=False)
        frames[t] = moved[top[0] : top[0] + SIZE, top[1] : top[1] + SIZE]
    return frames


def sinusoid(frequency: float) -> np.ndarray:
    return AMPLITUDE * np.sin(2 * np.pi * frequency * np.arange(N_FRAMES) / FPS)


def trough_and_peak(displacement: np.ndarray) -> tuple[int, int]:
    """Frames of least and most displacement in the second half, after the IIR start-up."""
    half = np.arange(N_FRAMES // 2, N_FRAMES)
    return half[np.argmin(displacement[half])], half[np.argmax(displacement[half])]


def measured_motion(frames: np.ndarray, first: int, second: int) -> float:
    """Mean TV-L1 motion (px) along DIRECTION from frames[first] to frames[second], inner face."""
    flow = tvl1_flow(frames[first], frames[second])
    return float(flow[INNER, INNER].reshape(-1, 2).mean(axis=0) @ DIRECTION)


def iir_response(frequency: float, f_low: float, f_high: float) -> complex:
    """H(e^jω) of iir_bandpass, its poles found from the half-power definition of a cut-off."""

    def pole(cutoff: float) -> float:
        z = np.exp(-2j * np.pi * cutoff / FPS)
        return optimize.brentq(lambda p: abs((1 - p) / (1 - p * z)) ** 2 - 0.5, 0.0, 1 - 1e-12)

    z = np.exp(-2j * np.pi * frequency / FPS)
    p_high, p_low = pole(f_high), pole(f_low)
    return (1 - p_high) / (1 - p_high * z) - (1 - p_low) / (1 - p_low * z)


# --- magnified motion, measured with TV-L1 ----------------------------------------------------


@pytest.mark.parametrize("temporal_filter", ["ideal", "iir"])
def test_motion_in_the_band_is_magnified(face, temporal_filter):
    frequency = 20.0
    displacement = sinusoid(frequency)
    clip = render(face, displacement)
    out = magnify(
        clip,
        fps=FPS,
        alpha=ALPHA,
        cutoff_wavelength=CUTOFF,
        temporal_filter=temporal_filter,
        **BAND,
    )

    if temporal_filter == "ideal":
        # the whole 20 Hz line is in the band: every displacement becomes (1 + α) times itself
        expected = (1 + ALPHA) * displacement
    else:
        # first-order filters pass 20 Hz with gain |H| < 1 and a phase lag: in steady state the
        # rendered motion is Im((1 + α H) A e^jωt); the trough and peak are those of that signal
        omega_t = 2 * np.pi * frequency * np.arange(N_FRAMES) / FPS
        gain = 1 + ALPHA * iir_response(frequency, **BAND)
        expected = AMPLITUDE * np.imag(gain * np.exp(1j * omega_t))
        assert 2.5 < abs(gain) < 4.0  # well above 1, well below 1 + α: a distinct check
    first, second = trough_and_peak(expected)

    # TV-L1 under-reads sub-pixel motion (about 0.8x at 0.4 px) but is within a few % at 1-2 px,
    # so the magnified motion is compared with the rendered one, not with the measured input.
    moved_in = measured_motion(clip, first, second)
    true_in = displacement[second] - displacement[first]
    assert 0.65 * true_in < moved_in < 1.05 * true_in
    moved_out = measured_motion(out, first, second)
    want = expected[second] - expected[first]
    assert want > 1.3  # px, peak to peak
    assert moved_out == pytest.approx(want, rel=0.15)


@pytest.mark.parametrize("frequency", [80.0, 2.0])
def test_motion_outside_the_band_is_not_magnified(face, frequency):
    displacement = sinusoid(frequency)
    clip = render(face, displacement)
    out = magnify(clip, fps=FPS, alpha=ALPHA, cutoff_wavelength=CUTOFF, **BAND)
    first, second = trough_and_peak(displacement)
    moved_in = measured_motion(clip, first, second)
    assert moved_in > 0.1  # px: there is motion to (not) amplify
    assert measured_motion(out, first, second) / moved_in == pytest.approx(1.0, abs=0.1)


@pytest.mark.parametrize("temporal_filter", ["ideal", "iir"])
def test_static_clip_is_unchanged(face, temporal_filter):
    still = np.repeat(render(face, np.zeros(1)), 40, axis=0)
    frames = np.round(still * 255).astype(np.uint8)  # the uint8 path, scaled to [0, 1]
    out = magnify(
        frames,
        fps=FPS,
        alpha=10.0,
        cutoff_wavelength=CUTOFF,
        temporal_filter=temporal_filter,
        **BAND,
    )
    assert out.dtype == np.float32 and out.shape == frames.shape
    assert np.abs(out - frames / np.float32(255)).max() <= 1 / 255


def test_output_stays_in_the_input_range(face):
    clip = render(face, 3 * sinusoid(20.0))  # 0.6 px, magnified to 3 px: overshoots if unclipped
    out = magnify(clip, fps=FPS, alpha=20.0, cutoff_wavelength=CUTOFF, **BAND)
    assert out.min() >= clip.min() and out.max() <= clip.max()
    assert np.abs(out - clip).max() > 0.05  # and it did change


# --- building blocks -------------------------------------------------------------------------


@pytest.mark.parametrize("n_frames", [1, 7, 130])  # 130 > the 128 channels OpenCV takes at once
def test_pyramid_collapses_back_to_the_input(n_frames):
    frames = np.random.default_rng(0).random((n_frames, 37, 50), dtype=np.float32)
    pyramid = laplacian_pyramid(frames, 4)
    assert [p.shape for p in pyramid] == [
        (n_frames, 37, 50),
        (n_frames, 19, 25),
        (n_frames, 10, 13),
        (n_frames, 5, 7),
    ]
    assert np.abs(collapse_pyramid(pyramid) - frames).max() <= 1e-5
    # the residual is the low-pass: its mean matches the frames', the details average near 0
    assert abs(pyramid[-1].mean() - frames.mean()) < 0.01 and abs(pyramid[0].mean()) < 0.01


def test_ideal_bandpass_keeps_the_band_and_removes_the_rest():
    t = np.arange(N_FRAMES) / FPS
    inside, below, above = (np.sin(2 * np.pi * f * t) for f in (20.0, 2.0, 80.0))
    columns = np.stack([inside + below + above + 0.5, inside], axis=1).astype(np.float32)
    filtered = ideal_bandpass(columns, FPS, axis=0, **BAND)
    assert filtered.dtype == np.float32
    assert np.abs(filtered - inside[:, None]).max() < 1e-5


def test_iir_bandpass_matches_its_frequency_response():
    t = np.arange(2000) / FPS
    for frequency in (2.0, 20.0, 80.0):
        signal = np.cos(2 * np.pi * frequency * t)
        expected = np.real(iir_response(frequency, **BAND) * np.exp(2j * np.pi * frequency * t))
        out = iir_bandpass(signal, FPS, **BAND)
        assert np.abs(out[1000:] - expected[1000:]).max() < 1e-6  # steady state
    still = np.full((50, 3), 0.7, np.float32)
    assert np.abs(iir_bandpass(still, FPS, **BAND)).max() < 1e-6


def test_level_gains_follow_the_cutoff():
    wavelengths = level_wavelengths(6)
    assert list(wavelengths) == [4, 8, 16, 32, 64, 128]
    gains = level_gains(6, alpha=10.0, cutoff_wavelength=32.0)
    assert gains[0] == 0.0  # finest level: never amplified
    assert np.all(gains[wavelengths >= 32] == 10.0)  # at or above λc: the full α
    # below λc: (1 + α) λ / λc - 1, the largest gain Eq. 14 allows, 0 once it goes negative
    assert gains[1:3] == pytest.approx([11 * 8 / 32 - 1, 11 * 16 / 32 - 1])
    assert np.all(np.diff(gains) >= 0)
    assert list(level_gains(3, alpha=10.0, cutoff_wavelength=200.0)) == [0.0, 0.0, 0.0]


@pytest.mark.parametrize(
    "change, message",
    [
        ({"f_high": 101.0}, "Nyquist"),
        ({"f_low": 30.0}, "f_low < f_high"),
        ({"f_low": 0.0}, "f_low < f_high"),
        ({"fps": 0.0}, "fps"),
        ({"alpha": -1.0}, "alpha"),
        ({"cutoff_wavelength": 0.0}, "cutoff_wavelength"),
        ({"temporal_filter": "butterworth"}, "temporal_filter"),
        ({"levels": 1}, "n_levels"),
        ({"levels": 9}, "levels must be in"),
    ],
)
def test_bad_parameters_are_rejected(change, message):
    parameters = {"fps": FPS, "alpha": ALPHA, "cutoff_wavelength": CUTOFF, **BAND, **change}
    with pytest.raises(ValueError, match=message):
        magnify(np.zeros((4, SIZE, SIZE), np.float32), **parameters)


@pytest.mark.parametrize(
    "frames, message",
    [
        (np.zeros((SIZE, SIZE), np.float32), "T, H, W"),
        (np.zeros((4, SIZE, SIZE), np.int16), "uint8 or float"),
    ],
)
def test_bad_frames_are_rejected(frames, message):
    with pytest.raises(ValueError, match=message):
        magnify(frames, fps=FPS, alpha=ALPHA, cutoff_wavelength=CUTOFF, **BAND)


def test_magnification_uses_the_rate_of_the_frames_a_recipe_read():
    """A 16-frame sequence over a 61-frame 200 fps clip is a 50 fps signal: the 1-20 Hz band
    must be placed on that time axis, not on 200 fps (where it would hold no frequency)."""
    from types import SimpleNamespace

    from mer_prep.pipeline.process import sampling_rate

    every_fourth = np.arange(0, 61, 4)
    clip = SimpleNamespace(
        sample=SimpleNamespace(fps=200.0, frame_numbers=tuple(range(100, 161))), unique=every_fourth
    )
    assert sampling_rate(clip) == pytest.approx(50.0)
    clip.unique = np.arange(61)
    assert sampling_rate(clip) == pytest.approx(200.0)
