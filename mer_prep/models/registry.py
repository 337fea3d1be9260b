"""The registry of model families: what each model needs from a store, its config, its training
preset and its variants.

Each family's module registers its :class:`ModelSpec` beside its code (``register_model(...)``
at module level, torchvision's way); this module holds the types, the lookup and the list of
family modules (:data:`FAMILY_MODULES`) that ``mer_prep.models`` imports, and imports no family
itself (no import circle). A spec is looked up by name (:func:`get_model`); ``spec.build(config,
n_classes, shapes)`` makes the ``nn.Module`` sized from the store's per-sample array shapes, and
:func:`check_inputs` tells a user, in one line, why a store does not fit a model.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from pydantic import BaseModel
from torch import nn

from mer_prep.errors import MerPrepError, UnknownModelError
from mer_prep.model_catalogue import catalogue_entry
from mer_prep.models.paper_input import PaperInput, input_problem

Unit = Literal["clip", "frame"]
ArrayInfo = tuple[tuple[str, ...], tuple[int, ...]]


class ModelInputError(MerPrepError):
    """A store's arrays (or the shapes given to ``build``) do not fit the model."""


@dataclass(frozen=True)
class ArrayNeed:
    """One array a model reads: its name, its dims without the sample axis, and constraints.

    sizes: dims whose length is fixed, e.g. ``(("uv", 2),)``; minimum: dims with a smallest
    length, e.g. ``(("frame", 2),)``; same_grid_as: another needed array whose leading dims
    (as many as this one has in common) must have the same lengths.
    """

    name: str
    dims: tuple[str, ...]
    sizes: tuple[tuple[str, int], ...] = ()
    minimum: tuple[tuple[str, int], ...] = ()
    same_grid_as: str | None = None

    def describe(self) -> str:
        """E.g. ``"flow (frame, y, x, uv) with uv = 2"``."""
        rules = [f"{d} = {n}" for d, n in self.sizes] + [f"{d} >= {n}" for d, n in self.minimum]
        if self.same_grid_as:
            rules.append(f"the grid of {self.same_grid_as}")
        text = f"{self.name} ({', '.join(self.dims)})"
        return f"{text} with {', '.join(rules)}" if rules else text

    def problem(self, arrays: Mapping[str, ArrayInfo]) -> str | None:
        """What is wrong with ``arrays`` for this need, or None."""
        if self.name not in arrays:
            return f"no {self.name}"
        dims, shape = arrays[self.name]
        if tuple(dims) != self.dims or len(shape) != len(self.dims):
            return f"{self.name} has dims ({', '.join(dims)})"
        length = dict(zip(self.dims, shape, strict=True))
        for dim, size in self.sizes:
            if length[dim] != size:
                return f"{self.name} has {dim} = {length[dim]}"
        for dim, size in self.minimum:
            if length[dim] < size:
                return f"{self.name} has {dim} = {length[dim]}"
        if self.same_grid_as and self.same_grid_as in arrays:
            other = arrays[self.same_grid_as][1]
            common = min(len(other), len(shape))
            if tuple(shape[:common]) != tuple(other[:common]):
                return (
                    f"{self.name} {_shape(shape)} is not on the grid of "
                    f"{self.same_grid_as} {_shape(other)}"
                )
        return None


def _shape(shape: tuple[int, ...]) -> str:
    return "x".join(str(n) for n in shape)


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


@dataclass(frozen=True)
class TrainingPreset:
    """A model's training preset: Adam with ``lr`` and ``eps`` (Keras 1e-7 for the Keras
    papers, torch 1e-8 for paper 003), ``epochs`` x ``batch_size`` (docs/models.md gives each
    value's origin: 000 and 003 state no batch size); the checkpoint is the
    ``last_epoch`` or the best ``validation_metric`` on a validation part of the training
    subjects (``selection="validation"``)."""

    lr: float
    eps: float
    epochs: int
    batch_size: int
    # "test_oracle" only as a run's own override: ``train.plan`` refuses it from a preset
    selection: Literal["validation", "last_epoch", "test_oracle"] = "last_epoch"
    validation_metric: str | None = None
    optimizer: Literal["adam"] = "adam"
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0


@dataclass(frozen=True)
class VariantPreset:
    """A named training variant: config ``overrides``, the ``recipe`` whose store it reads (None:
    the model's own), whether it needs ``augmented`` copies in that store, uses ``smote``
    samples and/or ``class_weights`` in the cross-entropy."""

    overrides: Mapping[str, Any] = field(default_factory=dict)
    recipe: str | None = None
    augmented: bool = False
    smote: bool = False
    class_weights: bool = False
    description: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "overrides", MappingProxyType(dict(self.overrides)))

    def __reduce__(self):
        return (
            VariantPreset,
            (
                dict(self.overrides),
                self.recipe,
                self.augmented,
                self.smote,
                self.class_weights,
                self.description,
            ),
        )


Builder = Callable[[Any, int, Mapping[str, tuple[int, ...]]], nn.Module]


def clip_unit(_config: Any) -> Unit:
    """The default ``unit_of``: one row per clip, whatever the config."""
    return "clip"


@dataclass(frozen=True, eq=False)
class ModelSpec:
    """A registered model: ``build`` it, ask its ``unit`` and the ``inputs`` it needs.

    ``paper_input``: what the paper fed the network (:class:`PaperInput`); a store far from it
    is refused by :func:`check_inputs`. ``frame_unit_skips_onset``: with frames as samples,
    frame 0 of each clip (its onset, a neutral face) is not a sample, since it would be trained
    with the clip's emotion label. Registered specs pickle by name (they hold functions).
    """

    name: str
    paper: str
    family: str
    recipe: str
    description: str
    config_cls: type[BaseModel]
    builder: Builder
    training: TrainingPreset
    variants: Mapping[str, VariantPreset]
    default_variant: str
    needs: Callable[[Any], tuple[ArrayNeed, ...]]
    unit_of: Callable[[Any], Unit] = clip_unit
    paper_input: PaperInput | None = None
    frame_unit_skips_onset: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "variants", MappingProxyType(dict(self.variants)))

    def __reduce__(self):
        if MODELS.get(self.name) is self:
            return (get_model, (self.name,))
        return super().__reduce__()

    def config(
        self, overrides: Mapping[str, Any] | None = None, *, variant: str | None = None
    ) -> BaseModel:
        """The config of ``variant`` (its overrides) updated by ``overrides``, validated."""
        values: dict[str, Any] = {}
        if variant is not None:
            if variant not in self.variants:
                raise UnknownModelError(
                    f"model {self.name} has no variant {variant!r}; valid: "
                    f"{', '.join(self.variants)}"
                )
            values.update(self.variants[variant].overrides)
        values.update(overrides or {})
        return self.config_cls(**values)

    def resolve(self, config: BaseModel | Mapping[str, Any] | None) -> BaseModel:
        """A config instance from None (defaults), a mapping of overrides, or an instance."""
        if config is None:
            return self.config_cls()
        if isinstance(config, self.config_cls):
            return config
        if isinstance(config, BaseModel):
            raise TypeError(
                f"model {self.name} takes a {self.config_cls.__name__}, "
                f"not a {type(config).__name__}"
            )
        return self.config_cls(**dict(config))

    @property
    def inputs(self) -> tuple[ArrayNeed, ...]:
        """The arrays the default config needs."""
        return self.needs(self.config_cls())

    def required_inputs(
        self, config: BaseModel | Mapping[str, Any] | None = None
    ) -> tuple[ArrayNeed, ...]:
        """The arrays ``config`` needs (e.g. msres3d needs ``strain`` only with strain=True)."""
        return self.needs(self.resolve(config))

    def unit(self, config: BaseModel | Mapping[str, Any] | None = None) -> Unit:
        """``"frame"``: the engine expands each clip into its frames (the model gets
        ``frames`` (B, 1, H, W)); ``"clip"``: one row per clip."""
        return self.unit_of(self.resolve(config))

    def build(
        self,
        config: BaseModel | Mapping[str, Any] | None,
        n_classes: int,
        shapes: Mapping[str, tuple[int, ...]],
    ) -> nn.Module:
        """The model for ``n_classes`` classes, sized from per-sample ``shapes`` (no batch dim).

        Seed torch (``torch.manual_seed``) before calling for reproducible weights; build under
        ``with torch.device("meta"):`` to count parameters without allocating them.
        """
        config = self.resolve(config)
        if n_classes < 2:
            raise ValueError(f"model {self.name} needs at least 2 classes, got {n_classes}")
        needs = self.needs(config)
        arrays = {}
        for need in needs:
            if need.name in shapes:
                arrays[need.name] = (need.dims, tuple(shapes[need.name]))
        problems = [p for need in needs if (p := need.problem(arrays))]
        if problems:
            given = ", ".join(f"{k} {_shape(tuple(v))}" for k, v in shapes.items())
            raise ModelInputError(
                f"model {self.name} needs {_needs_text(needs)}; got shapes "
                f"{given or 'none'} ({'; '.join(problems)})"
            )
        return self.builder(config, n_classes, {k: tuple(v) for k, v in shapes.items()})


def _needs_text(needs: tuple[ArrayNeed, ...]) -> str:
    return ("arrays " if len(needs) > 1 else "array ") + _and([n.describe() for n in needs])


def check_inputs(
    spec: ModelSpec,
    store_recipe_name: str,
    arrays: Mapping[str, ArrayInfo],
    config: BaseModel | Mapping[str, Any] | None = None,
) -> None:
    """Raise :class:`ModelInputError` (one line) unless the store's ``arrays`` fit ``spec``.

    ``arrays``: stored array name -> (dims without the sample axis, per-sample shape). A user
    recipe fits whenever its arrays, dims and constraints match, whatever its name. Arrays the
    model can run on but far from its paper's input (``spec.paper_input``) are refused too,
    naming the recipe that makes that input.
    """
    needs = spec.required_inputs(config)
    problems = [p for need in needs if (p := need.problem(arrays))]
    if not problems:
        far = input_problem(spec.name, spec.paper_input, spec.recipe, store_recipe_name, arrays)
        if far:
            raise ModelInputError(far)
        return
    has = (
        ", ".join(
            f"{name} ({', '.join(dims)}) {_shape(tuple(shape))}"
            for name, (dims, shape) in arrays.items()
        )
        or "no arrays"
    )
    raise ModelInputError(
        f"model {spec.name} needs {_needs_text(needs)}; the store's recipe "
        f"{store_recipe_name} has {has} ({'; '.join(problems)})"
    )


# --- registration -----------------------------------------------------------------------------

#: The modules that register model families, in paper order (the order of :func:`list_models`):
#: each calls :func:`register_model` at import. ``mer_prep.models`` imports them all, so any
#: lookup (``import mer_prep.models.registry`` imports the package first) sees every family.
FAMILY_MODULES: tuple[str, ...] = tuple(
    f"mer_prep.models.{name}"
    for name in (
        "mbcc",
        "broadbent",
        "ha3d",
        "msres3d",
        "mer3dcnn",
        "ststnet",
        "offapexnet",
        "htnet",
    )
)

#: Adam's eps of the Keras papers (Keras' default) and of the PyTorch / TensorFlow ones.
KERAS_EPS = 1e-7
TORCH_EPS = 1e-8


def keras_preset(epochs: int, batch_size: int = 32, **settings: Any) -> TrainingPreset:
    """The preset of a Keras paper: Keras' Adam (lr 1e-3, eps 1e-7) unless ``settings`` say
    otherwise, ``epochs`` x ``batch_size`` (32: Keras' ``fit()`` default)."""
    return TrainingPreset(
        **{"lr": 1e-3, "eps": KERAS_EPS, "epochs": epochs, "batch_size": batch_size, **settings}
    )


_SPECS: dict[str, ModelSpec] = {}
MODELS: Mapping[str, ModelSpec] = MappingProxyType(_SPECS)


def register_model(spec: ModelSpec) -> ModelSpec:
    """Add ``spec`` to :data:`MODELS` under its name (called by each family's module at import);
    a second family under the same name is a programming error."""
    if spec.name in _SPECS:
        raise ValueError(
            f"model {spec.name!r} is registered twice "
            f"({_SPECS[spec.name].family} and {spec.family})"
        )
    _SPECS[spec.name] = spec
    return spec


def family_spec(
    name: str,
    config_cls: type[BaseModel],
    builder: Builder,
    *,
    description: str,
    needs: Callable[[Any], tuple[ArrayNeed, ...]],
    paper_input: PaperInput,
    training: TrainingPreset,
    variants: Mapping[str, VariantPreset],
    unit_of: Callable[[Any], Unit] = clip_unit,
    frame_unit_skips_onset: bool = False,
    family: str | None = None,
) -> ModelSpec:
    """The :class:`ModelSpec` of model ``name`` (of ``family``, by default its own name) whose
    ``paper``, ``recipe`` and ``default_variant`` are its entry in
    :data:`mer_prep.model_catalogue.MODEL_CATALOGUE` (the names ``mer-prep`` checks without
    PyTorch), so the two cannot differ; ``variants`` must name the catalogue's variants and the
    recipes it gives them (a mismatch is a programming error, raised at import)."""
    entry = catalogue_entry(name)
    recipes = {variant: preset.recipe for variant, preset in variants.items()}
    if recipes != dict(entry.variants):
        raise ValueError(
            f"model {name!r}: variants {recipes} are not the catalogue's {dict(entry.variants)}"
        )
    return ModelSpec(
        name=name,
        paper=entry.paper,
        family=family or name,
        recipe=entry.recipe,
        description=description,
        config_cls=config_cls,
        builder=builder,
        needs=needs,
        unit_of=unit_of,
        paper_input=paper_input,
        training=training,
        variants=variants,
        default_variant=entry.default_variant,
        frame_unit_skips_onset=frame_unit_skips_onset,
    )


def frames_need(*, min_frames: int = 1, min_size: int = 2) -> ArrayNeed:
    """``frames`` (frame, y, x) with at least ``min_frames`` frames (when > 1) of at least
    ``min_size`` x ``min_size`` pixels."""
    minimum = ((("frame", min_frames),) if min_frames > 1 else ()) + (
        ("y", min_size),
        ("x", min_size),
    )
    return ArrayNeed("frames", ("frame", "y", "x"), minimum=minimum)


def list_models() -> list[str]:
    """The registered model names, in paper order."""
    return list(MODELS)


def get_model(name: str) -> ModelSpec:
    """The :class:`ModelSpec` registered as ``name``; :class:`UnknownModelError` names the valid
    ones otherwise."""
    try:
        return MODELS[name]
    except KeyError:
        raise UnknownModelError(
            f"unknown model {name!r}; valid models: {', '.join(MODELS)}"
        ) from None


def build_model(
    name: str,
    config: BaseModel | Mapping[str, Any] | None,
    n_classes: int,
    shapes: Mapping[str, tuple[int, ...]],
) -> nn.Module:
    """``get_model(name).build(config, n_classes, shapes)``."""
    return get_model(name).build(config, n_classes, shapes)
