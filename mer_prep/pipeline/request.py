"""``PreprocessRequest``: every parameter of one preprocessing run, and its default, once.

The CLI builds one from its options, the configuration's ``[datasets.*]`` tables build one per
deployment (``mer_prep.config``), a served run's policy checks a run's parameters against the
configured request (``mer_prep.config.policy``), ``flows.preprocess`` takes its fields as the
flow's parameters and ``mer_prep.pipeline.sequence`` runs it. Building one checks the names it
holds (dataset, recipe, label scheme, adapter options, workers, store template), so a bad
setting is refused before any worker or Prefect server starts; what needs the file system
(roots, annotation files, a recipe YAML) is checked by :meth:`PreprocessRequest.check_inputs`.
"""

from __future__ import annotations

import inspect
import os
import string
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    ValidationError,
    field_validator,
    model_validator,
)

from mer_prep.errors import InvalidArgumentError, MerPrepError, UnknownDatasetError
from mer_prep.pipeline import defaults
from mer_prep.store.layout import DEFAULT_STORE_TEMPLATE

if TYPE_CHECKING:
    from mer_prep.recipes import Recipe

#: where a run writes when it names no store: ``{dataset}`` and ``{recipe}`` (the recipe's
#: name) are filled in per run, relative to the working directory
DEFAULT_STORE = DEFAULT_STORE_TEMPLATE  # the store format's (``mer_prep.store.layout``)


class PreprocessRequest(BaseModel):
    """One preprocessing run: ``dataset`` under ``root`` (a folder, or ``{part: folder}`` for
    a composite) through ``recipe`` into the store ``store``.

    ``recipe``: a built-in recipe name, a YAML path, or (in-process runs only: a flow's
    parameters are JSON) a ``Recipe`` made in code. ``store``: a location or a template with
    ``{dataset}`` / ``{recipe}``; None: ``DEFAULT_STORE``. ``n_workers``: Dask workers of a
    local cluster (and how many batches the samples are cut into). ``options``: the dataset
    adapter's keyword options. ``progress``: a progress bar on the terminal. ``dask_address``:
    an existing scheduler; None: ``mer-prep serve``'s standing cluster, else a local one.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    dataset: str
    root: str | dict[str, str]
    # a name, a YAML path or a Recipe (``_recipe``): typed loosely so that the CLI's start does
    # not import the recipes (and OpenCV with them)
    recipe: Any = defaults.RECIPE
    store: str | None = None
    labels: str = defaults.LABELS
    # strict: True, "2" and 2.0 are not a count of workers
    n_workers: StrictInt = Field(defaults.N_WORKERS, ge=1)
    options: dict[str, Any] = Field(default_factory=dict)
    progress: StrictBool = False
    dask_address: str | None = None
    # a cluster the run creates and closes: a [clusters.*] spec's JSON form
    # (mer_prep.config.clusters; built by flows.cluster_kinds)
    cluster: dict[str, Any] | None = None

    def __init__(self, **parameters: Any) -> None:
        """Build and check; ``MerPrepError`` (the checks' own: ``UnknownDatasetError``, ...,
        else ``InvalidArgumentError`` naming the field) instead of pydantic's error."""
        try:
            super().__init__(**parameters)
        except ValidationError as error:
            raise _one_error(error) from None

    @classmethod
    def from_arguments(cls, *args: Any, **parameters: Any) -> PreprocessRequest:
        """A request from positional values in field order (``dataset, root, recipe, store``)
        and keywords: how ``run_preprocess`` and ``commit_version`` are called."""
        names = list(cls.model_fields)
        if len(args) > len(names):
            raise InvalidArgumentError(
                f"a preprocessing request takes at most {len(names)} values, got {len(args)}"
            )
        doubled = sorted(set(names[: len(args)]) & set(parameters))
        if doubled:
            raise InvalidArgumentError(f"given twice: {', '.join(doubled)}")
        return cls(**dict(zip(names[: len(args)], args, strict=True)), **parameters)

    @classmethod
    def flow_signature(cls) -> inspect.Signature:
        """The fields as keyword-only parameters with their defaults: the signature Prefect
        reads for a flow's parameters (schema, UI form, ``deployment run -p name=value``).
        ``recipe`` is a name or a path there (JSON), never a ``Recipe``; ``options`` may be
        null (no options), as it always could."""
        parameters = []
        for name, info in cls.model_fields.items():
            default = (
                inspect.Parameter.empty
                if info.is_required()
                else info.get_default(call_default_factory=True)
            )
            annotation = _FLOW_TYPES.get(name, info.annotation)
            parameters.append(
                inspect.Parameter(
                    name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation
                )
            )
        return inspect.Signature(parameters)

    @classmethod
    def default(cls, name: str) -> Any:
        """The default of field ``name`` (``KeyError`` for a field that has none)."""
        info = cls.model_fields[name]
        if info.is_required():
            raise KeyError(f"{name} has no default")
        return info.get_default(call_default_factory=True)

    # ------------------------------------------------------------------ checks

    @field_validator("root", mode="before")
    @classmethod
    def _paths(cls, value: Any) -> Any:
        """Path objects as text (what a flow's JSON parameters carry)."""
        if isinstance(value, os.PathLike):
            return os.fspath(value)
        if isinstance(value, Mapping):
            return {k: os.fspath(v) if isinstance(v, os.PathLike) else v for k, v in value.items()}
        return value

    @field_validator("recipe")
    @classmethod
    def _recipe(cls, value: Any) -> Any:
        from mer_prep.recipes import Recipe
        from mer_prep.recipes.long_video import LongVideoRecipe

        if not isinstance(value, (str, Recipe, LongVideoRecipe)):
            raise InvalidArgumentError(f"recipe: a recipe name or YAML path, got {value!r}")
        return value

    @field_validator("store", mode="before")
    @classmethod
    def _store(cls, value: Any) -> Any:
        if value is not None and not isinstance(value, str):
            from mer_prep.store.repo import StoreLocation  # Icechunk: only when one is given

            value = value.url if isinstance(value, StoreLocation) else os.fspath(value)
        if value is not None:
            fields = [
                f
                for _, f, spec, conv in string.Formatter().parse(value)
                if f is not None and (f not in ("dataset", "recipe") or spec or conv)
            ]
            if fields:
                raise InvalidArgumentError(
                    f"store template {value!r} may only use {{dataset}} and {{recipe}}"
                )
        return value

    @field_validator("options", mode="before")
    @classmethod
    def _options(cls, value: Any) -> Any:
        return {} if value is None else value

    @model_validator(mode="after")
    def _one_cluster(self) -> PreprocessRequest:
        if self.dask_address is not None and self.cluster is not None:
            raise ValueError("give dask_address or cluster, not both")
        return self

    @model_validator(mode="after")
    def _names(self) -> PreprocessRequest:
        """Dataset, recipe, label scheme and adapter options, in that order (what a user most
        often mistypes first); raises the checks' own errors."""
        from mer_prep.datasets.long_video import LONG_VIDEO_ADAPTERS
        from mer_prep.datasets.options import check_dataset, check_options
        from mer_prep.labels import get_scheme

        if self.dataset in LONG_VIDEO_ADAPTERS and not self.is_long_video:
            from mer_prep.recipes.long_video import builtin_long_video_recipes

            raise InvalidArgumentError(
                f"{self.dataset} is a long-video dataset: give a long-video recipe "
                f"({', '.join(sorted(builtin_long_video_recipes()))} or a YAML file of kind "
                f"long_video), not {self.recipe_label!r}"
            )
        if self.is_long_video:  # a long-video dataset; its adapter checks its own options
            if self.dataset not in LONG_VIDEO_ADAPTERS:
                raise UnknownDatasetError(
                    f"long-video recipe {self.recipe_label!r} needs a long-video dataset "
                    f"({', '.join(LONG_VIDEO_ADAPTERS)}), got {self.dataset!r}"
                )
            get_scheme(self.labels)
            return self
        check_dataset(self.dataset)
        if isinstance(self.recipe, str) and not _is_yaml(self.recipe):
            from mer_prep.recipes import load_recipe

            load_recipe(self.recipe)  # a YAML file is read by check_inputs, not here
        get_scheme(self.labels)
        check_options(self.dataset, self.options)
        return self

    def check_inputs(self) -> Recipe:
        """What needs the file system, checked before a run starts: the roots exist (one per
        part of a composite), the annotation files a scan reads are there, and the recipe
        loads. Returns the loaded recipe."""
        from mer_prep.datasets.options import check_annotations, check_roots

        recipe = self.recipe_model()
        check_roots(self.dataset, self.root)
        if not self.is_long_video:  # a long-video scan names a missing sheet itself
            check_annotations(self.dataset, self.root, self.options)
        return recipe

    # ------------------------------------------------------------------ derived values

    @property
    def is_long_video(self) -> bool:
        """Whether the recipe is a long-video one (``kind: long_video``): the run then writes a
        long-video store (``mer_prep.pipeline.long_sequence``)."""
        from mer_prep.recipes.long_video import LongVideoRecipe, is_long_video_recipe

        if isinstance(self.recipe, str):
            return is_long_video_recipe(self.recipe)
        return isinstance(self.recipe, LongVideoRecipe)

    def recipe_model(self) -> Recipe:
        """The recipe itself (a name or a YAML path loaded; a ``LongVideoRecipe`` for a
        long-video one)."""
        from mer_prep.recipes import load_recipe

        if self.is_long_video:
            from mer_prep.recipes.long_video import load_long_video_recipe

            return load_long_video_recipe(self.recipe)  # type: ignore[return-value]
        return load_recipe(self.recipe) if isinstance(self.recipe, str) else self.recipe

    @property
    def recipe_label(self) -> str:
        """The recipe as a run is named by it: a name, or a YAML file's stem."""
        if not isinstance(self.recipe, str):
            return self.recipe.name
        return Path(self.recipe).stem if _is_yaml(self.recipe) else self.recipe

    def store_location(self, recipe_name: str) -> str:
        """The store this run writes, as text: the template with ``{dataset}`` and
        ``{recipe}`` (the loaded recipe's name) filled in."""
        return (self.store or DEFAULT_STORE).format(dataset=self.dataset, recipe=recipe_name)

    def parameters(self) -> dict[str, Any]:
        """The fields as a flow's (JSON) parameters."""
        if not isinstance(self.recipe, str):
            raise InvalidArgumentError(
                f"recipe {self.recipe.name!r} was made in code: a flow "
                f"run needs a recipe name or a YAML path"
            )
        return self.model_dump()


#: a flow parameter's type where it is not the field's (``flow_signature``)
_FLOW_TYPES: dict[str, Any] = {"recipe": str, "options": dict[str, Any] | None}


def _is_yaml(value: Any) -> bool:
    return isinstance(value, str) and value.endswith((".yaml", ".yml"))


def _one_error(error: ValidationError) -> MerPrepError:
    """The first problem of a validation: the check's own ``MerPrepError`` where one raised,
    else ``InvalidArgumentError`` naming the field."""
    first = error.errors()[0]
    cause = (first.get("ctx") or {}).get("error")
    if isinstance(cause, MerPrepError):
        return cause
    place = ".".join(str(p) for p in first["loc"])
    message = first["msg"].removeprefix("Value error, ")
    value = first.get("input")
    shown = "" if isinstance(value, Mapping) else f" (got {value!r})"
    return InvalidArgumentError(f"{place}: {message}{shown}" if place else message)
