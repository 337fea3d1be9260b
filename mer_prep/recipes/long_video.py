"""Long-video recipes: how a long video becomes a ``VideoMotion`` (``kind: long_video``).

    recipe = load_long_video_recipe("lv128")  # or a YAML file with ``kind: long_video``
    recipe.k_for(200.0)  # the pair distance in frames at 200 fps

A long-video recipe names every parameter that changes the stored motion: the face detection
(once per video, on its first frame, as the field does), the alignment (size and geometry of
the aligned face, the size the flow is computed at), the pair distance (``k`` frames, or
``pair_seconds`` of the video's own frame rate), the TV-L1 parameters, the regions and their
margins, and ``chunk_pairs``, the pairs per stored time chunk (also the unit a cluster computes:
it changes no value, only the layout, unless the face is ``track``-ed), and ``store_faces``,
whether the store keeps every aligned face beside the motion (for looking at spotted apexes:
``size[0] * size[1]`` bytes a frame before compression, 4 KiB at ``lv64``'s 64x64, 16 KiB at
``lv128``'s 128x128). Its hash, over those parameters only, is one of the three inputs of a
long-video store's version id, as a clip recipe's is of a clip store's.
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from mer_prep.errors import InvalidArgumentError
from mer_prep.motion.flow import TVL1Params
from mer_prep.motion.video_motion import ROI_NAMES
from mer_prep.recipes.model import (
    AlignConfig,
    DetectConfig,
    Recipe,
    load_named_recipe,
    load_recipe,
    shipped_recipes,
)

KIND = "long_video"


class LongVideoRecipe(BaseModel):
    """A complete, hashable long-video configuration (module docstring).

    k: the pair distance in frames for every video; None: ``round(pair_seconds * fps)`` of each
    video (at least 1). more_pair_seconds: further pair distances stored beside it (each
    ``round(s * fps)`` frames, at least 1), so that a spotter can read MEs at a short k and MaEs
    at a longer one (``ks_for``). regions: the ``VideoMotion`` columns, a subset of
    ``ROI_NAMES`` in that order. margin / eye_margin: how far region boxes / eye polygons grow,
    as fractions of the inter-ocular distance (``mer_prep.motion.region_motion.face_regions``).
    track: find the face again on the first frame of every time chunk (off: once per video,
    on its first frame, as the field does); with it, ``chunk_pairs`` also decides where.
    store_faces: keep each video's aligned grey faces in the store (``faces``: (frame, y, x)
    uint8, ``round(255 * aligned)``; ``size[0] * size[1]`` bytes a frame before compression),
    the frames ``mer-prep show`` draws at spotted apexes; off stores the motion only.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["long_video"] = KIND
    name: str
    description: str = ""
    detect: DetectConfig = DetectConfig()
    align: AlignConfig
    k: int | None = Field(default=None, ge=1)
    pair_seconds: float = Field(default=0.2, gt=0, le=5)
    more_pair_seconds: tuple[float, ...] = ()
    flow: TVL1Params = TVL1Params()
    regions: tuple[str, ...] = ROI_NAMES
    margin: float = Field(default=0.1, ge=0, le=1)
    eye_margin: float = Field(default=0.05, ge=0, le=1)
    chunk_pairs: int = Field(default=512, ge=16, le=65536)
    track: bool = False
    store_faces: bool = True

    @model_validator(mode="after")
    def _check(self) -> LongVideoRecipe:
        unknown = [r for r in self.regions if r not in ROI_NAMES]
        if unknown or not self.regions:
            raise InvalidArgumentError(
                f"unknown region(s) {unknown}; regions: {', '.join(ROI_NAMES)}"
            )
        if any(not 0 < s <= 5 for s in self.more_pair_seconds):
            raise InvalidArgumentError(
                f"more_pair_seconds must lie in (0, 5] s, got {list(self.more_pair_seconds)}"
            )
        if "nose" not in self.regions:
            raise InvalidArgumentError("regions must hold 'nose', the head-motion reference")
        if list(self.regions) != [r for r in ROI_NAMES if r in self.regions]:
            raise InvalidArgumentError(f"regions must keep ROI_NAMES' order: {ROI_NAMES}")
        return self

    def k_for(self, fps: float) -> int:
        """The pair distance in frames for a video of ``fps`` frames per second."""
        if self.k is not None:
            return self.k
        return max(1, int(round(self.pair_seconds * fps)))

    def ks_for(self, fps: float) -> tuple[int, ...]:
        """Every pair distance stored for a video of ``fps`` frames per second, ascending:
        ``k_for(fps)`` and those of ``more_pair_seconds``."""
        more = (max(1, int(round(s * fps))) for s in self.more_pair_seconds)
        return tuple(sorted({self.k_for(fps), *more}))

    @property
    def size(self) -> tuple[int, int]:
        return int(self.align.size[0]), int(self.align.size[1])

    def parameters(self) -> dict:
        """Everything that changes the stored values or layout (no prose), as plain JSON."""
        return self.model_dump(mode="json", exclude={"description"}, by_alias=True)

    @property
    def hash(self) -> str:
        """sha256 over the canonical JSON of :meth:`parameters` (16 hex digits)."""
        blob = json.dumps(self.parameters(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def is_long_video_recipe(name_or_path: str | Path) -> bool:
    """Whether ``name_or_path`` names a built-in long-video recipe or a YAML file of kind
    ``long_video`` (a clip recipe, or anything else, is False)."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml"):
        try:
            data = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError):
            return False
        return isinstance(data, dict) and data.get("kind") == KIND
    return str(name_or_path) in builtin_long_video_recipes()


def load_long_video_recipe(name_or_path: str | Path | LongVideoRecipe) -> LongVideoRecipe:
    """A built-in long-video recipe by name (``"lv128"``), or one from a YAML file."""
    if isinstance(name_or_path, LongVideoRecipe):
        return name_or_path
    return load_named_recipe(
        name_or_path, LongVideoRecipe, builtin_long_video_recipes(), "long-video recipe"
    )


@cache
def builtin_long_video_recipes() -> dict[str, LongVideoRecipe]:
    """The recipes shipped in ``mer_prep/recipes/long_video/*.yaml``, by name."""
    return shipped_recipes("long_video", LongVideoRecipe)


def load_any_recipe(name_or_path: str | Path) -> Recipe | LongVideoRecipe:
    """The recipe ``name_or_path`` names: a long-video one when it is of that kind
    (:func:`is_long_video_recipe`), else a clip recipe (``load_recipe``, which names the known
    ones when it is neither)."""
    if is_long_video_recipe(name_or_path):
        return load_long_video_recipe(name_or_path)
    return load_recipe(name_or_path)
