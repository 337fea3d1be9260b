"""Face stages (pipeline stages 1-5): pure functions over numpy arrays.

Conventions shared by every module: frames are stacks ``(N, H, W)`` gray or ``(N, H, W, 3)``
RGB, uint8 unless stated; points are ``(x, y)`` pixels with pixel centres on integers; sizes are
``(height, width)``; affine matrices are ``(2, 3)`` source -> output.
"""

from mer_prep.face.align import (
    align_clip,
    alignment_matrix,
    crop_box,
    resize_frames,
    source_window,
    transform_points,
    warp_frames,
)
from mer_prep.face.cascade import detect_clip_face
from mer_prep.face.detect import FaceBox, cascade_path, detect_face
from mer_prep.face.frames import read_depth_frames, read_frames, read_video_frames
from mer_prep.face.intensity import to_gray, to_unit
from mer_prep.face.landmarks import (
    MIRROR_68,
    eye_centers,
    fit_landmarks,
    predictor_path,
)
from mer_prep.face.mask import REGION_GROUPS, REGIONS, apply_mask, region_mask
from mer_prep.face.split import landmark_split_row, split_halves

__all__ = [
    "read_depth_frames",
    "read_frames",
    "read_video_frames",
    "FaceBox",
    "detect_face",
    "detect_clip_face",
    "cascade_path",
    "predictor_path",
    "fit_landmarks",
    "MIRROR_68",
    "eye_centers",
    "alignment_matrix",
    "align_clip",
    "warp_frames",
    "transform_points",
    "crop_box",
    "resize_frames",
    "source_window",
    "to_gray",
    "to_unit",
    "REGIONS",
    "REGION_GROUPS",
    "region_mask",
    "apply_mask",
    "split_halves",
    "landmark_split_row",
]
