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
from typing import Annotated, Literal, NamedTuple, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from mer_prep.errors import InvalidArgumentError, RecipeError, UnknownRecipeError
from mer_prep.motion.flow import TVL1Params


class ArraySpec(NamedTuple):
    """One stored array, per sample: dimension names, shape and dtype (without the sample axis,
    which the store adds in front)."""

    dims: tuple[str, ...]
    shape: tuple[int, ...]
    dtype: str

    def stored(self, n_rows: int) -> dict:
        """The store's JSON description: ``{dims, shape, dtype}`` with the leading sample axis."""
        return {"dims": ["sample", *self.dims], "shape": [n_rows, *self.shape], "dtype": self.dtype}


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class FrameSelection(_Frozen):
    """Which frames a recipe reads.

    ``onset_apex``: the onset and apex frames (apex required).
    ``sequence``: ``n_frames`` frames evenly spaced from onset to offset inclusive, nearest
    source frame each (a short clip repeats frames rather than inventing them).
    ``keyframes``: ``n_frames`` spatio-temporal-slice keyframes of the whole clip (paper 003),
    always including onset and apex (a clip shorter than that repeats its nearest frames).
    """

    mode: Literal["onset_apex", "sequence", "keyframes"]
    n_frames: int = Field(default=2, ge=2, le=512)


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

    # 8..1024 px a side: smaller cannot hold a face, larger is no micro-expression crop (and
    # would fail late, out of memory, after the store was laid out)
    size: tuple[Annotated[int, Field(ge=8, le=1024)], Annotated[int, Field(ge=8, le=1024)]]
    inter_ocular: float = Field(default=0.40, gt=0.05, lt=0.9)
    eye_row: float = Field(default=0.36, gt=0.05, lt=0.9)


class MaskConfig(_Frozen):
    """Landmark-polygon masking (papers 002/004): black out the regions, or keep only them."""

    regions: tuple[str, ...] = ("left_eye", "right_eye", "mouth")
    mode: Literal["black_out", "keep_only"] = "black_out"
    margin: int = Field(default=3, ge=0)


class ApexConfig(_Frozen):
    """What to do when a recipe needs the apex and the annotation gives none (SMIC, "/").

    spot: find it from the motion of the landmark regions (``mer_prep.motion.apex``); when
    False such samples fail with a clear error instead.
    """

    spot: bool = True


class MagnifyConfig(_Frozen):
    """Eulerian video magnification (Wu et al. 2012; paper 003), run on the aligned clip.

    alpha: motion gain; cutoff_wavelength: spatial wavelength (output pixels) below which the
    gain is reduced (lambda_c); f_low / f_high: temporal pass band in Hz (f_high above a clip's
    Nyquist frequency is lowered to it); levels: pyramid levels (None: as many as fit);
    temporal_filter: ideal FFT band-pass or the causal IIR difference of low-passes.
    """

    alpha: float = Field(ge=0)
    cutoff_wavelength: float = Field(gt=0)
    f_low: float = Field(gt=0)
    f_high: float = Field(gt=0)
    levels: int | None = Field(default=None, ge=1)
    temporal_filter: Literal["ideal", "iir"] = "ideal"


class FlowConfig(TVL1Params):
    """TV-L1 optical flow from the onset to every stored frame (the solver's parameters, see
    ``mer_prep.motion.flow.TVL1Params``), and whether its optical strain is stored.

    working_size: (height, width) the flow is computed at, when not the recipe's output size:
    the clip is aligned again at this size (the same face geometry), the flow and its strain
    computed there, then both resized to the output size by area averaging, the flow vectors
    multiplied by the size ratio (output px) and the strain, dimensionless, left as it is.
    None: at the output size.
    """

    strain: bool = True
    working_size: (
        tuple[Annotated[int, Field(ge=8, le=1024)], Annotated[int, Field(ge=8, le=1024)]] | None
    ) = None


class AugmentConfig(_Frozen):
    """How many augmented copies to make per sample and the bounds of their random draw.

    copies: augmented copies per sample (the original is kept besides them).
    seed: base seed; with the sample id and the copy index it fixes every draw.
    rotation_deg: largest |angle| in degrees, drawn uniformly in ``[-rotation_deg, rotation_deg]``.
    crop: largest fraction of each side removed, drawn uniformly in ``[0, crop]``; the crop
    window (same fraction of height and width, uniformly placed) is resized back to the frame.
    shift_px: largest shift of the content in x and in y, output pixels, each uniform in
    ``[-shift_px, shift_px]``.
    flip: mirror left-right with probability 0.5.
    brightness: largest additive change in [0, 1] intensity units, uniform in
    ``[-brightness, brightness]``.
    contrast: largest relative change of contrast about each frame's mean: the factor is
    uniform in ``[1 - contrast, 1 + contrast]`` (0.3 -> x[0.7, 1.3]).
    """

    copies: int = Field(default=1, ge=1, le=64)
    seed: int = Field(default=0, ge=0)
    rotation_deg: float = Field(default=0.0, ge=0.0, le=90.0)
    crop: float = Field(default=0.0, ge=0.0, le=0.5)
    shift_px: float = Field(default=0.0, ge=0.0)
    flip: bool = False
    brightness: float = Field(default=0.0, ge=0.0, le=1.0)
    contrast: float = Field(default=0.0, ge=0.0, lt=1.0)


class SourceCopy(NamedTuple):
    """One copy made before alignment: the face box moved by ``shift`` = (dx, dy) source
    pixels, and/or the aligned face mirrored left-right."""

    shift: tuple[float, float] = (0.0, 0.0)
    flip: bool = False

    def to_dict(self) -> dict:
        return {"source_shift_px": list(self.shift), "flip": self.flip}


class SourceAugmentConfig(_Frozen):
    """Augmented copies made before alignment (paper 003): the face box shifted ``shift_px``
    source pixels left, right, up and down (one copy each) and, with ``flip``, the face
    mirrored left-right (one copy). Moving the box before the warp keeps real pixels where a
    shift of the aligned output would leave a black border; every copy goes through
    magnification and flow again, on the clip's own keyframes and apex."""

    shift_px: float = Field(default=15.0, ge=0)
    flip: bool = True

    def copies(self) -> list[SourceCopy]:
        d = float(self.shift_px)
        shifts = [(-d, 0.0), (d, 0.0), (0.0, -d), (0.0, d)] if d else []
        return [SourceCopy(shift) for shift in shifts] + (
            [SourceCopy(flip=True)] if self.flip else []
        )


class SplitConfig(_Frozen):
    """Upper/lower face split (paper 002): at the middle row, or at a landmark-based row."""

    mode: Literal["middle", "landmarks"] = "middle"


class Recipe(_Frozen):
    """A complete, hashable preprocessing configuration.

    Outputs per sample: ``frames`` (frame, y, x) in [0, 1] (magnified when ``magnify`` is
    set); ``landmarks`` (point, xy) in output pixels; ``upper``/``lower`` halves when ``split``
    is set; ``flow`` (frame, y, x, uv) pixels from the onset frame and ``strain`` (frame, y, x)
    when ``flow`` is set. With ``augment``, every sample is followed by ``augment.copies``
    augmented copies (same transform on all its arrays), each recorded with its parent.

    channels: ``gray`` (default) or ``rgb``: frames decoded in colour and stored
    (frame, y, x, channel) in [0, 1], RGB order, halves likewise; detection and landmarks
    use the onset frame decoded in gray (the gray recipes' box and landmarks), keyframes, apex
    spotting and flow the BT.601 luma of the colour frames; magnification runs on each channel
    (it is linear: the luma of the magnified frames is the magnified luma, up to clipping);
    masks black out all three channels.

    depth: also store ``depth`` (frame, y, x) uint16: the sample's 16-bit depth frames
    (CAS(ME)^3, ``Sample.depth_paths``) at the stored frames' positions, warped by the same
    alignment as the frames with nearest-neighbour sampling (depth values are never blended),
    0 outside the source. Not masked, magnified or split. A sample without depth fails.
    Not combinable with ``augment`` (its warp blends); ``source_augment`` copies warp depth
    with their own alignment.
    """

    name: str
    paper: str = ""
    description: str = ""
    frames: FrameSelection
    detect: DetectConfig = DetectConfig()
    align: AlignConfig
    apex: ApexConfig = ApexConfig()
    mask: MaskConfig | None = None
    split: SplitConfig | None = None
    magnify: MagnifyConfig | None = None
    flow: FlowConfig | None = None
    augment: AugmentConfig | None = None
    source_augment: SourceAugmentConfig | None = None
    channels: Literal["gray", "rgb"] = "gray"
    store_dtype: Literal["float16", "float32"] = "float16"
    depth: bool = False

    @model_validator(mode="after")
    def _check(self) -> Recipe:
        if self.frames.mode == "onset_apex" and self.frames.n_frames != 2:
            raise InvalidArgumentError("frames.mode 'onset_apex' reads exactly 2 frames")
        if self.split is not None and self.align.size[0] % 2:
            raise InvalidArgumentError("split needs an even output height")
        if self.magnify is not None and self.magnify.f_low >= self.magnify.f_high:
            raise InvalidArgumentError("magnify.f_low must be below magnify.f_high")
        if self.augment is not None and self.source_augment is not None:
            raise InvalidArgumentError(
                "augment and source_augment are exclusive: a copy is "
                "made either before or after alignment"
            )
        if self.depth and self.augment is not None:
            raise InvalidArgumentError(
                "depth cannot be combined with augment: augmented copies "
                "are warped after alignment with interpolation that would "
                "blend depth values; use source_augment instead"
            )
        return self

    @property
    def rows_per_sample(self) -> int:
        """Store rows per sample: the sample and its augmented copies."""
        return 1 + self.n_copies

    @property
    def n_copies(self) -> int:
        """Augmented copies per sample (``augment`` or ``source_augment``)."""
        if self.source_augment is not None:
            return len(self.source_augment.copies())
        return self.augment.copies if self.augment is not None else 0

    @property
    def needs_apex(self) -> bool:
        return self.frames.mode in ("onset_apex", "keyframes")

    def parameters(self) -> dict:
        """Everything that changes the stored arrays (no prose), as plain JSON types."""
        dumped = self.model_dump(mode="json", exclude={"paper", "description"}, by_alias=True)
        # Options added later are absent at their default, as before they existed: the hashes
        # of the recipes that do not use them stay put.
        if dumped["source_augment"] is None:
            del dumped["source_augment"]
        if dumped["channels"] == "gray":
            del dumped["channels"]
        if not dumped["depth"]:
            del dumped["depth"]
        if dumped["flow"] is not None and dumped["flow"]["working_size"] is None:
            del dumped["flow"]["working_size"]
        return dumped

    @property
    def hash(self) -> str:
        """sha256 over the canonical JSON of :meth:`parameters` (16 hex digits)."""
        blob = json.dumps(self.parameters(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def array_specs(self) -> dict[str, ArraySpec]:
        """Per-sample arrays this recipe writes, by name."""
        h, w = self.align.size
        t = self.frames.n_frames
        channel = (("channel",), (3,)) if self.channels == "rgb" else ((), ())
        specs = {
            "frames": ArraySpec(
                ("frame", "y", "x", *channel[0]), (t, h, w, *channel[1]), self.store_dtype
            ),
            "landmarks": ArraySpec(("point", "xy"), (68, 2), "float32"),
        }
        if self.split is not None:
            # Their own row dimension: one xarray Dataset cannot give "y" two lengths.
            half = ArraySpec(
                ("frame", "y_half", "x", *channel[0]), (t, h // 2, w, *channel[1]), self.store_dtype
            )
            specs["upper"] = half
            specs["lower"] = half
        if self.flow is not None:
            specs["flow"] = ArraySpec(("frame", "y", "x", "uv"), (t, h, w, 2), self.store_dtype)
            if self.flow.strain:
                specs["strain"] = ArraySpec(("frame", "y", "x"), (t, h, w), self.store_dtype)
        if self.depth:
            specs["depth"] = ArraySpec(("frame", "y", "x"), (t, h, w), "uint16")
        return specs


#: a recipe model: clip recipes (``Recipe``) and long-video ones (``LongVideoRecipe``)
RecipeT = TypeVar("RecipeT", bound=BaseModel)


def read_recipe_file(path: Path, model: type[RecipeT]) -> RecipeT:
    """The recipe of ``model``'s kind in the YAML file ``path``; one-line ``RecipeError``s."""
    if not path.is_file():
        raise RecipeError(f"recipe file {path} does not exist")
    try:
        return model.model_validate(yaml.safe_load(path.read_text()))
    except yaml.YAMLError as error:
        raise RecipeError(f"recipe file {path}: not YAML ({error})") from None
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or '(top level)'}: "
            f"{e['msg'].removeprefix('Value error, ')}"
            for e in error.errors()
        )
        raise RecipeError(f"recipe file {path}: {problems}") from None


def shipped_recipes(folder: str, model: type[RecipeT]) -> dict[str, RecipeT]:
    """The recipes of ``model``'s kind shipped in ``mer_prep/recipes/<folder>/*.yaml``, by name."""
    out = {}
    for entry in (resources.files("mer_prep.recipes") / folder).iterdir():
        if entry.name.endswith(".yaml"):
            recipe = model.model_validate(yaml.safe_load(entry.read_text()))
            out[str(recipe.model_dump(include={"name"})["name"])] = recipe
    return out


def load_named_recipe(
    name_or_path: str | Path, model: type[RecipeT], builtins: dict[str, RecipeT], kind: str
) -> RecipeT:
    """``builtins[name]`` for a built-in name, or the recipe of ``model``'s kind in a YAML file
    path; ``UnknownRecipeError`` naming the built-in ``kind`` recipes otherwise."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml"):
        return read_recipe_file(path, model)
    if str(name_or_path) not in builtins:
        raise UnknownRecipeError(
            f"unknown {kind} {name_or_path!r}; built-in: {', '.join(sorted(builtins))}"
        )
    return builtins[str(name_or_path)]


def load_recipe(name_or_path: str | Path) -> Recipe:
    """A built-in recipe by name (``"ha3d"``), or a user recipe from a YAML file path."""
    return load_named_recipe(name_or_path, Recipe, builtin_recipes(), "recipe")


@cache
def builtin_recipes() -> dict[str, Recipe]:
    """The recipes shipped in ``mer_prep/recipes/builtin/*.yaml``, by name."""
    return shipped_recipes("builtin", Recipe)
