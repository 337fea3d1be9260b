"""Arrays to RGB: gray frames, flow as colour, heat maps, landmarks, masks. numpy + OpenCV only.

Every function returns ``(H, W, 3)`` uint8 RGB rasters, so the same pixels go into a matplotlib
figure, a Prefect artifact and the HTML report.

Flow colour. The hue is the direction of the motion *as displayed* (image y points down):
``hue = atan2(-dy, dx)`` in degrees, counter-clockwise from "to the right" — right red (0°), up
yellow-green (90°), left cyan (180°), down violet (270°). Saturation is the magnitude,
``min(|flow| / scale, 1)``, at full value: a pixel that does not move is white. The colour
wheel (:func:`colour_wheel`) is this mapping applied to a radial field, so reading a colour off
it gives the direction and the magnitude.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import cv2
import numpy as np

from mer_prep.errors import InvalidArgumentError

__all__ = [
    "LANDMARK_RGB",
    "REGION_RGB",
    "colour_wheel",
    "diverging",
    "display_scale",
    "draw_landmarks",
    "flow_hue_deg",
    "flow_range",
    "flow_scale",
    "flow_to_rgb",
    "gray_to_rgb",
    "heat",
    "mask_overlay",
    "robust_max",
    "upscale",
    "ColourRange",
    "colour_range",
    "border_width",
]

#: Colour of landmark dots (pure green: absent from faces, and from the flow palette's white).
LANDMARK_RGB = (0, 255, 0)
#: Overlay colour per mask region (image terms, as ``mer_prep.face.mask.REGIONS``).
REGION_RGB = {
    "left_eye": (0, 200, 255),
    "right_eye": (255, 200, 0),
    "mouth": (255, 0, 200),
    "inner_mouth": (255, 90, 90),
    "left_brow": (120, 255, 120),
    "right_brow": (120, 160, 255),
    "nose": (255, 140, 0),
    "face": (180, 180, 255),
}
#: Smallest flow magnitude (px) shown as fully saturated: TV-L1 leaves ~0.02-0.05 px of noise on
#: still skin, which must stay near white rather than be stretched to full colour.
MIN_FLOW_SCALE = 0.25


def display_scale(width: int, target: int = 128) -> int:
    """Integer upscale that brings ``width`` px to about ``target`` px (1 for 128/134 px faces,
    2 for 64 px ones)."""
    return max(1, int(round(target / max(int(width), 1))))


def upscale(rgb: np.ndarray, factor: float) -> np.ndarray:
    """Resize by ``factor``: an integer one repeats every pixel (a factor² block), one below 1
    area-averages (a thumbnail), any other is nearest-neighbour. Either way source pixel centre
    ``x`` lands at :func:`to_display` ``(x, factor)``."""
    if factor == 1:
        return rgb
    if float(factor).is_integer() and factor > 1:
        k = int(factor)
        return np.repeat(np.repeat(rgb, k, axis=0), k, axis=1)
    height, width = rgb.shape[:2]
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    resized = cv2.resize(
        np.ascontiguousarray(rgb),
        size,
        interpolation=cv2.INTER_AREA if factor < 1 else cv2.INTER_NEAREST,
    )
    return resized.reshape(size[1], size[0], *rgb.shape[2:])


def gray_to_rgb(frame: np.ndarray, *, low: float = 0.0, high: float = 1.0) -> np.ndarray:
    """A stored frame to RGB uint8: gray (H, W) repeated on three channels, or a colour frame
    (H, W, 3) of a ``channels: rgb`` recipe as it is; values ``low``..``high``, any dtype."""
    values = np.asarray(frame, dtype=np.float32)
    if values.ndim != 2 and not (values.ndim == 3 and values.shape[2] == 3):
        raise InvalidArgumentError(
            f"expected a (H, W) gray or (H, W, 3) RGB frame, got shape {values.shape}"
        )
    unit = np.clip((values - low) / max(high - low, 1e-12), 0.0, 1.0)
    pixels = np.round(unit * 255).astype(np.uint8)
    return pixels if pixels.ndim == 3 else np.repeat(pixels[..., None], 3, axis=2)


def robust_max(values: np.ndarray, percentile: float = 99.5) -> float:
    """The ``percentile`` of finite ``|values|`` (0 when there are none)."""
    finite = np.abs(np.asarray(values, dtype=np.float32))
    finite = finite[np.isfinite(finite)]
    return float(np.percentile(finite, percentile)) if finite.size else 0.0


#: Percentile of |values| that sets a colour scale's top: a few outlying pixels (a specular
#: glint, a TV-L1 spike) must not wash every other pixel out.
SCALE_PERCENTILE = 99.5
#: Share of the short side left out at each edge when a scale is computed: TV-L1 and the
#: strain's finite differences are unreliable there (the warp leaves the image), and those
#: edge values would otherwise set the scale of the whole face.
BORDER_SHARE = 0.05


def border_width(height: int, width: int) -> int:
    """Pixels left out at each edge of a ``height`` x ``width`` raster when a colour scale is
    computed: ``BORDER_SHARE`` of the short side, at least 1 (0 for rasters under 8 px)."""
    short = min(int(height), int(width))
    return 0 if short < 8 else max(1, int(round(BORDER_SHARE * short)))


@dataclass(frozen=True)
class ColourRange:
    """A colour scale and where it came from: ``top`` (shown at full colour) is the
    ``percentile`` of |values| inside a ``border``-pixel frame (left out); ``maximum`` is the
    largest |value| inside it, ``maximum_all`` the largest anywhere (edges included)."""

    top: float
    percentile: float
    maximum: float
    maximum_all: float
    border: int

    def describe(self, unit: str = "", digits: int = 2) -> str:
        """``"3.52 px = 99.5th percentile of |values|, max 6.68 px, 7 px border left out"``."""
        u = f" {unit}" if unit else ""
        text = (
            f"{self.top:.{digits}f}{u} = {self.percentile:g}th percentile, max "
            f"{self.maximum:.{digits}f}{u}"
        )
        if self.border:
            text += f", {self.border} px border left out"
            if self.maximum_all > self.maximum * 1.05:
                text += f" (max there {self.maximum_all:.{digits}f}{u})"
        return text


def colour_range(
    values: np.ndarray,
    *,
    percentile: float = SCALE_PERCENTILE,
    border: int | None = None,
    floor: float = 1e-6,
) -> ColourRange:
    """The colour scale of ``values`` (..., H, W): the ``percentile`` of finite |values| with
    ``border`` pixels (default :func:`border_width`) left out at each edge of the last two axes,
    at least ``floor``."""
    values = np.abs(np.asarray(values, dtype=np.float32))
    if values.ndim < 2:
        raise InvalidArgumentError(f"expected values (..., H, W), got shape {values.shape}")
    b = border_width(*values.shape[-2:]) if border is None else int(border)
    inner = values[..., b : values.shape[-2] - b, b : values.shape[-1] - b] if b else values
    finite = inner[np.isfinite(inner)]
    everywhere = values[np.isfinite(values)]
    top = float(np.percentile(finite, percentile)) if finite.size else 0.0
    return ColourRange(
        top=max(top, floor),
        percentile=float(percentile),
        maximum=float(finite.max()) if finite.size else 0.0,
        maximum_all=float(everywhere.max()) if everywhere.size else 0.0,
        border=b,
    )


def flow_hue_deg(dx: np.ndarray | float, dy: np.ndarray | float) -> np.ndarray:
    """Hue in degrees [0, 360) that :func:`flow_to_rgb` gives a motion ``(dx, dy)``."""
    return np.degrees(np.arctan2(-np.asarray(dy, np.float64), np.asarray(dx, np.float64))) % 360


def flow_range(flow: np.ndarray) -> ColourRange:
    """The flow colour scale of ``(..., H, W, 2)`` flow and where it came from: the magnitude
    shown fully saturated is the :func:`colour_range` of |flow| (borders left out), at least
    ``MIN_FLOW_SCALE``."""
    flow = np.asarray(flow, dtype=np.float32)
    return colour_range(np.hypot(flow[..., 0], flow[..., 1]), floor=MIN_FLOW_SCALE)


def flow_scale(flow: np.ndarray) -> float:
    """The magnitude (px) shown fully saturated by default: ``flow_range(flow).top``."""
    return flow_range(flow).top


def flow_to_rgb(flow: np.ndarray, scale: float | None = None) -> np.ndarray:
    """``(H, W, 2)`` flow ``(dx, dy)`` px to RGB uint8 (see the module docstring).

    scale: magnitude (px) shown at full saturation (default :func:`flow_scale`).
    """
    flow = np.asarray(flow, dtype=np.float32)
    if flow.ndim != 3 or flow.shape[-1] != 2:
        raise InvalidArgumentError(f"expected a (H, W, 2) flow, got shape {flow.shape}")
    flow = np.nan_to_num(flow)
    scale = flow_scale(flow) if scale is None else float(scale)
    if scale <= 0:
        raise InvalidArgumentError(f"flow scale must be > 0 px, got {scale}")
    magnitude = np.hypot(flow[..., 0], flow[..., 1])
    hsv = np.empty(flow.shape[:2] + (3,), np.float32)
    hsv[..., 0] = flow_hue_deg(flow[..., 0], flow[..., 1]).astype(np.float32)  # OpenCV: 0..360
    hsv[..., 1] = np.clip(magnitude / scale, 0.0, 1.0)
    hsv[..., 2] = 1.0
    return np.round(cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB) * 255).astype(np.uint8)


def colour_wheel(size: int = 96) -> np.ndarray:
    """The flow colour key: a disc where the pixel at offset ``(dx, dy)`` from the centre has the
    colour of that motion, full saturation at the rim; outside the disc white. RGB uint8."""
    centre = (size - 1) / 2.0
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    field = np.stack([xx - centre, yy - centre], axis=-1)
    rgb = flow_to_rgb(field, scale=centre)
    rgb[np.hypot(*(field[..., i] for i in range(2))) > centre + 0.5] = 255
    return rgb


@cache
def _lut(name: str) -> np.ndarray:
    from matplotlib import colormaps  # the colormap tables only: no figure, no backend

    return np.round(colormaps[name](np.linspace(0.0, 1.0, 256))[:, :3] * 255).astype(np.uint8)


def heat(values: np.ndarray, vmax: float | None = None, cmap: str = "magma") -> np.ndarray:
    """Non-negative ``(H, W)`` values as a heat map, 0..``vmax`` (default: 99.5th percentile)."""
    values = np.nan_to_num(np.asarray(values, dtype=np.float32))
    vmax = robust_max(values) if vmax is None else float(vmax)
    index = np.clip(values / max(vmax, 1e-12), 0.0, 1.0) * 255
    return _lut(cmap)[np.round(index).astype(np.uint8)]


def diverging(values: np.ndarray, vmax: float | None = None, cmap: str = "RdBu_r") -> np.ndarray:
    """Signed ``(H, W)`` values on a diverging map, -``vmax``..``vmax`` (0 white)."""
    values = np.nan_to_num(np.asarray(values, dtype=np.float32))
    vmax = robust_max(values) if vmax is None else float(vmax)
    index = (np.clip(values / max(vmax, 1e-12), -1.0, 1.0) + 1.0) * 127.5
    return _lut(cmap)[np.round(index).astype(np.uint8)]


def to_display(x: np.ndarray | float, factor: float) -> np.ndarray:
    """Source pixel coordinate (pixel centres on integers) -> coordinate in a raster resized by
    ``factor`` (:func:`upscale`: the centre of the source pixel's block)."""
    return (np.asarray(x, dtype=np.float64) + 0.5) * factor - 0.5


def draw_landmarks(
    rgb: np.ndarray,
    points: np.ndarray,
    factor: float = 1,
    *,
    colour: tuple[int, int, int] = LANDMARK_RGB,
    radius: float | None = None,
) -> np.ndarray:
    """A copy of ``rgb`` (already resized by ``factor``) with each ``(x, y)`` point of
    ``points`` (source pixels, centres on integers) drawn as a filled dot centred on it."""
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 2:
        raise InvalidArgumentError(f"expected (N, 2) points, got shape {points.shape}")
    out = np.ascontiguousarray(rgb.copy())
    radius = max(1.0, 0.75 * factor) if radius is None else float(radius)
    shift = 4
    for x, y in to_display(points, factor):
        if np.isfinite(x) and np.isfinite(y):
            centre = (int(round(x * (1 << shift))), int(round(y * (1 << shift))))
            cv2.circle(
                out,
                centre,
                int(round(radius * (1 << shift))),
                colour,
                thickness=-1,
                lineType=cv2.LINE_8,
                shift=shift,
            )
    return out


def mask_overlay(rgb: np.ndarray, masks: dict[str, np.ndarray], alpha: float = 0.45) -> np.ndarray:
    """``rgb`` (any size) with each ``(h, w)`` bool mask (source pixels, resized to ``rgb``)
    blended in its region colour, its outline drawn at full colour."""
    out = rgb.astype(np.float32)
    outlines = []
    for name, mask in masks.items():
        big = cv2.resize(
            np.asarray(mask, np.uint8),
            (rgb.shape[1], rgb.shape[0]),
            interpolation=cv2.INTER_NEAREST,
        ).astype(bool)
        colour = np.array(REGION_RGB.get(name, (255, 0, 255)), np.float32)
        out[big] = (1 - alpha) * out[big] + alpha * colour
        contours, _ = cv2.findContours(
            big.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE
        )
        outlines.append((contours, tuple(int(c) for c in colour)))
    out = np.round(out).astype(np.uint8)
    for contours, colour in outlines:
        cv2.drawContours(out, contours, -1, colour, 1)
    return out


def framed(rgb: np.ndarray, colour: tuple[int, int, int], width: int = 2) -> np.ndarray:
    """A copy of ``rgb`` with a ``width``-pixel border of ``colour`` drawn inside its edge."""
    out = rgb.copy()
    out[:width], out[-width:], out[:, :width], out[:, -width:] = colour, colour, colour, colour
    return out
