"""A training run in this process: :func:`plan_run` checks and loads, :func:`train` runs the
one sequence (``train.sequence.run_training``) with :class:`InProcess` training the folds.

    record = train("stores/casme2/mbcc64", "mbcc", variant="difference", epochs=20)

    plan = plan_run(store, "mer3dcnn", config={"head": "gap"})   # checks + one bulk read
    results = [train_fold(fold, plan.spec, plan.config, plan.preset, plan.fold_seed(fold),
                          plan.device) for fold in plan.folds()]   # or fanned out (Dask)
    record = combine_folds(results, plan.header)
    save_run(plan.store, record)

Everything that can be refused is refused by :func:`plan_run`, in one line, before any array is
read: an unknown model, variant or config key; a store whose arrays do not fit the model
(``check_inputs``); a variant that needs augmented copies on a store without any (naming the
recipe that makes them); a SMOTE variant on a split stored without SMOTE (naming
``mer-prep split --smote``); an unknown split; CUDA asked for where there is none.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from mer_prep.store.reader import FeatureStore, open_store
from mer_prep.train.au_target import (
    AU_VALIDATION_METRIC,
    POS_WEIGHT_CAP,
    THRESHOLD,
    au_columns,
    check_au_variant,
)
from mer_prep.train.data import (
    FoldData,
    StoreData,
    build_fold,
    fold_seed,
    load_store_data,
)
from mer_prep.train.engine import DEFAULT_VALIDATION_METRIC, torch, train_fold
from mer_prep.train.errors import TrainSetupError
from mer_prep.train.preflight import (
    check_finite_inputs,
    check_settings,
    check_split_fits,
    check_trainable,
    portable_location,
)
from mer_prep.train.progress import FoldEvent, RunEvent, RunTracker
from mer_prep.train.records import (
    CLIP_AGGREGATION,
    TEST_ORACLE,
    FoldResult,
    RunHeader,
    RunRecord,
    new_run_id,
)
from mer_prep.train.request import TrainRequest
from mer_prep.train.sequence import FoldsDone, RunTicket, run_training
from mer_prep.version import code_version


@dataclasses.dataclass(frozen=True, eq=False)
class RunPlan:
    """A checked run: the store version, model, config, training preset (overrides applied),
    data read once and the variant's switches (``augmented``, ``smote``, ``class_weights``);
    ``header`` is what the record will say: the plan's variant, split, seed and device are the
    header's."""

    store: FeatureStore
    spec: Any
    config: BaseModel
    preset: Any
    data: StoreData
    header: RunHeader
    augmented: bool
    smote: bool
    class_weights: bool
    keep_checkpoints: bool = False
    variant: str = dataclasses.field(init=False)
    split: str = dataclasses.field(init=False)
    seed: int = dataclasses.field(init=False)
    device: str = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        for name in ("variant", "split", "seed", "device"):
            object.__setattr__(self, name, getattr(self.header, name))

    def with_labels(self, labels) -> RunPlan:
        """The same plan over other labels (a null experiment: labels shuffled in memory)."""
        return dataclasses.replace(self, data=self.data.with_labels(labels))

    def for_run(self, run_id: str, created: str) -> RunPlan:
        """This plan for another run of the same request on the same snapshot (a Dask worker's
        cached plan): the header names that run's id and creation time."""
        return dataclasses.replace(
            self, header=dataclasses.replace(self.header, run_id=run_id, created=created)
        )

    def fold_seed(self, fold: FoldData | int) -> int:
        return fold_seed(self.seed, fold if isinstance(fold, int) else fold.index)

    def folds(self) -> Iterator[FoldData]:
        """Each fold's data in memory, built when asked (one fold at a time)."""
        for index, (name, train, test, _) in enumerate(self.store.folds(self.split, tta=True)):
            yield self._build(index, name, train, test)

    def fold(self, index: int) -> FoldData:
        """Fold ``index`` alone (what a Dask task of one fold builds), equal to the
        ``index``-th of :meth:`folds`."""
        for i, (name, train, test, _) in enumerate(self.store.folds(self.split, tta=True)):
            if i == index:
                return self._build(index, name, train, test)
        raise TrainSetupError(
            f"split {self.split!r} has no fold {index} ({self.header.n_folds} folds)"
        )

    def _build(self, index: int, name: str, train, test) -> FoldData:
        validation = self.preset.selection == "validation"
        return build_fold(
            self.data,
            index,
            name,
            train,
            test,
            unit=self.header.unit,
            augmented=self.augmented,
            weighted=self.class_weights,
            validation=validation,
            seed=self.fold_seed(index),
            leaky=self.header.leaky,
            skip_onset=self.spec.frame_unit_skips_onset,
            smote=self.store.smote(self.split, index) if self.smote else None,
            smote_features=self._smote_features() if self.smote and validation else None,
        )

    def _smote_features(self):
        """The split's SMOTE features, (n, d), for a plan fitted again after the validation
        carve: the run's own copy when the model reads that array, else read from the store."""
        name = self.store.split_info(self.split).smote.features
        values = self.data.arrays.get(name)
        if values is None:
            values = self.store.array(name, cache=True)
        return values.reshape(len(values), -1).astype("float32", copy=False)

    def train_fold(
        self,
        fold: FoldData,
        *,
        report: Callable[[FoldEvent], None] | None = None,
        device: str | None = None,
    ) -> FoldResult:
        """Train one fold; ``device``: where this fold runs when not the plan's (a GPU of its
        own among a worker's, ``gpu_slots.claimed_device``)."""
        return train_fold(
            fold,
            self.spec,
            self.config,
            self.preset,
            self.fold_seed(fold),
            device or self.device,
            keep_checkpoint=self.keep_checkpoints,
            report=report,
        )


def _config(spec, variant: str, config) -> BaseModel:
    try:
        if isinstance(config, BaseModel):
            return spec.resolve(config)
        return spec.config(dict(config or {}), variant=variant)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'config'}: {e['msg']}" for e in error.errors()
        )
        raise TrainSetupError(f"model {spec.name} config: {problems}") from None
    except TypeError as error:
        raise TrainSetupError(f"model {spec.name} config: {error}") from None


def _overrides(spec, variant: str, resolved: BaseModel, training: Mapping[str, Any]) -> dict:
    """What a run changed from its variant's preset: the config keys whose resolved value
    differs from the variant's (whatever form the config came in) and the training settings
    given (``training``: epochs, lr...), JSON-able."""
    preset = spec.config(None, variant=variant).model_dump(mode="json")
    mine = resolved.model_dump(mode="json")
    return {
        "config": {key: value for key, value in mine.items() if preset.get(key) != value},
        "training": dict(training),
    }


def resolve_device(device: str | None) -> str:
    """``device`` checked, or CUDA when available, else CPU."""
    if device is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.split(":")[0] not in ("cpu", "cuda"):  # meta, mps, xla...: not what runs here
        raise TrainSetupError(f"unknown device {device!r}: use cpu, cuda or cuda:N")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise TrainSetupError(
            f"device {device!r} asked for, but PyTorch sees no CUDA device; use --device cpu"
        )
    try:
        torch.device(device)
    except RuntimeError as error:
        raise TrainSetupError(f"unknown device {device!r} ({error})") from None
    return device


def _store_arrays(store: FeatureStore) -> dict:
    return {
        name: (tuple(spec.dims[1:]), tuple(spec.shape[1:]))
        for name, spec in store.info.arrays.items()
    }


def _check_variant(store: FeatureStore, spec, variant: str, preset, split: str) -> None:
    recipe = store.info.recipe.name
    if preset.augmented and not (store.parents >= 0).any():
        needed = preset.recipe or spec.recipe
        raise TrainSetupError(
            f"variant {variant} of {spec.name} trains on augmented copies, but store "
            f"{store.path} (recipe {recipe}) has none: preprocess with recipe {needed} "
            f"(`mer-prep run DATASET --recipe {needed}`)"
        )
    stored = store.split_info(split)
    if preset.smote and (stored is None or stored.smote is None):
        raise TrainSetupError(
            f"variant {variant} of {spec.name} trains on SMOTE samples, but split {split!r} "
            f"of store {store.path} stores none: make it with `mer-prep split {store.path} "
            f"--kind {store.split(split).kind} --name {split} --smote frames`"
        )


def request_for(store, model: str, settings: Mapping[str, Any]) -> TrainRequest:
    """The :class:`TrainRequest` of a library call (``store``: a ``FeatureStore`` or a
    location): ``TrainRequestError`` for a bad setting. ``device`` left out is None here (CUDA
    when PyTorch sees it), not the flow's ``cpu``: a run in this process takes the fastest
    device there is."""
    location = store.path if isinstance(store, FeatureStore) else str(store)
    return TrainRequest.of(**{"device": None, **settings, "store": location, "model": model})


def plan_run(
    store, model: str = "mbcc", *, validation_metric: str | None = None, **settings: Any
) -> RunPlan:
    """Check everything, then read the model's arrays once; see the module docstring.

    store: a ``FeatureStore`` or a location (opened at ``version``, a tag, when given);
    settings: the :class:`TrainRequest` fields (``config``: overrides of the variant's config,
    or a config instance; ``epochs`` / ``batch_size`` / ``lr`` / ``selection``: overrides of
    the model's training preset); validation_metric: the preset's, overridden.
    """
    settings = dict(settings)
    instance = settings.pop("config") if isinstance(settings.get("config"), BaseModel) else None
    request = request_for(store, model, settings)
    return plan_request(
        _opened(store, request), request, validation_metric=validation_metric, config=instance
    )


def _opened(store, request: TrainRequest) -> FeatureStore:
    if isinstance(store, FeatureStore):
        return store
    return open_store(store, request.version) if request.version else open_store(store)


def plan_request(
    store: FeatureStore,
    request: TrainRequest,
    *,
    ticket: RunTicket | None = None,
    validation_metric: str | None = None,
    config: BaseModel | None = None,
) -> RunPlan:
    """:func:`plan_run` of a built request on an opened store. ticket: the run's id and
    creation time for the header (None: new ones); config: a config instance used instead of
    the request's overrides."""
    from mer_prep.models import check_inputs, get_model

    spec = get_model(request.model)
    split, seed = request.split, request.seed
    variant = request.variant or spec.default_variant
    if variant not in spec.variants:
        raise TrainSetupError(
            f"model {spec.name} has no variant {variant!r}; valid: {', '.join(spec.variants)}"
        )
    variant_preset = spec.variants[variant]
    resolved = _config(spec, variant, config if config is not None else request.config)
    check_inputs(spec, store.info.recipe.name, _store_arrays(store), resolved)
    check_trainable(store, store.labels)
    made = store.split(split)
    check_split_fits(store, split, made)
    _check_variant(store, spec, variant, variant_preset, split)
    au = None  # --target aus: the AUs predicted (a store coding none is refused here)
    if request.target == "aus":
        check_au_variant(spec.name, variant, variant_preset)
        au = au_columns(store)
    # the training settings given, as the header records them (in this order)
    overrides = {
        key: value
        for key, value in (
            ("epochs", request.epochs),
            ("batch_size", request.batch_size),
            ("lr", request.lr),
            ("selection", request.selection),
            ("validation_metric", validation_metric),
        )
        if value is not None
    }
    given = spec.training  # each setting not given is the model's preset
    preset = dataclasses.replace(
        given,
        epochs=given.epochs if request.epochs is None else request.epochs,
        batch_size=given.batch_size if request.batch_size is None else request.batch_size,
        lr=given.lr if request.lr is None else request.lr,
        selection=given.selection if request.selection is None else request.selection,
        validation_metric=(
            given.validation_metric if validation_metric is None else validation_metric
        ),
    )
    # the test-subject oracle only when the request names it: never from a model's preset
    oracle = preset.selection == TEST_ORACLE and request.selection == TEST_ORACLE
    if preset.selection not in ("validation", "last_epoch") and not oracle:
        raise TrainSetupError(
            f"selection must be 'validation' or 'last_epoch', not {preset.selection!r}"
        )
    if preset.selection in ("validation", TEST_ORACLE) and preset.validation_metric is None:
        preset = dataclasses.replace(preset, validation_metric=DEFAULT_VALIDATION_METRIC)
    if au is not None and preset.validation_metric is not None:
        preset = dataclasses.replace(preset, validation_metric=AU_VALIDATION_METRIC)
    check_settings(seed, preset)
    device = resolve_device(request.device)
    unit = spec.unit(resolved)
    info = store.info
    # the variant's switches: recorded in the header's training settings, followed by the plan
    switches = {k: getattr(variant_preset, k) for k in ("augmented", "smote", "class_weights")}
    header = RunHeader(
        run_id=ticket.run_id if ticket else new_run_id(spec.name),
        created=(
            ticket.created if ticket else dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        ),
        model=spec.name,
        paper=spec.paper,
        variant=variant,
        config=resolved.model_dump(mode="json"),
        training={
            **dataclasses.asdict(preset),
            **switches,
            "optimizer": "adam",
            "autocast": "bf16 on cuda only",
            **(
                {
                    "aus": list(au.names),
                    "au_threshold": THRESHOLD,
                    "au_pos_weight_cap": POS_WEIGHT_CAP,
                }
                if au is not None
                else {}
            ),
        },
        unit=unit,
        aggregation=CLIP_AGGREGATION[unit],
        split=split,
        split_kind=made.kind,
        leaky=bool(made.leaky or store.split_attrs(split).get("leaky", False)),
        store={
            "location": portable_location(store.path),
            "dataset": info.dataset,
            "recipe": info.recipe.name,
            "recipe_hash": info.recipe.hash,
            "version_id": store.version_id,
            "snapshot_id": store.session.snapshot_id,
            "labels": info.labels,
            "class_names": store.class_names,
            "n_samples": len(store.table),
        },
        seed=int(seed),
        code_version=code_version(),
        device=device,
        torch_version=str(torch.__version__),
        n_folds=made.n_folds,
        overrides=_overrides(spec, variant, resolved, overrides),
        target=request.target,
    )
    names = [need.name for need in spec.required_inputs(resolved)]
    data = load_store_data(store, names)
    if au is not None:
        data = dataclasses.replace(data, aus=store.aus[:, list(au.columns)], au_names=au.names)
    check_finite_inputs(data.arrays, data.sample_ids, f"store {store.path}")
    return RunPlan(
        store,
        spec,
        resolved,
        preset,
        data,
        header,
        **switches,
        keep_checkpoints=request.keep_checkpoints,
    )


def run_folds(
    plan: RunPlan, *, report: Callable[[RunEvent], None] | None = None
) -> list[FoldResult]:
    """Train every fold of ``plan`` here, one after the other. report: called with the run's
    :class:`~mer_prep.train.progress.RunEstimate` once the first steps are timed, then a
    ``RunProgress`` (ETAs of the fold and the run) after every epoch."""
    tracker = (
        None
        if report is None
        else RunTracker(
            report,
            model=plan.spec.name,
            variant=plan.variant,
            config=plan.config.model_dump(mode="json"),
            folds=plan.header.n_folds,
        )
    )
    return [plan.train_fold(fold, report=tracker) for fold in plan.folds()]


class InProcess:
    """The :class:`~mer_prep.train.sequence.FoldRunner` of a run in this process: the whole
    plan checked and the store read here (``prepare``), then the folds one after the other.
    report: what the run will cost and how far it is (see :func:`run_folds`)."""

    def __init__(
        self,
        store: FeatureStore,
        *,
        config: BaseModel | None = None,
        report: Callable[[RunEvent], None] | None = None,
    ) -> None:
        self.store, self.config, self.report = store, config, report
        self.plan: RunPlan | None = None

    def prepare(self, ticket: RunTicket) -> int:
        self.plan = plan_request(
            self.store,
            ticket.request,
            ticket=ticket,
            config=self.config,
            validation_metric=ticket.validation_metric,
        )
        return self.plan.header.n_folds

    def run(self, _ticket: RunTicket, _n_folds: int) -> Iterator[FoldsDone]:
        assert self.plan is not None, "prepare() first"
        yield FoldsDone(self.plan.header, run_folds(self.plan, report=self.report))

    def timings(self, _done: list[FoldsDone], ready_s: float) -> dict[str, Any]:
        return {"load_s": ready_s}


def train(
    store,
    model: str = "mbcc",
    *,
    report: Callable[[RunEvent], None] | None = None,
    validation_metric: str | None = None,
    save: bool = True,
    **settings: Any,
) -> RunRecord:
    """Train ``model`` on every fold of ``split`` of ``store`` (a ``FeatureStore`` or a
    location, opened at ``version`` when given) and record the run on the store (``save=False``:
    return it only). settings: the :class:`TrainRequest` fields, as :func:`plan_run`'s. report:
    what the run will cost and how far it is (see :func:`run_folds`)."""
    settings = dict(settings)
    instance = settings.pop("config") if isinstance(settings.get("config"), BaseModel) else None
    request = request_for(store, model, settings)
    return run_request(
        request,
        store=_opened(store, request),
        report=report,
        save=save,
        validation_metric=validation_metric,
        config=instance,
    )


def run_request(
    request: TrainRequest,
    *,
    store: FeatureStore | None = None,
    report: Callable[[RunEvent], None] | None = None,
    save: bool = True,
    validation_metric: str | None = None,
    config: BaseModel | None = None,
    group_id: str | None = None,
) -> RunRecord:
    """:func:`train` of a built request (``mer-prep train``): its store opened at its version
    unless ``store`` is given; config: a config instance used instead of its overrides;
    group_id: the seed group the record names (``mer_prep.train.seeds``)."""
    opened = store if store is not None else _opened(request.store, request)
    return run_training(
        opened,
        request,
        InProcess(opened, config=config, report=report),
        save=save,
        validation_metric=validation_metric,
        group_id=group_id,
    )
