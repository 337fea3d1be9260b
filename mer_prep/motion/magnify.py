"""Stage 7: Eulerian video magnification (Wu et al., SIGGRAPH 2012), as used by paper 003 §3.2 (4).

Each frame is split into a Laplacian pyramid; every pyramid pixel is band-pass filtered over
time; the band-passed signal is multiplied by a per-level gain and added back; the pyramid is
collapsed. For a small motion ``δ(t)`` of an image ``f`` the band-passed signal is, to first
order, ``δ(t) ∂f/∂x``, so adding ``α`` times it renders ``f(x + (1 + α) δ(t))``. The first-order
approximation holds while ``(1 + α) δ(t) < λ / 8`` (their Eq. 14) for the spatial wavelength
``λ`` of the structure that moves: ``level_gains`` lowers the gain of the fine levels accordingly.

Frames are (T, H, W) stacks, gray, float in [0, 1] (uint8 is accepted and scaled by 1/255);
frequencies are in Hz, wavelengths in pixels of the input frames.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Literal

import cv2
import numpy as np
import scipy.fft
from scipy.signal import lfilter

from mer_prep.errors import InvalidArgumentError

__all__ = [
    "laplacian_pyramid",
    "collapse_pyramid",
    "level_wavelengths",
    "level_gains",
    "ideal_bandpass",
    "iir_bandpass",
    "magnify",
]

# OpenCV filters a (H, W, C) image as C channels at once; OpenCV 5 caps C at 128 (CV_CN_MAX).
_MAX_CHANNELS = 128
# The coarsest level chosen by default is at least this many pixels on its shorter side: below
# that the 5-tap kernel sees mostly the reflected border.
_MIN_COARSE_SIZE = 8


def _as_video(frames: np.ndarray) -> np.ndarray:
    """(T, H, W) uint8 or float -> float32 in the same units ([0, 1] for uint8)."""
    frames = np.asarray(frames)
    if frames.ndim != 3:
        raise InvalidArgumentError(
            f"expected a (T, H, W) stack of gray frames, got shape {frames.shape}"
        )
    if frames.dtype == np.uint8:
        return frames.astype(np.float32) / np.float32(255.0)
    if not np.issubdtype(frames.dtype, np.floating):
        raise InvalidArgumentError(f"expected uint8 or float frames, got {frames.dtype}")
    return frames.astype(np.float32, copy=False)


def _frames_last(stack: np.ndarray) -> np.ndarray:
    """(T, h, w) -> contiguous (h, w, T) float32: the frames become the channels of one image."""
    return np.ascontiguousarray(np.moveaxis(stack, 0, -1), dtype=np.float32)


def _per_channels(op: Callable[[np.ndarray], np.ndarray], image: np.ndarray) -> np.ndarray:
    """Apply an OpenCV filter to a (h, w, T) image, at most ``_MAX_CHANNELS`` channels a call."""
    if image.shape[2] <= _MAX_CHANNELS:
        chunks = [image]
    else:
        chunks = [
            np.ascontiguousarray(image[:, :, i : i + _MAX_CHANNELS])
            for i in range(0, image.shape[2], _MAX_CHANNELS)
        ]
    filtered = [op(chunk) for chunk in chunks]
    # OpenCV returns a 2-D array for a single channel; put the channel axis back.
    filtered = [f if f.ndim == 3 else f[:, :, np.newaxis] for f in filtered]
    return filtered[0] if len(filtered) == 1 else np.concatenate(filtered, axis=2)


def _level_count(height: int, width: int, min_side: int) -> int:
    """Most levels whose coarsest one is still ``min_side`` px on its shorter side."""
    levels, side = 1, min(height, width)
    while (side + 1) // 2 >= min_side:
        levels, side = levels + 1, (side + 1) // 2
    return levels


def laplacian_pyramid(frames: np.ndarray, levels: int) -> list[np.ndarray]:
    """Laplacian pyramid of every frame: (T, H, W) -> ``levels`` arrays, finest first.

    Level k is (T, ceil(H / 2^k), ceil(W / 2^k)) float32: the band-pass detail ``G_k - up(G_k+1)``
    of the Gaussian pyramid ``G`` (OpenCV's 5-tap binomial ``pyrDown``/``pyrUp``, mirrored
    borders), except the last one, which is the low-pass residual ``G_levels-1``. The arrays are
    stored frame-last (time is the contiguous axis, which is the axis the temporal filters read).
    """
    image = _frames_last(_as_video(frames))
    most = _level_count(*image.shape[:2], min_side=2)
    if not 1 <= levels <= most:
        raise InvalidArgumentError(
            f"levels must be in [1, {most}] for {image.shape[0]}x{image.shape[1]} "
            f"frames (coarsest level at least 2x2 px), got {levels}"
        )
    pyramid = []
    for _ in range(levels - 1):
        coarser = _per_channels(cv2.pyrDown, image)
        detail = _per_channels(partial(cv2.pyrUp, dstsize=image.shape[1::-1]), coarser)
        pyramid.append(np.subtract(image, detail, out=detail))
        image = coarser
    pyramid.append(image)
    return [np.moveaxis(level, -1, 0) for level in pyramid]


def collapse_pyramid(pyramid: list[np.ndarray]) -> np.ndarray:
    """Inverse of ``laplacian_pyramid``: finest-first levels -> (T, H, W) float32."""
    image = _frames_last(pyramid[-1])
    for level in reversed(pyramid[:-1]):
        detail = _frames_last(level)
        image = _per_channels(partial(cv2.pyrUp, dstsize=detail.shape[1::-1]), image)
        image += detail
    return np.moveaxis(image, -1, 0)


def level_wavelengths(n_levels: int) -> np.ndarray:
    """Representative spatial wavelength of each pyramid level, in input pixels: ``2^(k + 2)``.

    Measured on cosine gratings, level k >= 1 passes wavelengths from about ``3 * 2^k`` px (half
    amplitude) to ``10 * 2^k`` px and peaks near ``5 * 2^k``; the finest level holds ``2``-``6``
    px. ``2^(k + 2)`` sits in the lower part of each band, so the bound of Eq. 14 checked at it
    holds for all but the level's shortest wavelengths, without being as strict as the band
    edge. Unlike the diagonal-based heuristic of Wu et al.'s code it does not depend on the
    frame size: a level's band in cycles per pixel does not either.
    """
    return 2.0 ** (np.arange(n_levels) + 2)


def level_gains(n_levels: int, alpha: float, cutoff_wavelength: float) -> np.ndarray:
    """Amplification of each pyramid level (finest first), (n_levels,) float64.

    ``alpha`` for levels whose representative wavelength ``λ`` (``level_wavelengths``) is at least
    ``cutoff_wavelength`` (λc, px); below it the largest gain that Eq. 14 allows for the motion
    that λc certifies at ``alpha``, ``(1 + alpha) λ / λc - 1``, a linear ramp in λ that reaches 0
    at ``λ = λc / (1 + alpha)``. The finest level (noise and detail of ~2-6 px, where the Taylor
    approximation breaks first) is not amplified, as in Wu et al.
    """
    if n_levels < 2:
        raise InvalidArgumentError(
            f"n_levels must be >= 2 (a band-pass level and the residual), got {n_levels}"
        )
    if alpha < 0:
        raise InvalidArgumentError(f"alpha must be >= 0, got {alpha}")
    if cutoff_wavelength <= 0:
        raise InvalidArgumentError(f"cutoff_wavelength must be > 0 px, got {cutoff_wavelength}")
    # Eq. 14 at λc: full alpha is safe for motions up to δ = λc / (8 (1 + alpha)); a level of
    # wavelength λ tolerates that δ up to a gain of λ / (8 δ) - 1.
    ramp = (1.0 + alpha) * level_wavelengths(n_levels) / cutoff_wavelength - 1.0
    gains = np.clip(ramp, 0.0, alpha)
    gains[0] = 0.0
    return gains


def _check_band(fps: float, f_low: float, f_high: float) -> None:
    if fps <= 0:
        raise InvalidArgumentError(f"fps must be > 0, got {fps}")
    if not 0 < f_low < f_high:
        raise InvalidArgumentError(
            f"need 0 < f_low < f_high, got f_low={f_low}, f_high={f_high} Hz"
        )
    if f_high > fps / 2:
        raise InvalidArgumentError(
            f"f_high={f_high} Hz is above the Nyquist frequency fps/2={fps / 2} Hz"
        )


def ideal_bandpass(
    signal: np.ndarray, fps: float, f_low: float, f_high: float, axis: int = 0
) -> np.ndarray:
    """Zero every temporal frequency outside [f_low, f_high] Hz along ``axis`` (FFT, fps in Hz).

    Float in, same shape and float dtype out. The FFT treats the clip as periodic: fine for
    onset-to-offset clips, which start and end near the same neutral face.
    """
    _check_band(fps, f_low, f_high)
    signal = np.asarray(signal)
    n = signal.shape[axis]
    spectrum = scipy.fft.rfft(signal, axis=axis)
    freqs = scipy.fft.rfftfreq(n, d=1.0 / fps)
    outside = [slice(None)] * signal.ndim
    outside[axis] = (freqs < f_low) | (freqs > f_high)
    spectrum[tuple(outside)] = 0
    return scipy.fft.irfft(spectrum, n=n, axis=axis)


def _lowpass(signal: np.ndarray, f_cut: float, fps: float, axis: int) -> np.ndarray:
    """Causal first-order low-pass ``y[n] = p y[n-1] + (1 - p) x[n]``, with ``y[-1] = x[0]``."""
    # The pole for which |H| is exactly 1/sqrt(2) at f_cut (solving |H(e^jω)|² = 1/2 for p).
    c = 2.0 - np.cos(2.0 * np.pi * f_cut / fps)
    p = c - np.sqrt(c * c - 1.0)
    dtype = signal.dtype
    b, a = np.array([1.0 - p], dtype), np.array([1.0, -p], dtype)
    # Starting from the first frame makes a static clip a fixed point of the filter.
    initial = p * np.take(signal, [0], axis=axis)
    return lfilter(b, a, signal, axis=axis, zi=initial.astype(dtype))[0]


def iir_bandpass(
    signal: np.ndarray, fps: float, f_low: float, f_high: float, axis: int = 0
) -> np.ndarray:
    """Causal band-pass along ``axis``: first-order low-pass at f_high minus one at f_low (Hz).

    Each low-pass has pole ``p`` with half-power frequency exactly at its cut-off, so the response
    is ``H(ω) = (1-p_h)/(1-p_h e^-jω) - (1-p_l)/(1-p_l e^-jω)``, ``ω = 2π f / fps``: a broad band
    whose peak gain is below 1 and whose phase lags, unlike ``ideal_bandpass``. Both low-passes
    start at the first sample, so a clip that starts static gives 0. Float in, same dtype out.
    """
    _check_band(fps, f_low, f_high)
    signal = np.asarray(signal)
    band = _lowpass(signal, f_high, fps, axis)
    band -= _lowpass(signal, f_low, fps, axis)
    return band


_TEMPORAL_FILTERS = {"ideal": ideal_bandpass, "iir": iir_bandpass}


def magnify(
    frames: np.ndarray,
    *,
    fps: float,
    alpha: float,
    cutoff_wavelength: float,
    f_low: float,
    f_high: float,
    levels: int | None = None,
    temporal_filter: Literal["ideal", "iir"] = "ideal",
) -> np.ndarray:
    """Eulerian motion magnification of a gray clip: (T, H, W) -> (T, H, W) float32.

    frames: float in [0, 1] or uint8. fps: frame rate (Hz). alpha: amplification factor (a motion
    δ inside the band becomes ``(1 + alpha) δ``). cutoff_wavelength: λc, the shortest spatial
    wavelength (px) amplified by the full ``alpha`` (see ``level_gains``). f_low, f_high: pass band
    (Hz). levels: pyramid levels including the residual; by default as many as keep the coarsest
    level at least 8 px on a side. temporal_filter: ``"ideal"`` (``ideal_bandpass``) or ``"iir"``
    (``iir_bandpass``). The result is clipped to the input's range [frames.min(), frames.max()].
    """
    video = _as_video(frames)
    if temporal_filter not in _TEMPORAL_FILTERS:
        raise InvalidArgumentError(
            f"temporal_filter must be one of {sorted(_TEMPORAL_FILTERS)}, got {temporal_filter!r}"
        )
    _check_band(fps, f_low, f_high)
    n_levels = (
        _level_count(*video.shape[1:], min_side=_MIN_COARSE_SIZE) if levels is None else levels
    )
    gains = level_gains(n_levels, alpha, cutoff_wavelength)
    bandpass = _TEMPORAL_FILTERS[temporal_filter]

    pyramid = laplacian_pyramid(video, n_levels)
    for k, gain in enumerate(gains):
        if gain == 0:
            pyramid[k].fill(0.0)  # reuse the level's memory rather than filter it for nothing
            continue
        band = bandpass(pyramid[k], fps, f_low, f_high)
        band *= np.float32(gain)
        pyramid[k] = band
    # The pyramid is linear, so collapsing (levels + gain * band) is the input plus the collapsed
    # amplified bands: pixels with nothing in the band come back exactly as they went in.
    out = video + collapse_pyramid(pyramid)
    return np.clip(out, video.min(), video.max(), out=out)
