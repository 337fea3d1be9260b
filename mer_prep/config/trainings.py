"""Training entries of the project configuration: ``[trainings.<name>]``, one deployment
``train/<dataset>-<model>`` each.

    [trainings.casme2-ha3dnet]
    dataset = "casme2"          # a configured dataset
    recipe = "ha3d"             # one of the dataset's recipes (default: its first)
    model = "ha3dnet"           # `mer-prep models`
    variant = "plain"           # default: the model's
    split = "loso"              # loso, megc2019 or a split stored on each version
    device = "cuda"             # cpu | cuda: a CUDA run's fold tasks need a Dask worker with GPU=1
    n_workers = 2               # local Dask workers (when no dask_address); at most this many
    cron = "0 6 * * *"          # optional schedule; runs on the store's latest version
    on_commit = true            # train every new version a preprocessing run commits (default)

Optional: ``name`` (the deployment's name when two trainings share dataset and model),
``dask_address`` (default: the dataset's), ``resources`` (Dask resources each fold task needs;
default ``{GPU = 1}`` on CUDA, none on CPU), ``seed``, ``epochs``, ``batch_size``, ``lr``,
``selection``, ``config`` (model config overrides, as ``mer-prep train --set``),
``folds_per_task`` (folds per Dask task: more than 1 for light models), ``keep_checkpoints``,
``timezone``, ``paused``, ``enabled``.

Checked on load: the dataset is configured, the recipe is one of its recipes, the device, the
cron expression and, where PyTorch is installed, the model and variant. A served training run
may only use the values its entry configures (``policy.check_train``).

A training whose ``model`` is a learned spotter (``softnet``, ``mtsn``) on a long-video dataset
takes ``preset`` and ``tune_on_test`` too and runs the ``spot`` flow instead
(``mer_prep.config.spot_trainings``).
"""

from __future__ import annotations

import importlib.util

from pydantic import Field, field_validator, model_validator

from mer_prep.errors import MerPrepError
from mer_prep.train.request import TrainRequest, TrainSettings

GPU_RESOURCE = "GPU"


def check_cron(value: str | None) -> str | None:
    """``value`` unless it is not a cron expression (``ValueError``)."""
    if value is not None:
        import datetime as dt

        from cronsim import CronSim, CronSimError

        try:
            CronSim(value, dt.datetime(2000, 1, 1))
        except CronSimError as error:
            raise ValueError(f"not a cron expression: {value!r} ({error})") from None
    return value


class TrainingConfig(TrainSettings):
    """One ``[trainings.<name>]`` table: the run's :class:`TrainSettings` (same keys, defaults
    and checks as ``mer-prep train`` and the flow; ``model`` required here) and the
    deployment's own keys."""

    model: str
    dataset: str
    recipe: str | None = None
    name: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    n_workers: int | None = Field(None, ge=1)
    dask_address: str | None = None
    cluster: str | None = None  # a [clusters.<name>] the run creates (default: the dataset's)
    cron: str | None = None
    timezone: str | None = None
    paused: bool = False
    enabled: bool = True
    on_commit: bool = True
    #: a learned spotter's (``spot_trainings``): its preset (None: the method's own) and
    #: whether its values are chosen on the test subject (LEAKY)
    preset: str | None = None
    tune_on_test: bool = False

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        return check_cron(value)

    @model_validator(mode="after")
    def _model_and_variant(self) -> TrainingConfig:
        """The model and variant exist (checked where PyTorch is installed; the run checks
        them again on its worker either way). A spotter is checked by ``spot_trainings``."""
        from mer_prep.spotting.methods import ALL_METHODS

        if self.model in ALL_METHODS or importlib.util.find_spec("torch") is None:
            return self
        from mer_prep.models import get_model

        try:
            spec = get_model(self.model)
        except MerPrepError as error:
            raise ValueError(str(error)) from None
        if self.variant is not None and self.variant not in spec.variants:
            raise ValueError(
                f"model {spec.name} has no variant {self.variant!r}; valid: "
                f"{', '.join(spec.variants)}"
            )
        return self

    def deployment_name(self) -> str:
        return self.name or f"{self.dataset}-{self.model}"


def task_resources(
    resources: dict[str, float] | None, device: str | None
) -> dict[str, float] | None:
    """Dask resources each fold task of a run asks for: ``resources`` as given, else one GPU
    on a CUDA device and none on CPU (``{}``: none)."""
    if resources is not None:
        return dict(resources) or None
    return {GPU_RESOURCE: 1} if str(device).startswith("cuda") else None


def check_trainings(trainings: dict[str, TrainingConfig], datasets: dict) -> None:
    """Raise ``ValueError`` (reported with its place) for a training of an unknown dataset, or
    two trainings that would register the same deployment."""
    seen: dict[str, str] = {}
    for key, training in trainings.items():
        if training.dataset not in datasets:
            raise ValueError(
                f"trainings.{key}.dataset: {training.dataset!r} is not a configured "
                f"dataset (configured: {', '.join(datasets)})"
            )
        name = training.deployment_name()
        if name in seen:
            raise ValueError(
                f"trainings.{key}: deployment train/{name} is also trainings."
                f'{seen[name]}\'s; give one of them `name = "..."`'
            )
        seen[name] = key


def train_request(
    training: TrainingConfig,
    store: str,
    n_workers: int,
    dask_address: str | None,
    cluster: dict | None = None,
) -> TrainRequest:
    """The default run of a training deployment: its settings on ``store`` (``version`` None:
    the store's latest; a trigger passes the version a preprocessing run committed)."""
    settings = training.settings().model_dump()
    return TrainRequest.of(
        **{**settings, "config": dict(training.config or {})},
        dataset=training.dataset,
        store=store,
        n_workers=n_workers,
        dask_address=dask_address,
        cluster=cluster,
    )


def training_problem(training: TrainingConfig, recipe, n_classes: int) -> str | None:
    """Why every run of ``training`` would fail on a store of ``recipe`` (a ``Recipe``), as
    ``mer-prep train --set`` would say it, or None: its ``config`` does not validate for the
    model and variant, the recipe's arrays do not fit the model so configured, or the model
    cannot be built for them (built on PyTorch's ``meta`` device: nothing is allocated).
    None without PyTorch (the run checks on its worker either way)."""
    if importlib.util.find_spec("torch") is None:
        return None
    import torch
    from pydantic import ValidationError

    from mer_prep.models import check_inputs, get_model

    try:
        spec = get_model(training.model)
        variant = training.variant or spec.default_variant
        config = spec.config(dict(training.config or {}), variant=variant)
    except ValidationError as error:
        return "config: " + "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'config'}: {e['msg']}" for e in error.errors()
        )
    except (MerPrepError, TypeError) as error:
        return f"config: {error}"
    arrays = {name: (tuple(a.dims), tuple(a.shape)) for name, a in recipe.array_specs().items()}
    try:
        check_inputs(spec, recipe.name, arrays, config)
        if spec.unit(config) == "clip":  # frames-as-samples models are sized per frame
            shapes = {need.name: arrays[need.name][1] for need in spec.required_inputs(config)}
            with torch.device("meta"):
                spec.build(config, max(int(n_classes), 2), shapes)
    except MerPrepError as error:
        return str(error)
    except (ValueError, RuntimeError, TypeError) as error:
        return f"model {spec.name} cannot be built for recipe {recipe.name}'s arrays: {error}"
    return None
