"""The typed recipe model, its content hash, and loading from YAML.

A recipe names every parameter that changes the stored arrays; its hash (over those
parameters only, not the prose) is one of the three inputs of a store version id.
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class FrameSelection(_Frozen):
    """Which frames a recipe reads.

    ``onset_apex``: the onset and apex frames (apex required).
    ``sequence``: ``n_frames`` frames evenly spaced from onset to offset inclusive, nearest
    source frame each (a short clip repeats frames rather than inventing them).
    """

    mode: Literal["onset_apex", "sequence"]
    n_frames: int = Field(default=2, ge=2)


class DetectConfig(_Frozen):
    """Face detection, run once per clip on the onset frame; the box is reused for the clip."""

    method: Literal["hog", "haar"] = "hog"
    upsample: int = Field(default=0, ge=0, le=2)
    fallback: bool = True


class AlignConfig(_Frozen):
    """Eye-line rotation and scaling to a fixed inter-ocular distance, crop and resize in one warp.

    size: output (height, width) in pixels; inter_ocular: eye distance as a fraction of the
    output width; eye_row: height of the eye line as a fraction of the output height.
    """

    size: tuple[int, int]
    inter_ocular: float = Field(default=0.40, gt=0.05, lt=0.9)
    eye_row: float = Field(default=0.36, gt=0.05, lt=0.9)


class MaskConfig(_Frozen):
    """Landmark-polygon masking (papers 002/004): black out the regions, or keep only them."""

    regions: tuple[str, ...] = ("left_eye", "right_eye", "mouth")
    mode: Literal["black_out", "keep_only"] = "black_out"
    margin: int = Field(default=3, ge=0)


class SplitConfig(_Frozen):
    """Upper/lower face split (paper 002): at the middle row, or at a landmark-based row."""

    mode: Literal["middle", "landmarks"] = "middle"


class Recipe(_Frozen):
    """A complete, hashable preprocessing configuration.

    Outputs per sample: ``frames`` (frame, y, x) in [0, 1]; ``landmarks`` (point, xy) in output
    pixels; ``upper``/``lower`` halves when ``split`` is set.
    """

    name: str
    paper: str = ""
    description: str = ""
    frames: FrameSelection
    detect: DetectConfig = DetectConfig()
    align: AlignConfig
    mask: MaskConfig | None = None
    split: SplitConfig | None = None
    store_dtype: Literal["float16", "float32"] = "float16"

    @model_validator(mode="after")
    def _check(self) -> "Recipe":
        if self.frames.mode == "onset_apex" and self.frames.n_frames != 2:
            raise ValueError("frames.mode 'onset_apex' reads exactly 2 frames")
        if self.split is not None and self.align.size[0] % 2:
            raise ValueError("split needs an even output height")
        return self

    @property
    def needs_apex(self) -> bool:
        return self.frames.mode == "onset_apex"

    def parameters(self) -> dict:
        """Everything that changes the stored arrays (no prose), as plain JSON types."""
        return self.model_dump(mode="json", exclude={"paper", "description"})

    @property
    def hash(self) -> str:
        """sha256 over the canonical JSON of :meth:`parameters` (16 hex digits)."""
        blob = json.dumps(self.parameters(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def array_specs(self) -> dict[str, tuple[tuple[str, ...], tuple[int, ...], str]]:
        """Per-sample arrays this recipe writes: name -> (dims, per-sample shape, dtype)."""
        h, w = self.align.size
        t = self.frames.n_frames
        specs = {
            "frames": (("frame", "y", "x"), (t, h, w), self.store_dtype),
            "landmarks": (("point", "xy"), (68, 2), "float32"),
        }
        if self.split is not None:
            # Their own row dimension: one xarray Dataset cannot give "y" two lengths.
            specs["upper"] = (("frame", "y_half", "x"), (t, h // 2, w), self.store_dtype)
            specs["lower"] = (("frame", "y_half", "x"), (t, h // 2, w), self.store_dtype)
        return specs


def load_recipe(name_or_path: str | Path) -> Recipe:
    """A built-in recipe by name (``"ha3d"``), or a user recipe from a YAML file path."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise FileNotFoundError(f"recipe file {path} does not exist")
        return Recipe.model_validate(yaml.safe_load(path.read_text()))
    recipes = builtin_recipes()
    if str(name_or_path) not in recipes:
        raise KeyError(f"unknown recipe {name_or_path!r}; built-in: {', '.join(sorted(recipes))}")
    return recipes[str(name_or_path)]


@cache
def builtin_recipes() -> dict[str, Recipe]:
    """The recipes shipped in ``mer_prep/recipes/builtin/*.yaml``, by name."""
    folder = resources.files("mer_prep.recipes") / "builtin"
    out = {}
    for entry in folder.iterdir():
        if entry.name.endswith(".yaml"):
            recipe = Recipe.model_validate(yaml.safe_load(entry.read_text()))
            out[recipe.name] = recipe
    return out
