"""Stage 8: TV-L1 optical flow (OpenCV contrib), optical strain, magnitude and orientation.

Convention (OpenCV's and scikit-image's): the flow from ``frame0`` to ``frame1`` is the field
``(dx, dy)`` in pixels such that ``frame1(x + flow(x)) ≈ frame0(x)`` — the forward motion of the
scene point seen at ``x`` in ``frame0``. Arrays are ``(H, W, 2)`` float32, channel order
``(dx, dy)``; stacks add a leading frame axis.
"""

from __future__ import annotations

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from mer_prep.errors import InvalidArgumentError

__all__ = [
    "DEFAULT_TVL1",
    "TVL1Params",
    "tvl1_flow",
    "flows_from_reference",
    "optical_strain",
    "flow_magnitude",
    "flow_orientation",
    "float16_error_bound",
]


class TVL1Params(BaseModel):
    """Parameters of ``cv2.optflow.DualTVL1OpticalFlow`` (Zach et al. 2007; Sánchez et al. 2013).

    tau: time step of the numerical scheme; lambda_: data-term weight (smaller = smoother
    flow); theta: coupling between the two sub-problems; scales: pyramid levels; scale_step:
    size ratio between levels; warps: warpings per level; epsilon: stopping threshold of the
    inner iterations; inner_iterations / outer_iterations: iteration caps; median_filtering:
    median kernel applied to the flow between warps (1 = off).

    The defaults differ from OpenCV's in ``scales``/``warps``/``epsilon``/``scale_step``
    (3 / 2 / 0.03 / 0.5 instead of 5 / 5 / 0.01 / 0.8): on 134x134 faces with a known sub-pixel
    field they give the same endpoint error (~0.05 px) in a fifth of the time (bench/motion.py).
    """

    # ``lambda`` is a Python keyword: the field is ``lambda_``, spelt ``lambda`` in recipe files
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    tau: float = Field(default=0.25, gt=0)
    lambda_: float = Field(default=0.15, gt=0, alias="lambda")
    theta: float = Field(default=0.3, gt=0)
    scales: int = Field(default=3, ge=1)
    scale_step: float = Field(default=0.5, gt=0, lt=1)
    warps: int = Field(default=2, ge=1)
    epsilon: float = Field(default=0.03, gt=0)
    inner_iterations: int = Field(default=30, ge=1)
    outer_iterations: int = Field(default=10, ge=1)
    median_filtering: int = Field(default=5, ge=1)

    def create(self) -> cv2.optflow.DualTVL1OpticalFlow:
        """A fresh OpenCV solver with these parameters (solvers keep state: one per thread)."""
        return cv2.optflow.DualTVL1OpticalFlow_create(
            tau=self.tau,
            lambda_=self.lambda_,
            theta=self.theta,
            nscales=self.scales,
            warps=self.warps,
            epsilon=self.epsilon,
            innnerIterations=self.inner_iterations,
            outerIterations=self.outer_iterations,
            scaleStep=self.scale_step,
            medianFiltering=self.median_filtering,
        )


# the parameters' default, shared by the functions below: a frozen model, so sharing is safe
DEFAULT_TVL1 = TVL1Params()


def _as_float_image(frame: np.ndarray, name: str) -> np.ndarray:
    if frame.ndim != 2:
        raise InvalidArgumentError(f"{name}: expected a (H, W) gray image, got shape {frame.shape}")
    if frame.dtype == np.uint8:
        return frame.astype(np.float32) / np.float32(255.0)
    return np.ascontiguousarray(frame, dtype=np.float32)


def tvl1_flow(
    frame0: np.ndarray, frame1: np.ndarray, params: TVL1Params = DEFAULT_TVL1
) -> np.ndarray:
    """Dense TV-L1 flow from ``frame0`` to ``frame1``.

    frame0, frame1: (H, W) gray, float in [0, 1] or uint8. Returns (H, W, 2) float32 (dx, dy)
    pixels with ``frame1(x + flow(x)) ≈ frame0(x)``.
    """
    a, b = _as_float_image(frame0, "frame0"), _as_float_image(frame1, "frame1")
    if a.shape != b.shape:
        raise InvalidArgumentError(f"frames differ in shape: {a.shape} vs {b.shape}")
    return params.create().calc(a, b, None)


def flows_from_reference(
    frames: np.ndarray, reference: int = 0, params: TVL1Params = DEFAULT_TVL1
) -> np.ndarray:
    """Flow from ``frames[reference]`` to every frame: (T, H, W) -> (T, H, W, 2) float32.

    The reference's own flow is zero by definition and is not computed.
    """
    if frames.ndim != 3:
        raise InvalidArgumentError(f"expected a (T, H, W) stack, got shape {frames.shape}")
    solver = params.create()
    ref = _as_float_image(frames[reference], "reference frame")
    out = np.zeros((*frames.shape, 2), np.float32)
    for t in range(frames.shape[0]):
        if t != reference:
            out[t] = solver.calc(ref, _as_float_image(frames[t], f"frame {t}"), None)
    return out


def optical_strain(flow: np.ndarray) -> np.ndarray:
    """Optical strain magnitude of a flow field: (..., H, W, 2) -> (..., H, W) float32.

    The infinitesimal strain tensor of the displacement (u, v): e_xx = du/dx, e_yy = dv/dy,
    e_xy = (du/dy + dv/dx) / 2, from central differences (one-sided at the border);
    magnitude = sqrt(e_xx^2 + e_yy^2 + 2 e_xy^2), its Frobenius norm (dimensionless).
    """
    u = flow[..., 0].astype(np.float32, copy=False)
    v = flow[..., 1].astype(np.float32, copy=False)
    du_dy, du_dx = np.gradient(u, axis=(-2, -1))
    dv_dy, dv_dx = np.gradient(v, axis=(-2, -1))
    e_xy = 0.5 * (du_dy + dv_dx)
    return np.sqrt(du_dx * du_dx + dv_dy * dv_dy + 2.0 * e_xy * e_xy).astype(np.float32)


def flow_magnitude(flow: np.ndarray) -> np.ndarray:
    """|flow| in pixels: (..., 2) -> (...) float32."""
    return np.hypot(flow[..., 0], flow[..., 1]).astype(np.float32)


def flow_orientation(flow: np.ndarray) -> np.ndarray:
    """Direction of the flow in radians in (-pi, pi], image axes (y down): (..., 2) -> (...)."""
    return np.arctan2(flow[..., 1], flow[..., 0]).astype(np.float32)


def float16_error_bound(values: np.ndarray) -> float:
    """Largest absolute error of storing ``values`` as float16, measured (not estimated)."""
    values = np.asarray(values, np.float32)
    if values.size == 0:
        return 0.0
    return float(np.abs(values.astype(np.float16).astype(np.float32) - values).max())
