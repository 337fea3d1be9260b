"""The project configuration (``mer-prep.toml``): what each ``preprocess/<dataset>`` and
``train/<dataset>-<model>`` deployment runs (trainings: ``mer_prep.config.trainings``).

Found at ``--config PATH``, else ``$MER_PREP_CONFIG``, else ``./mer-prep.toml``. Relative roots
and stores are relative to the file's directory. ``[defaults]`` fills every key a dataset leaves
out; each ``[datasets.<name>]`` (one of ``DATASETS``) becomes one deployment::

    [defaults]
    recipe = "ha3d"
    labels = "native"
    store = "stores/{dataset}/{recipe}"   # {dataset} and {recipe} are filled in per run
    n_workers = 2

    [datasets.casme2]
    root = "/data/CASME2"
    labels = "megc3"
    cron = "0 3 * * *"                    # the refresh schedule (omit: run on demand only)

    [datasets.megc2019]
    root = { smic = "/data/SMIC", casme2 = "/data/CASME2", samm = "/data/SAMM" }
    # the first recipe: preprocess/megc2019; the others: preprocess/megc2019-<recipe>
    recipes = ["mbcc64", "ha3d"]

The file is also the authority over what a deployment run may do (``Config.check_run``): anyone
who can reach the Prefect API can start a run with any parameters, so a served run uses only the
configured Dask address, roots, recipes, labels, options and store, at most the configured
``n_workers``, plus what these allow-lists (in ``[defaults]`` or per dataset) add::

    dask_addresses = ["tls://dask-2:8786"]   # other schedulers a run may connect to
    store_roots = ["scratch", "s3://bucket/stores"]   # a run may write any store inside these
    allowed_recipes = ["broadbent64"]        # recipes a run may ask for beyond the dataset's own
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mer_prep.config.clusters import ClusterSpec, cluster_json
from mer_prep.config.deployment import Deployment, SpotTrainingDeployment, TrainingDeployment
from mer_prep.config.policy import RUN_RULES, RunPolicy, TrainingRule, shown
from mer_prep.config.spot_trainings import (
    SpotRule,
    check_spot_trainings,
    is_spotter,
    spot_rule,
)
from mer_prep.config.trainings import TrainingConfig, check_cron, check_trainings, train_request
from mer_prep.datasets import dataset_names
from mer_prep.datasets.options import check_options, check_roots
from mer_prep.errors import ConfigError, MerPrepError
from mer_prep.pipeline.request import PreprocessRequest
from mer_prep.store.layout import DEFAULT_STORE_TEMPLATE
from mer_prep.store.repo import StoreLocation


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    recipe: str | None = None
    recipes: list[str] | None = None
    labels: str | None = None
    store: str | None = Field(None, description="store path template: {dataset}, {recipe}")
    cron: str | None = None
    timezone: str | None = None
    n_workers: int | None = Field(None, ge=1)
    dask_address: str | None = None
    cluster: str | None = None  # a [clusters.<name>] the run creates (mer_prep.config.clusters)
    options: dict[str, str] | None = None
    paused: bool | None = None
    # allow-lists of what a deployment run may use beyond the configured values (check_run)
    dask_addresses: list[str] | None = None
    store_roots: list[str] | None = None
    allowed_recipes: list[str] | None = None
    #: the spotter of a long-video dataset's ``spot/<dataset>`` deployment
    spot_method: str | None = None

    @field_validator("spot_method")
    @classmethod
    def _spot_method(cls, value: str | None) -> str | None:
        from mer_prep.spotting.methods import ALL_METHODS

        if value is not None and value not in ALL_METHODS:
            raise ValueError(f"unknown spotting method {value!r}; known: {', '.join(ALL_METHODS)}")
        return value

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        return check_cron(value)

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: str | None) -> str | None:
        if value is not None:
            from mer_prep.labels import schemes

            if value not in schemes():
                raise ValueError(f"unknown label scheme {value!r}; known: {', '.join(schemes())}")
        return value

    @field_validator("recipe")
    @classmethod
    def _recipe(cls, value: str | None) -> str | None:
        if value is not None and not value.endswith((".yaml", ".yml")):
            from mer_prep.recipes.long_video import load_any_recipe

            try:
                load_any_recipe(value)
            except MerPrepError as error:  # pydantic reports ValueErrors with their place
                raise ValueError(str(error)) from None
        return value

    @field_validator("recipes", "allowed_recipes")
    @classmethod
    def _recipes(cls, value: list[str] | None) -> list[str] | None:
        for recipe in value or ():
            cls._recipe(recipe)
        return value

    @field_validator("store_roots")
    @classmethod
    def _store_roots(cls, value: list[str] | None) -> list[str] | None:
        for root in value or ():
            try:
                StoreLocation.parse(root)
            except MerPrepError as error:
                raise ValueError(str(error)) from None
        return value

    @field_validator("store")
    @classmethod
    def _store(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                value.format(dataset="d", recipe="r")
            except (KeyError, IndexError, ValueError) as error:
                raise ValueError(
                    f"store template {value!r} may only use {{dataset}} and {{recipe}} ({error!r})"
                ) from None
        return value


class DatasetConfig(_Settings):
    """One ``[datasets.<name>]`` table."""

    root: str | dict[str, str]
    enabled: bool = True


class Defaults(_Settings):
    """``[defaults]``: used where a dataset says nothing."""


class ProjectConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    defaults: Defaults = Defaults()
    datasets: dict[str, DatasetConfig]
    trainings: dict[str, TrainingConfig] = {}
    clusters: dict[str, ClusterSpec] = {}

    @model_validator(mode="after")
    def _cluster_names(self) -> ProjectConfig:
        """Every ``cluster`` names a ``[clusters.*]`` table, and no table sets it beside
        ``dask_address``."""
        tables: list[tuple[str, Any]] = [("defaults", self.defaults)]
        tables += [(f"datasets.{k}", v) for k, v in self.datasets.items()]
        tables += [(f"trainings.{k}", v) for k, v in self.trainings.items()]
        for place, table in tables:
            if table.cluster is not None and table.cluster not in self.clusters:
                raise ValueError(
                    f"{place}.cluster: {table.cluster!r} is not a [clusters.*] table "
                    f"(configured: {', '.join(self.clusters) or 'none'})"
                )
            if table.cluster is not None and table.dask_address is not None:
                raise ValueError(f"{place}: give dask_address or cluster, not both")
        return self

    @field_validator("datasets", mode="before")
    @classmethod
    def _known(cls, value: Any) -> Any:
        from mer_prep.datasets.long_video import LONG_VIDEO_ADAPTERS

        known = (*dataset_names(), *LONG_VIDEO_ADAPTERS)
        unknown = sorted(set(value) - set(known)) if isinstance(value, dict) else []
        if unknown:
            raise ValueError(f"unknown dataset(s) {unknown}; known: {', '.join(known)}")
        return value

    @model_validator(mode="after")
    def _adapter_options(self) -> ProjectConfig:
        from mer_prep.datasets.long_video import LONG_VIDEO_ADAPTERS

        for name, dataset in self.datasets.items():
            options = (
                dataset.options if dataset.options is not None else self.defaults.options or {}
            )
            if name in LONG_VIDEO_ADAPTERS:  # its scan checks its own options when it runs
                continue
            try:
                check_options(name, options)
            except MerPrepError as error:
                raise ValueError(f"datasets.{name}.options: {error}") from None
        check_trainings(self.trainings, self.datasets)
        check_spot_trainings(self.trainings)
        for key, training in self.trainings.items():
            ds, d = self.datasets[training.dataset], self.defaults
            recipes = [
                *(
                    ds.recipes
                    or ([ds.recipe] if ds.recipe else None)
                    or d.recipes
                    or [d.recipe or "ha3d"]
                ),
                *(
                    ds.allowed_recipes
                    if ds.allowed_recipes is not None
                    else d.allowed_recipes or []
                ),
            ]
            if training.recipe is not None and training.recipe not in recipes:
                raise ValueError(
                    f"trainings.{key}.recipe: {training.recipe!r} is not a recipe "
                    f"of datasets.{training.dataset} ({', '.join(recipes)})"
                )
        return self


class Config(BaseModel):
    """A loaded configuration: where it came from and its deployments."""

    path: Path
    project: ProjectConfig

    def problems(self) -> list[str]:
        """What would make a deployment fail at run time: a root that does not exist. (Names,
        options and recipes are checked when the file loads.)"""
        found = []
        for spec in self.deployments():
            try:
                check_roots(spec.dataset, spec.parameters["root"])
            except MerPrepError as error:
                found.append(f"{self.path}: datasets.{spec.dataset}: {error}")
        return found + self.training_problems()

    def training_problems(self) -> list[str]:
        """Trainings whose every run would fail: the model's config does not validate, or the
        model does not fit (or cannot be built for) the arrays of the recipe it trains on
        (``trainings.training_problem``), each with its place in the file."""
        from mer_prep.config.trainings import training_problem
        from mer_prep.labels import class_names
        from mer_prep.recipes import load_recipe

        found = []
        for key, training in self.project.trainings.items():
            ds = self.project.datasets[training.dataset]
            if not (training.enabled and ds.enabled) or is_spotter(training):
                continue  # a spotter's settings are checked on load (spot_trainings)
            recipe = load_recipe(
                _resolve_recipe(self.path.parent, training.recipe)
                if training.recipe
                else self._resolved(ds)[1][0]
            )
            try:
                n_classes = len(class_names(self._picker(ds)("labels", "native"), training.dataset))
            except MerPrepError:
                n_classes = 2
            problem = training_problem(training, recipe, n_classes)
            if problem:
                found.append(
                    f"{self.path}: trainings.{key} (model {training.model} on recipe "
                    f"{recipe.name}): {problem}"
                )
        return found

    def deployments(self) -> list[Deployment]:
        """One per enabled dataset and recipe, parameters filled from ``[defaults]``."""
        from mer_prep.recipes.long_video import load_any_recipe

        out = []
        for dataset, ds in self.project.datasets.items():
            if not ds.enabled:
                continue
            pick = self._picker(ds)
            for i, recipe in enumerate(self._resolved(ds)[1]):
                request = self.preprocess_request(dataset, recipe)
                name = dataset if i == 0 else f"{dataset}-{Path(recipe).stem}"
                label = load_any_recipe(recipe).name
                location = StoreLocation.parse(request.store_location(label))
                out.append(
                    Deployment(
                        name=name,
                        dataset=dataset,
                        parameters=request.parameters(),
                        store=location.url,
                        cron=pick("cron"),
                        timezone=pick("timezone"),
                        paused=pick("paused", False),
                    )
                )
        return out

    def spot_deployments(self) -> list[TrainingDeployment]:
        """One ``spot/<dataset>`` per enabled long-video dataset: spots its first recipe's
        store with the dataset's ``spot_method`` (default ``mdmd``) on every version a
        preprocessing run commits there (no schedule of its own)."""
        from mer_prep.datasets.long_video import LONG_VIDEO_ADAPTERS

        out = []
        for spec in self.deployments():
            if spec.dataset not in LONG_VIDEO_ADAPTERS or spec.name != spec.dataset:
                continue  # one per dataset: its first recipe's store
            rule = self._dataset_spot_rule(spec.dataset)
            out.append(
                TrainingDeployment(
                    name=spec.dataset,
                    dataset=spec.dataset,
                    parameters={
                        "dataset": spec.dataset,
                        "store": spec.store,
                        "method": rule.method,
                    },
                    cron=None,
                    timezone=None,
                    paused=spec.paused,
                    store=spec.store,
                    on_commit=True,
                    flow="spot",
                )
            )
        return out

    def spot_training_deployments(self) -> list[SpotTrainingDeployment]:
        """One ``train/<name>`` per enabled training of a learned spotter of an enabled
        long-video dataset (``spot_trainings``): the ``spot`` flow on the store of the
        dataset's first recipe (or the training's ``recipe``), once per seed, on every version
        committed there (``on_commit``) and on its cron."""
        out = []
        for training in self.project.trainings.values():
            ds = self.project.datasets[training.dataset]
            if not (training.enabled and ds.enabled and is_spotter(training)):
                continue
            store = self._recipe_stores(training.dataset)[
                _resolve_recipe(self.path.parent, training.recipe)
                if training.recipe
                else self._resolved(ds)[1][0]
            ]
            rule = spot_rule(training)
            out.append(
                SpotTrainingDeployment(
                    name=training.deployment_name(),
                    dataset=training.dataset,
                    parameters=rule.parameters(training.dataset, store),
                    cron=training.cron,
                    timezone=training.timezone or self._picker(ds)("timezone"),
                    paused=training.paused,
                    store=store,
                    on_commit=training.on_commit,
                    seeds=list(rule.seeds),
                )
            )
        return out

    def _recipe_stores(self, dataset: str) -> dict[str, str]:
        """Each recipe of a dataset (as ``_resolved`` spells it) -> its store's location URL,
        as its ``preprocess/`` deployment writes it."""
        return {
            spec.parameters["recipe"]: spec.store
            for spec in self.deployments()
            if spec.dataset == dataset
        }

    def _dataset_spot_rule(self, dataset: str) -> SpotRule:
        """What ``spot/<dataset>`` runs: the dataset's ``spot_method`` (default ``mdmd``) with
        the spot flow's defaults (seed 0, the method's own preset, tuned on training
        subjects)."""
        method = self._picker(self.project.datasets[dataset])("spot_method", "mdmd")
        return SpotRule(deployment=f"spot/{dataset}", method=method)

    def training_deployments(self) -> list[TrainingDeployment]:
        """One ``train/<name>`` per enabled training of a recognition model of an enabled
        dataset (a learned spotter's: ``spot_training_deployments``)."""
        out = []
        for training in self.project.trainings.values():
            ds = self.project.datasets[training.dataset]
            if not (training.enabled and ds.enabled) or is_spotter(training):
                continue
            rule = self._training_rule(training)
            out.append(
                TrainingDeployment(
                    name=training.deployment_name(),
                    dataset=training.dataset,
                    parameters=rule.request.parameters(),
                    cron=training.cron,
                    timezone=training.timezone or self._picker(ds)("timezone"),
                    paused=training.paused,
                    store=rule.request.store,
                    on_commit=training.on_commit,
                )
            )
        return out

    def _training_rule(self, training: TrainingConfig) -> TrainingRule:
        """A training's default run parameters and what its runs may use beyond them."""
        from mer_prep.recipes import load_recipe

        ds = self.project.datasets[training.dataset]
        pick = self._picker(ds)
        _, recipes, template = self._resolved(ds)
        recipe = (
            _resolve_recipe(self.path.parent, training.recipe) if training.recipe else recipes[0]
        )
        recipe_name = load_recipe(recipe).name
        store = StoreLocation.parse(
            template.format(dataset=training.dataset, recipe=recipe_name)
        ).url
        address, cluster = self._target(ds, training)
        request = train_request(
            training, store, training.n_workers or pick("n_workers", 2), address, cluster
        )
        return TrainingRule(
            name=training.deployment_name(),
            recipe=recipe_name,
            request=request,
            dask_addresses=tuple(dict.fromkeys([address, *pick("dask_addresses", [])])),
        )

    def preprocess_request(self, dataset: str, recipe: str | None = None) -> PreprocessRequest:
        """The run a ``preprocess/<dataset>`` deployment makes by default (``recipe``: one of
        the dataset's, default its first): each field the dataset's table sets, else
        ``[defaults]``', else the request's own default; root, recipe and store made absolute
        (``_resolved``). The TOML keys are the request's field names."""
        ds = self.project.datasets[dataset]
        pick = self._picker(ds)
        root, recipes, store = self._resolved(ds)
        configured = {
            name: pick(name)
            for name in PreprocessRequest.model_fields
            if name in _Settings.model_fields
            and name not in ("dask_address", "cluster")
            and pick(name) is not None
        }
        configured["dask_address"], configured["cluster"] = self._target(ds)
        return PreprocessRequest(
            **{
                **configured,
                "dataset": dataset,
                "root": root,
                "recipe": recipe or recipes[0],
                "store": store,
            }
        )

    def _target(
        self, ds: DatasetConfig, training: TrainingConfig | None = None
    ) -> tuple[str | None, dict[str, Any] | None]:
        """(dask_address, the cluster spec's JSON form) of a run: the first of the training's,
        the dataset's and ``[defaults]``' tables that sets either decides both (None, None: a
        local cluster)."""
        for table in (training, ds, self.project.defaults):
            if table is not None and (table.dask_address or table.cluster):
                spec = self.project.clusters[table.cluster] if table.cluster else None
                return table.dask_address, cluster_json(spec)
        return None, None

    def _picker(self, ds: DatasetConfig) -> Callable[..., Any]:
        """``pick(key, fallback)``: the dataset's value, else ``[defaults]``', else fallback."""
        d = self.project.defaults
        return lambda key, fallback=None: (
            getattr(ds, key)
            if getattr(ds, key) is not None
            else getattr(d, key)
            if getattr(d, key) is not None
            else fallback
        )

    def _resolved(self, ds: DatasetConfig) -> tuple[Any, list[str], str]:
        """(root(s), recipes, store template) of a dataset, paths made absolute."""
        base, d = self.path.parent, self.project.defaults
        recipes = (
            ds.recipes
            or ([ds.recipe] if ds.recipe else None)
            or d.recipes
            or [d.recipe or PreprocessRequest.default("recipe")]
        )
        root: Any = (
            _resolve(base, ds.root)
            if isinstance(ds.root, str)
            else {part: _resolve(base, p) for part, p in ds.root.items()}
        )
        store = str(
            StoreLocation.parse(self._picker(ds)("store", DEFAULT_STORE_TEMPLATE), base=base)
        )
        return root, [_resolve_recipe(base, recipe) for recipe in recipes], store

    def run_policy(self, dataset: Any) -> RunPolicy:
        """What a run of ``dataset`` may use; ``ConfigError`` unless it is configured, enabled."""
        ds = self.project.datasets.get(dataset) if isinstance(dataset, str) else None
        if ds is None or not ds.enabled:
            enabled = [name for name, d in self.project.datasets.items() if d.enabled]
            raise ConfigError(
                f"{self.path}: run parameter dataset={shown(dataset)} is not a "
                f"configured, enabled dataset (enabled: {', '.join(enabled)})"
            )
        base, pick = self.path.parent, self._picker(ds)
        _, recipes, store = self._resolved(ds)
        configured = self.preprocess_request(dataset)  # what a run is compared with
        extra = [_resolve_recipe(base, recipe) for recipe in pick("allowed_recipes", [])]
        return RunPolicy(
            path=self.path,
            dataset=dataset,
            root=configured.root,
            recipes=tuple(dict.fromkeys([*recipes, *extra])),
            store=store,
            store_roots=tuple(
                StoreLocation.parse(r, base=base).url for r in pick("store_roots", [])
            ),
            labels=configured.labels,
            options=dict(configured.options),
            n_workers=configured.n_workers,
            dask_addresses=tuple(
                dict.fromkeys([configured.dask_address, *pick("dask_addresses", [])])
            ),
            cluster=configured.cluster,
            trainings=tuple(
                self._training_rule(t)
                for t in self.project.trainings.values()
                if t.dataset == dataset and t.enabled and not is_spotter(t)
            ),
            spottings=self._spot_rules(dataset),
        )

    def _spot_rules(self, dataset: str) -> tuple[SpotRule, ...]:
        """The spottings a ``spot`` run of ``dataset`` may be: ``spot/<dataset>`` (a
        long-video dataset's) and its enabled trainings of learned spotters."""
        from mer_prep.datasets.long_video import LONG_VIDEO_ADAPTERS

        if dataset not in LONG_VIDEO_ADAPTERS:
            return ()
        return (
            self._dataset_spot_rule(dataset),
            *(
                spot_rule(t)
                for t in self.project.trainings.values()
                if t.dataset == dataset and t.enabled and is_spotter(t)
            ),
        )

    def check_run(self, parameters: Mapping[str, Any], *, flow: str = "preprocess") -> None:
        """Refuse (``ConfigError`` naming the parameter and this file) a run of ``flow`` whose
        parameters this configuration does not allow. Opens no connection and reads no file
        but a configured recipe YAML (for its name).

        Called by a served deployment run before it does anything (``flows.served
        .check_served_run``). A parameter left out is the flow's default, checked the same way.
        """
        if flow not in RUN_RULES:
            raise ConfigError(
                f"{self.path}: no run rules for flow {flow!r} (known: {', '.join(RUN_RULES)})"
            )
        names, check = RUN_RULES[flow]
        unknown = sorted(set(parameters) - set(names))
        if unknown:
            raise ConfigError(
                f"{self.path}: unknown run parameter(s) {', '.join(unknown)} of flow {flow}"
            )
        check(self.run_policy(parameters.get("dataset")), parameters)


def _resolve(base: Path, value: str) -> str:
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else (base / path).absolute())


def _resolve_recipe(base: Path, recipe: str) -> str:
    """A recipe YAML path relative to the file's directory made absolute; names as they are."""
    recipe_path = Path(recipe).expanduser()
    if recipe.endswith((".yaml", ".yml")) and not recipe_path.is_absolute():
        return str((base / recipe_path).resolve())
    return recipe
