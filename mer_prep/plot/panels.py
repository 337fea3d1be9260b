"""One stored sample as panels: what its recipe stored, drawn as RGB rasters and curves.

A :class:`~mer_prep.plot.sample_view.SampleView` is one ``table`` row of a store with its arrays
read once; :func:`panels` turns it into :class:`Panel` s — the pictures a person checks — in a
fixed order:

====================  =======================================================================
key                   drawn when / from what
====================  =======================================================================
``onset``, ``apex``   always: the stored aligned frame with the 68 stored landmarks
``mask``              recipes with a ``mask`` section: ``region_mask`` recomputed from the
                      stored landmarks with the recipe's regions and margin, one colour a region
``halves``            recipes with ``split``: the stored upper and lower halves at the apex,
                      with the split line between them
``flow``              recipes with ``flow``: onset→apex flow as colour (see ``colour``)
``strain``            recipes storing strain: its heat map at the apex
``magnitude``         recipes with ``flow``: |flow| at the apex
``difference``        always: stored apex − stored onset frame (magnified frames where the
                      recipe magnifies: the unmagnified ones are not stored)
``strip``             recipes storing more than two frames: every stored frame, onset and apex
                      framed
``keyframes``         ``keyframes`` recipes: the slice change between successive *stored*
                      keyframes (``slice_change`` recomputed on the stored, magnified frames),
                      keyframes on the clip's frame numbers
``apex_curve``        recipes storing more than two frames: facial motion from the onset at
                      each stored frame (the spotter's measure: RMS over the brow/eye/nose/
                      mouth landmarks of the flow minus the head's median flow), from the stored
                      flow when there is one, else TV-L1 on the stored frames (every 2nd
                      frame, the rest interpolated); the annotated or spotted apex
                      (``apex_source``) marked
``copy<k>``           augmented recipes: each stored copy at the apex, with its landmarks
====================  =======================================================================
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial

import cv2
import numpy as np

from mer_prep.errors import MerPrepError
from mer_prep.face import (
    FaceBox,
    align_clip,
    alignment_matrix,
    fit_landmarks,
    read_frames,
    read_video_frames,
    transform_points,
)
from mer_prep.face.landmarks import eye_centers
from mer_prep.face.mask import REGION_GROUPS, region_mask
from mer_prep.motion.apex import APEX_POINTS, motion_curve
from mer_prep.motion.keyframes import slice_change
from mer_prep.plot.colour import (
    colour_range,
    colour_wheel,
    diverging,
    draw_landmarks,
    flow_range,
    flow_to_rgb,
    framed,
    gray_to_rgb,
    heat,
    mask_overlay,
    robust_max,
    upscale,
)
from mer_prep.plot.sample_view import SampleView
from mer_prep.recipes import Recipe

__all__ = ["Curve", "Panel", "panels", "ONSET_RGB", "APEX_RGB", "SPLIT_RGB"]

ONSET_RGB = (40, 160, 40)
APEX_RGB = (220, 30, 30)
SPLIT_RGB = (255, 40, 40)


@dataclass(frozen=True)
class Curve:
    """A per-frame curve of one sample: ``x`` the clip's frame numbers, ``y`` the values;
    ``marks`` label -> frame number (vertical lines); ``points`` frame numbers marked on the
    curve (the keyframes)."""

    kind: str
    x: np.ndarray
    y: np.ndarray
    ylabel: str
    marks: dict[str, float] = field(default_factory=dict)
    points: np.ndarray | None = None


@dataclass(frozen=True)
class Panel:
    """One picture of a sample: ``image`` an RGB uint8 raster, or ``curve`` to plot."""

    key: str
    title: str
    image: np.ndarray | None = None
    caption: str = ""
    curve: Curve | None = None


def _show(values: np.ndarray, colourise, factor: float) -> np.ndarray:
    """``values`` (H, W) or (H, W, 2) coloured by ``colourise`` at display ``factor``: a
    thumbnail is area-averaged *before* colouring (so a colour map keeps at most 256 colours
    and its PNG a palette), an enlargement repeats the coloured pixels."""
    values = np.asarray(values, dtype=np.float32)
    if factor < 1:
        height, width = values.shape[:2]
        size = (max(1, round(width * factor)), max(1, round(height * factor)))
        return colourise(cv2.resize(values, size, interpolation=cv2.INTER_AREA))
    return upscale(colourise(values), factor)


def _landmark_frame(view: SampleView, position: int) -> np.ndarray:
    f = view.factor
    return draw_landmarks(_show(view.frame(position), gray_to_rgb, f), view.arrays["landmarks"], f)


def _region_masks(view: SampleView) -> dict[str, np.ndarray]:
    config = view.recipe.mask
    size = tuple(view.recipe.align.size)
    names = [part for name in config.regions for part in REGION_GROUPS.get(name, (name,))]
    return {
        name: region_mask(view.arrays["landmarks"], size, regions=[name], margin=config.margin)
        for name in names
    }


def _halves(view: SampleView) -> np.ndarray:
    f = view.factor
    upper = _show(view.arrays["upper"][view.apex_pos], gray_to_rgb, f)
    lower = _show(view.arrays["lower"][view.apex_pos], gray_to_rgb, f)
    line = np.zeros((2, upper.shape[1], 3), np.uint8)
    line[:] = SPLIT_RGB
    return np.concatenate([upper, line, lower], axis=0)


def flow_motion(
    flow: np.ndarray, landmarks: np.ndarray, points: tuple[int, ...] = APEX_POINTS
) -> np.ndarray:
    """The spotter's motion measure from stored flow: (T,) px, per frame the RMS over
    ``points`` of the flow in a small window around each landmark minus the median flow of
    the landmarks' box (the head's own motion)."""
    flow = np.nan_to_num(np.asarray(flow, dtype=np.float32))
    chosen = np.asarray(landmarks, np.float64)[list(points)]
    height, width = flow.shape[1:3]
    left, right = eye_centers(landmarks)
    radius = max(1, round(0.02 * float(np.hypot(*(right - left)))))
    x0, y0 = np.clip(np.floor(chosen.min(axis=0)).astype(int) - 6, 0, None)
    x1, y1 = np.ceil(chosen.max(axis=0)).astype(int) + 7
    x = np.clip(np.rint(chosen[:, 0]).astype(int), 0, width - 1)
    y = np.clip(np.rint(chosen[:, 1]).astype(int), 0, height - 1)
    out = np.zeros(flow.shape[0])
    for t in range(flow.shape[0]):
        head = np.median(flow[t, y0:y1, x0:x1].reshape(-1, 2), axis=0)
        smooth = cv2.blur(flow[t], (2 * radius + 1, 2 * radius + 1))
        moved = smooth[y, x] - head
        out[t] = float(np.sqrt(np.mean(np.sum(moved * moved, axis=1))))
    return out


def _marks(view: SampleView) -> dict[str, float]:
    info = view.info
    marks = {"onset": info.get("onset"), "offset": info.get("offset")}
    if info.get("apex") is not None:
        marks[f"apex ({info.get('apex_source') or 'annotated'})"] = info["apex"]
    return {k: float(v) for k, v in marks.items() if v is not None}


def apex_curve(view: SampleView) -> Curve | None:
    """The facial-motion curve of a sample over its stored frames (None with two frames)."""
    n = view.arrays["frames"].shape[0]
    if n < 3 or len(view.source_frames) != n:
        return None
    # a short clip repeats frames: each source frame once
    numbers, first = np.unique(view.source_frames, return_index=True)
    if len(numbers) < 3:
        return None
    onset = int(np.searchsorted(numbers, view.source_frames[view.onset_pos]))
    if "flow" in view.arrays:
        motion = flow_motion(np.asarray(view.arrays["flow"])[first], view.arrays["landmarks"])
        how = "stored flow"
    elif onset < len(numbers) - 1:
        frames = view.gray_frames()[first]
        # every 2nd frame measured, the rest interpolated (the spotter's own first pass)
        motion = motion_curve(frames, view.arrays["landmarks"], onset, len(numbers) - 1, stride=2)
        how = "TV-L1 on stored frames"
    else:
        return None
    marks = _marks(view)
    if np.isfinite(motion).any():
        marks["motion peak"] = float(numbers[int(np.nanargmax(motion))])
    return Curve("apex", numbers.astype(float), motion, f"motion px ({how})", marks)


def keyframe_curve(view: SampleView) -> Curve | None:
    """Slice change between successive stored keyframes (``keyframes`` recipes only)."""
    if view.recipe.frames.mode != "keyframes" or len(view.source_frames) < 3:
        return None
    scores = slice_change(view.gray_frames(), temporal_sigma=0.0)
    return Curve(
        "keyframes",
        view.source_frames.astype(float),
        scores,
        "slice change (stored keyframes)",
        _marks(view),
        points=view.source_frames.astype(float),
    )


#: Largest mean distance (px) between the stored landmarks and those refitted on the source
#: onset frame for the source frames to count as the same alignment.
SAME_ALIGNMENT_PX = 0.5


def source_difference(view: SampleView, source) -> tuple[np.ndarray | None, str]:
    """apex − onset of the *unmagnified* aligned frames, recomputed from the dataset's own
    frames (``source``: the sample's ``mer_prep.sample.Sample``): landmarks refitted in the
    stored face box, the recipe's alignment, no magnification. ``(None, why)`` when the frames
    cannot be read or do not give the stored alignment."""
    info, recipe = view.info, view.recipe
    box = info.get("face_box") or []
    if source is None or info.get("apex") is None or len(box) != 4:
        return None, "no source frames"
    try:
        numbers = [int(info["onset"]), int(info["apex"])]
        if source.video_path:
            frames = read_video_frames(source.video_path, numbers, gray=True, sample=view.sample_id)
        else:
            paths = [source.frame_paths[source.frame_numbers.index(n)] for n in numbers]
            frames = read_frames(paths, gray=True, sample=view.sample_id)
        face = FaceBox(*(int(v) for v in box), score=0.0, method=str(info.get("detector", "")))
        points = fit_landmarks(frames[0], face)
        size = tuple(recipe.align.size)
        matrix = alignment_matrix(
            points, size=size, inter_ocular=recipe.align.inter_ocular, eye_row=recipe.align.eye_row
        )
    except (MerPrepError, ValueError, LookupError, OSError) as error:
        return None, f"source frames not usable ({error})"
    moved = np.linalg.norm(transform_points(points, matrix) - view.arrays["landmarks"], axis=1)
    if float(moved.mean()) > SAME_ALIGNMENT_PX:
        return None, f"source frames do not give the stored alignment ({moved.mean():.1f} px)"
    aligned = align_clip(frames, matrix, size)
    return aligned[1] - aligned[0], "source frames re-aligned, not magnified"


def _copy_caption(params: dict) -> str:
    if "source_shift_px" in params:
        dx, dy = params.get("source_shift_px", (0, 0))
        parts = [f"box shift ({dx:+.0f}, {dy:+.0f}) px"] if (dx or dy) else []
    else:
        parts = []
        if params.get("angle_deg"):
            parts.append(f"rot {params['angle_deg']:+.1f}°")
        if params.get("crop"):
            parts.append(f"crop {params['crop']:.2f}")
        shift = params.get("shift_px") or (0, 0)
        if any(shift):
            parts.append(f"shift ({shift[0]:+.1f}, {shift[1]:+.1f})")
        if params.get("brightness"):
            parts.append(f"bright {params['brightness']:+.2f}")
        if params.get("contrast") and abs(params["contrast"] - 1) > 1e-6:
            parts.append(f"contrast ×{params['contrast']:.2f}")
    if params.get("flip"):
        parts.append("flip")
    return ", ".join(parts) or "identity"


#: Height of the frame strip's tiles: large enough to see an expression in each frame.
STRIP_HEIGHT_PX = 96


def strip(view: SampleView, height: int | None = None) -> np.ndarray:
    """Every stored frame side by side (scaled to ``height`` px), the onset framed green and
    the apex red."""
    frames = view.arrays["frames"]
    height = height or STRIP_HEIGHT_PX
    tiles = []
    for t in range(frames.shape[0]):
        tile = gray_to_rgb(np.asarray(frames[t], np.float32))
        scale = height / tile.shape[0]
        tile = cv2.resize(
            tile,
            (max(1, round(tile.shape[1] * scale)), height),
            interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_NEAREST,
        )
        if t == view.apex_pos:
            tile = framed(tile, APEX_RGB)
        elif t == view.onset_pos:
            tile = framed(tile, ONSET_RGB)
        tiles.append(tile)
        tiles.append(np.full((height, 1, 3), 255, np.uint8))
    return np.concatenate(tiles[:-1], axis=1)


def panels(
    view: SampleView, *, curves: bool = True, keys: set[str] | None = None, source=None
) -> list[Panel]:
    """The panels of one sample (see the module docstring); ``keys`` keeps only those.
    ``source``: the sample's dataset record (``Sample``) whose frames can be read here: for a
    magnifying recipe the unmagnified difference is then drawn beside the stored one, at the
    same scale."""

    def want(key: str) -> bool:
        return keys is None or key in keys

    def frame_no(pos: int) -> int:
        """The source frame number of stored frame ``pos`` (itself when the view has none)."""
        return int(view.source_frames[pos]) if len(view.source_frames) > pos else pos

    recipe, arrays, f = view.recipe, view.arrays, view.factor
    out: list[Panel] = []
    if want("onset"):
        out.append(
            Panel(
                "onset",
                "onset + landmarks",
                _landmark_frame(view, view.onset_pos),
                f"frame {frame_no(view.onset_pos)}; 68 stored landmarks",
            )
        )
    if want("apex"):
        out.append(
            Panel("apex", "apex + landmarks", _landmark_frame(view, view.apex_pos), view.apex_note)
        )
    if recipe.mask is not None and want("mask"):
        masks = _region_masks(view)
        image = mask_overlay(_show(view.frame(view.onset_pos), gray_to_rgb, f), masks)
        out.append(
            Panel(
                "mask",
                f"mask ({recipe.mask.mode})",
                image,
                f"region_mask from stored landmarks: {', '.join(masks)}, "
                f"margin {recipe.mask.margin} px",
            )
        )
    if recipe.split is not None and "upper" in arrays and want("halves"):
        out.append(
            Panel(
                "halves",
                "upper | lower",
                _halves(view),
                f"stored halves at the apex, split: {recipe.split.mode}",
            )
        )
    if "flow" in arrays:
        flow = np.asarray(arrays["flow"][view.apex_pos], np.float32)
        magnitude = np.hypot(flow[..., 0], flow[..., 1])
        if want("flow"):
            scale = flow_range(flow)
            image = _show(flow, partial(flow_to_rgb, scale=scale.top), f)
            out.append(
                Panel(
                    "flow",
                    "flow onset→apex",
                    image,
                    f"hue = direction, saturation = magnitude, full at "
                    f"{scale.describe('px')} (this frame's |flow|)",
                )
            )
        if "strain" in arrays and want("strain"):
            strain = np.asarray(arrays["strain"][view.apex_pos], np.float32)
            scale = colour_range(strain)
            image = _show(strain, partial(heat, vmax=scale.top, cmap="viridis"), f)
            out.append(Panel("strain", "optical strain", image, f"0 to {scale.describe(digits=3)}"))
        if want("magnitude"):
            scale = colour_range(magnitude)
            image = _show(magnitude, partial(heat, vmax=scale.top), f)
            out.append(Panel("magnitude", "|flow|", image, f"0 to {scale.describe('px')}"))
    if want("difference"):
        gray = view.gray_frames()
        diff = gray[view.apex_pos] - gray[view.onset_pos]
        scale = colour_range(diff, floor=1e-3)
        vmax = scale.top
        what = (
            "stored magnified frames (the unmagnified ones are not stored)"
            if recipe.magnify is not None
            else "stored frames"
        )
        image = _show(diff, partial(diverging, vmax=vmax), f)
        out.append(
            Panel(
                "difference",
                "apex − onset",
                image,
                f"±{scale.describe(digits=3)} (|difference|); {what}",
            )
        )
        if recipe.magnify is not None and source is not None and want("unmagnified"):
            plain, why = source_difference(view, source)
            if plain is not None:
                image = _show(plain, partial(diverging, vmax=vmax), f)
                out.append(
                    Panel(
                        "unmagnified",
                        "apex − onset, not magnified",
                        image,
                        f"same scale ±{vmax:.3f} (its own ±{robust_max(plain):.3f}): {why}",
                    )
                )
    for k, (params, copy) in enumerate(view.copies, start=1):
        if not want(f"copy{k}") and not want("copies"):
            continue
        position = min(view.apex_pos, copy["frames"].shape[0] - 1)
        image = draw_landmarks(
            _show(copy["frames"][position], gray_to_rgb, f), copy["landmarks"], f
        )
        out.append(Panel(f"copy{k}", f"copy {k}", image, _copy_caption(params)))
    n = arrays["frames"].shape[0]
    if n > 2 and want("strip"):
        title = "keyframes" if recipe.frames.mode == "keyframes" else "stored frames"
        out.append(
            Panel(
                "strip",
                title,
                strip(view),
                "frames "
                + ", ".join(str(int(x)) for x in view.source_frames)
                + "; onset green, apex red",
            )
        )
    if curves:
        # each curve panel: key, title, the curve (None: nothing to draw), its caption
        for key, title, curve_of, caption_of in (
            (
                "keyframes",
                "slice change",
                keyframe_curve,
                lambda _curve: (
                    "recomputed on the stored (magnified) keyframes: change "
                    "between successive keyframes, not the selection score over every frame"
                ),
            ),
            (
                "apex_curve",
                "apex spotting",
                apex_curve,
                lambda curve: (
                    f"{curve.ylabel}; apex_source {view.info.get('apex_source') or 'none'}"
                ),
            ),
        ):
            curve = curve_of(view) if want(key) else None
            if curve is not None:
                out.append(Panel(key, title, curve=curve, caption=caption_of(curve)))
    return out


def legend_images(recipe: Recipe) -> list[Panel]:
    """The keys a reader needs once per report: the flow colour wheel, the mask colours."""
    out = []
    if recipe.flow is not None:
        out.append(
            Panel(
                "wheel",
                "flow colour key",
                colour_wheel(96),
                "direction as displayed: right red, up yellow-green, left cyan, down "
                "violet; white = no motion",
            )
        )
    return out
