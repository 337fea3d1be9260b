"""What a deployment run may do: the configured values and allow-lists of one dataset, and a
check per flow of a run's parameters against them (``Config.check_run``)."""

from __future__ import annotations

import os
import re
import string
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from mer_prep.config.spot_trainings import SpotRule
from mer_prep.errors import ConfigError, MerPrepError
from mer_prep.pipeline.request import DEFAULT_STORE, PreprocessRequest
from mer_prep.store.repo import StoreLocation
from mer_prep.train.request import TrainRequest, TrainSettings, describe


@dataclass(frozen=True)
class TrainingRule:
    """A configured training: its deployment ``name``, the recipe name of its store, its
    default run (``request``: the settings a run must keep, and the store, workers and Dask
    address it defaults to) and the Dask schedulers its runs may use (None: a local cluster)."""

    name: str
    recipe: str
    request: TrainRequest
    dask_addresses: tuple[str | None, ...]


@dataclass(frozen=True)
class RunPolicy:
    """What a deployment run of one configured dataset may use: the configured values (paths
    absolute) and the allow-lists. Each ``check_*`` returns the value as the run will use it or
    raises ``ConfigError`` naming the parameter and the configuration file. A flow's entry in
    ``RUN_RULES`` applies them to its parameters; a training flow's entry reuses them (store,
    dask_address, ...) for its own."""

    path: Path
    dataset: str
    root: str | dict[str, str]
    recipes: tuple[str, ...]
    store: str  # the configured template ({dataset}, {recipe}), absolute
    store_roots: tuple[str, ...]  # store location URLs a run may write inside
    labels: str
    options: dict[str, str]
    n_workers: int
    dask_addresses: tuple[str | None, ...]  # None: a local cluster
    trainings: tuple[TrainingRule, ...] = ()  # the dataset's configured trainings
    cluster: dict[str, Any] | None = None  # the [clusters.*] spec a run creates (JSON form)
    spottings: tuple[SpotRule, ...] = ()  # spot/<dataset> and the trainings of spotters

    def check_cluster(self, value: Any) -> dict[str, Any] | None:
        """A run creates exactly the configured cluster (its whole spec), or none if none is."""
        if not _same(value, self.cluster):
            name = "none" if self.cluster is None else f"{self.cluster!r}"
            raise self.refuse("cluster", value, f"{name} (cluster, [clusters.*])")
        return value

    def refuse(self, name: str, value: Any, allowed: str) -> ConfigError:
        return ConfigError(
            f"{self.path}: run parameter {name}={shown(value)} is not allowed "
            f"for datasets.{self.dataset} (allowed: {allowed}); a deployment run "
            f"may only use what this file configures"
        )

    def check_dask_address(self, value: Any) -> str | None:
        if value not in self.dask_addresses or not isinstance(value, (str, type(None))):
            raise self.refuse(
                "dask_address",
                value,
                ", ".join("a local cluster" if a is None else repr(a) for a in self.dask_addresses)
                + " (dask_address, dask_addresses)",
            )
        return value

    def check_root(self, value: Any) -> str | dict[str, str]:
        if isinstance(self.root, str):
            ok = _is_path(value) and _norm(value) == _norm(self.root)
        else:
            ok = (
                isinstance(value, Mapping)
                and set(value) == set(self.root)
                and all(_is_path(v) and _norm(v) == _norm(self.root[k]) for k, v in value.items())
            )
        if not ok:
            raise self.refuse("root", value, f"{self.root!r} (root)")
        return value

    def check_recipe(self, value: Any) -> str:
        """The recipe's name (what a store template's ``{recipe}`` becomes)."""
        allowed = {(_norm(r) if _is_yaml(r) else r): r for r in self.recipes}
        key = (_norm(value) if _is_yaml(value) else value) if isinstance(value, str) else None
        if key not in allowed:
            raise self.refuse(
                "recipe", value, f"{', '.join(self.recipes)} (recipe, recipes, allowed_recipes)"
            )
        from mer_prep.recipes.long_video import load_any_recipe

        return load_any_recipe(allowed[key]).name

    def check_store(self, value: Any, recipe: str) -> StoreLocation:
        """The location a run writes to, computed as the flow does (``None``: its default
        ``stores/{dataset}/{recipe}`` under the working directory): the configured store, or
        inside one of ``store_roots``."""
        template = DEFAULT_STORE if value is None else value
        allowed = (
            f"{self.store!r}"
            + "".join(f", inside {r}" for r in self.store_roots)
            + " (store, store_roots)"
        )
        try:  # only plain {dataset} / {recipe}: no attributes, indexes or format specs
            fields = list(string.Formatter().parse(template)) if isinstance(template, str) else None
            if fields is None or any(
                f is not None and (f not in ("dataset", "recipe") or spec or conv)
                for _, f, spec, conv in fields
            ):
                raise ValueError("a store template may only use {dataset} and {recipe}")
            location = StoreLocation.parse(template.format(dataset=self.dataset, recipe=recipe))
        except (ValueError, MerPrepError):
            raise self.refuse("store", value, allowed) from None
        configured = StoreLocation.parse(self.store.format(dataset=self.dataset, recipe=recipe))
        if location != configured and not any(
            _inside(location.url, r) and _inside_resolved(location, r) for r in self.store_roots
        ):
            raise self.refuse("store", value, allowed)
        return location

    def check_labels(self, value: Any) -> str:
        if value != self.labels or not isinstance(value, str):
            raise self.refuse("labels", value, f"{self.labels!r} (labels)")
        return value

    def check_options(self, value: Any) -> dict[str, str]:
        if not (value is None or isinstance(value, Mapping)) or dict(value or {}) != self.options:
            raise self.refuse("options", value, f"{self.options!r} (options)")
        return dict(value or {})

    def check_workers(self, value: Any) -> int:
        if type(value) is not int or not 1 <= value <= self.n_workers:
            raise self.refuse("n_workers", value, f"1 to {self.n_workers} (n_workers)")
        return value

    def check_flag(self, name: str, value: Any) -> bool:
        if not isinstance(value, bool):
            raise self.refuse(name, value, "true or false")
        return value


#: the ``PreprocessRequest`` fields ``_check_preprocess`` checks (``dataset``: ``Config.run_policy``
#: does). Spelt here on purpose: a field the request gains is refused in every served run until
#: it is checked here (fails closed); tests/test_security.py runs every field's bad values.
PREPROCESS_CHECKED = (
    "dataset",
    "dask_address",
    "cluster",
    "root",
    "recipe",
    "store",
    "labels",
    "options",
    "n_workers",
    "progress",
)


def _check_preprocess(policy: RunPolicy, parameters: Mapping[str, Any]) -> None:
    """``flows.preprocess.preprocess``: every field of the run's ``PreprocessRequest`` against
    the configured request's value (a field left out: the request's default). Checked on the
    raw values, before a request is built: building one would read a recipe YAML it names."""

    def get(name: str) -> Any:
        return parameters.get(name, PreprocessRequest.default(name))

    policy.check_dask_address(get("dask_address"))
    policy.check_cluster(get("cluster"))
    policy.check_root(parameters.get("root"))
    recipe = policy.check_recipe(get("recipe"))
    policy.check_store(get("store"), recipe)
    policy.check_labels(get("labels"))
    policy.check_options(parameters.get("options"))
    policy.check_workers(get("n_workers"))
    policy.check_flag("progress", get("progress"))


VERSION_TAG = re.compile(r"v-[0-9a-f]{6,64}")
VERSION_ALLOWED = "a version tag v-<hex>, or none for the latest"


def _one_allows(rules: Sequence[Any], check: Callable[[Any], None]) -> None:
    """Passes when ``check`` passes for one of ``rules`` (the configured trainings or spottings
    a run could be); otherwise raises the first rule's refusal."""
    refusals = []
    for rule in rules:
        try:
            return check(rule)
        except ConfigError as refused:
            refusals.append(refused)
    raise refusals[0]


def _check_train(policy: RunPolicy, parameters: Mapping[str, Any]) -> None:
    """``flows.train.train``: the settings (``TrainSettings``) of one of the dataset's
    configured trainings; of the run's choices (``TrainRequest.RUN_CHOICES``), ``version`` a
    version tag or None for the latest, ``n_workers`` 1 to the configured number,
    ``dask_address`` the training's or an allow-listed one and ``store`` the training's store
    or one inside ``store_roots``. A parameter left out is the request's default."""
    model = parameters.get("model", TrainSettings.model_fields["model"].default)
    rules = [rule for rule in policy.trainings if rule.request.model == model]
    if not rules:
        models = ", ".join(sorted({rule.request.model for rule in policy.trainings}))
        raise policy.refuse(
            "model",
            model,
            f"{models or 'none: no training of it is configured'} ([trainings.*] model)",
        )
    _one_allows(rules, lambda rule: _check_training(policy, rule, parameters))


def _asked_request(
    policy: RunPolicy, rule: TrainingRule, parameters: Mapping[str, Any]
) -> TrainRequest:
    """The request a run's parameters make, or the refusal of the first bad one."""
    if parameters.get("store") is None:
        raise policy.refuse("store", None, f"{rule.request.store!r} (store, store_roots)")
    try:
        return TrainRequest.model_validate(dict(parameters))
    except ValidationError as error:
        first = error.errors()[0]
        name = str(first["loc"][0]) if first["loc"] else "parameters"
        allowed = (
            f"{getattr(rule.request, name)!r} (trainings: train/{rule.name})"
            if name in TrainSettings.model_fields
            else VERSION_ALLOWED
            if name == "version"
            else describe(first)
        )
        raise policy.refuse(name, parameters.get(name), allowed) from None


def _check_training(policy: RunPolicy, rule: TrainingRule, parameters: Mapping[str, Any]) -> None:
    from mer_prep.config.trainings import task_resources

    asked, configured = _asked_request(policy, rule, parameters), rule.request
    for name in TrainSettings.model_fields:
        value, wanted = getattr(asked, name), getattr(configured, name)
        if name == "config":
            value, wanted = value or {}, wanted or {}
        elif name == "resources":
            value = task_resources(value, asked.device)
            wanted = task_resources(wanted, configured.device)
        if not _same(value, wanted):
            raise policy.refuse(name, value, f"{wanted!r} (trainings: train/{rule.name})")
    if asked.version is not None and not VERSION_TAG.fullmatch(asked.version):
        raise policy.refuse("version", asked.version, VERSION_ALLOWED)
    policy.check_store(asked.store, rule.recipe)
    replace(
        policy, n_workers=configured.n_workers, dask_addresses=rule.dask_addresses
    ).check_workers(asked.n_workers)
    replace(policy, dask_addresses=rule.dask_addresses).check_dask_address(asked.dask_address)
    replace(policy, cluster=configured.cluster).check_cluster(asked.cluster)


def _same(value: Any, wanted: Any) -> bool:
    """Equal and of the same JSON kind (True is not 1, "2" is not 2)."""
    if isinstance(wanted, Mapping):
        return (
            isinstance(value, Mapping)
            and set(value) == set(wanted)
            and all(_same(value[k], wanted[k]) for k in wanted)
        )
    if isinstance(wanted, (list, tuple)):
        return (
            isinstance(value, (list, tuple))
            and len(value) == len(wanted)
            and all(_same(v, w) for v, w in zip(value, wanted, strict=True))
        )
    if isinstance(wanted, bool) or isinstance(value, bool):
        return value is wanted
    if isinstance(wanted, (int, float)) and isinstance(value, (int, float)):
        return value == wanted
    return type(value) is type(wanted) and value == wanted


#: the parameters of ``flows.spot.spot`` (``_check_spot`` checks each)
SPOT_PARAMETERS = (
    "dataset",
    "store",
    "method",
    "split",
    "tune_on_test",
    "seed",
    "preset",
    "version",
)


def _check_spot(policy: RunPolicy, parameters: Mapping[str, Any]) -> None:
    """``flows.spot.spot``: ``store`` the store of one of the dataset's recipes (or one inside
    ``store_roots``), ``split`` loso, and ``method``, ``seed``, ``preset`` and ``tune_on_test``
    those of one configured spotting of the dataset (``policy.spottings``: ``spot/<dataset>``
    or a ``[trainings.*]`` of a learned spotter). A parameter left out is the flow's default."""
    store = parameters.get("store")
    if store is None:
        raise policy.refuse("store", store, "the store of one of the dataset's recipes (store)")
    refusals = []
    for recipe in policy.recipes:
        try:
            policy.check_store(store, policy.check_recipe(recipe))
            break
        except ConfigError as error:
            refusals.append(error)
    else:
        raise refusals[0]
    if parameters.get("split", "loso") != "loso":
        raise policy.refuse("split", parameters.get("split"), "loso")
    version = parameters.get("version")
    if version is not None and not (isinstance(version, str) and VERSION_TAG.fullmatch(version)):
        raise policy.refuse("version", version, VERSION_ALLOWED)
    method = parameters.get("method", "mdmd")
    rules = [rule for rule in policy.spottings if _same(method, rule.method)]
    if not rules:
        methods = ", ".join(dict.fromkeys(rule.method for rule in policy.spottings))
        raise policy.refuse(
            "method",
            method,
            f"{methods or 'none: no spotting of it is configured'} "
            f"(spot_method, [trainings.*] model)",
        )
    _one_allows(rules, lambda rule: _check_spotting(policy, rule, parameters))


def _check_spotting(policy: RunPolicy, rule: SpotRule, parameters: Mapping[str, Any]) -> None:
    """A run of ``rule``'s method keeps its preset and tune_on_test and uses one of its seeds."""
    where = f"({rule.deployment})"
    preset = parameters.get("preset")
    if not _same(preset, rule.preset):
        raise policy.refuse("preset", preset, f"{rule.preset!r} {where}")
    seed = parameters.get("seed", 0)
    if type(seed) is not int or seed not in rule.seeds:
        seeds = ", ".join(str(s) for s in rule.seeds)
        raise policy.refuse("seed", seed, f"{seeds} {where}")
    tune_on_test = policy.check_flag("tune_on_test", parameters.get("tune_on_test", False))
    if tune_on_test is not rule.tune_on_test:
        raise policy.refuse("tune_on_test", tune_on_test, f"{rule.tune_on_test} {where}")


#: flow name -> (its parameters, the check of a run's parameters). A parameter a flow gains
#: must be added here, or every deployment run of the flow is refused (fails closed).
RUN_RULES: dict[str, tuple[tuple[str, ...], Callable[[RunPolicy, Mapping[str, Any]], None]]] = {
    "preprocess": (PREPROCESS_CHECKED, _check_preprocess),
    "train": (tuple(TrainRequest.model_fields), _check_train),
    "spot": (SPOT_PARAMETERS, _check_spot),
}


def shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


def _is_path(value: Any) -> bool:
    return isinstance(value, (str, os.PathLike)) and bool(os.fspath(value))


def _is_yaml(value: Any) -> bool:
    return isinstance(value, str) and value.endswith((".yaml", ".yml"))


def _norm(value: str | os.PathLike) -> str:
    """A path as a run would use it: ``~`` expanded, absolute, ``..`` folded (links not
    followed: nothing is read)."""
    return os.path.normpath(os.path.abspath(os.path.expanduser(os.fspath(value))))


def _inside(url: str, root: str) -> bool:
    """``url`` strictly inside the store location ``root`` (no ``.``/``..`` parts in S3 keys)."""
    prefix = root if root.endswith("/") else root + "/"
    rest = url[len(prefix) :] if url.startswith(prefix) else ""
    return bool(rest) and not ({".", "..", ""} & set(rest.split("/")))


def _inside_resolved(location: StoreLocation, root: str) -> bool:
    """A local ``location`` still inside ``root`` once symbolic links of both are followed (a
    link inside a root may point anywhere; the store is written where it points). S3 keys have
    no links."""
    if location.is_remote:
        return True
    return _inside(os.path.realpath(location.url), os.path.realpath(root))
