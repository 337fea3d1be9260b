"""The motion of one long video along time: what spotters read and long-video stores hold.

    motion = VideoMotion(video_id="casme_sq/s15/15_0101disgustingteeth", ...)
    motion.magnitude[i, motion.roi_names.index("mouth")]  # mouth motion, frame i -> i + k

Row ``i`` of every per-pair array describes the motion from frame ``i`` to frame ``i + k`` of
the video (``n_pairs = n_frames - k`` rows); frame ``i`` is ``frame_numbers[i]`` in the
dataset's own numbering, the numbering of its annotated intervals. Head motion is removed (the
nose region's mean flow is subtracted from every region) and the eyes are masked before any
region value is taken, so a blink or a head turn is not a facial movement.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from mer_prep.errors import InvalidArgumentError

#: the facial regions whose motion is followed, in column order of the per-region arrays
ROI_NAMES: tuple[str, ...] = (
    "brow_left",
    "brow_right",
    "eye_left",
    "eye_right",
    "nose",
    "mouth_left",
    "mouth_right",
)


@dataclass(frozen=True)
class VideoMotion:
    """Per frame pair motion of one video.

    - ``video_id``: ``<dataset>/<subject>/<video>``, as ``LongVideo.video_id``;
      ``subject``: its subject (LOSO folds group by it).
    - ``fps``: frames per second of the recording; ``k``: the pair distance in frames.
    - ``frame_numbers``: (n_frames,) int64, the dataset's number of each frame.
    - ``roi_names``: the regions, the column order of the (n_pairs, R) arrays.
    - ``magnitude``: (n_pairs, R) float32, mean flow magnitude in each region, pixels of the
      aligned face per pair, head motion removed.
    - ``main_direction``: (n_pairs, R) float32, the main-directional mean: the mean magnitude
      of the region's flow vectors whose direction falls in the most populated of 8 direction
      bins (pixels per pair).
    - ``strain``: (n_pairs, R) float32, mean optical strain magnitude in each region
      (dimensionless).
    """

    video_id: str
    subject: str
    fps: float
    k: int
    frame_numbers: NDArray[np.int64]
    roi_names: tuple[str, ...]
    magnitude: NDArray[np.float32]
    main_direction: NDArray[np.float32]
    strain: NDArray[np.float32]

    def __post_init__(self) -> None:
        n_pairs = len(self.frame_numbers) - self.k
        shape = (n_pairs, len(self.roi_names))
        if self.k < 1 or n_pairs < 1:
            raise InvalidArgumentError(
                f"{self.video_id}: k={self.k} needs more than {self.k} frames, "
                f"got {len(self.frame_numbers)}"
            )
        for name in ("magnitude", "main_direction", "strain"):
            values = getattr(self, name)
            if values.shape != shape:
                raise InvalidArgumentError(
                    f"{self.video_id}: {name} must be (n_pairs, R) = {shape}, got {values.shape}"
                )

    @property
    def n_frames(self) -> int:
        return len(self.frame_numbers)

    @property
    def n_pairs(self) -> int:
        return self.n_frames - self.k

    def column(self, roi: str) -> int:
        """The column of region ``roi`` in the per-region arrays."""
        if roi not in self.roi_names:
            raise InvalidArgumentError(
                f"{self.video_id}: no region {roi!r}; regions: {', '.join(self.roi_names)}"
            )
        return self.roi_names.index(roi)
