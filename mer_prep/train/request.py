"""What one training run is asked to do: :class:`TrainSettings` (what it trains) and
:class:`TrainRequest` (that, plus where and on what it runs), each parameter and its default
written here once.

    request = TrainRequest.of(store="stores/casme2/mbcc64", model="mbcc", epochs=20)

Every entry point builds one and nothing else re-lists the parameters: ``mer-prep train``
from its options, the library's :func:`~mer_prep.train.plan.train` from its keywords, the
``train`` flow from its parameters (the names a deployment, a trigger and ``-p`` use), and a
``[trainings.*]`` entry of ``mer-prep.toml`` *is* a :class:`TrainSettings` with deployment keys
added (``mer_prep.config.trainings``). The served-run policy compares the settings a run asks
for with the configured ones field by field (``mer_prep.config.policy``), and a fold task on a
Dask worker carries the request it plans from.

Building one refuses out-of-range settings at once, in one line naming the parameter
(:class:`TrainRequestError`): before a store is opened, a worker started or a Prefect server
asked. Values are strict (``True`` is not a seed, ``"2"`` not a number of epochs): a served
run's parameters come from anyone who can reach the Prefect API. Whether the model, variant,
split and device exist is checked later, where the model registry and the store are
(``plan_run``).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mer_prep.errors import InvalidArgumentError
from mer_prep.model_catalogue import check_device_name

#: The largest seed: torch's and the fold seeds' are 32-bit words (``train.data.fold_seed``).
MAX_SEED = 2**32 - 1
#: The most seeds one run group trains (``--seeds``): each is a whole run of every fold.
MAX_SEEDS = 100


class TrainRequestError(InvalidArgumentError):
    """A training parameter out of range or of the wrong kind (one line, exit 2)."""


class TrainSettings(BaseModel):
    """What a run trains, and how: the settings a served run must leave as its configuration
    says. ``None``: the model's preset (``epochs``, ``batch_size``, ``lr``, ``selection``) or
    default variant; ``device`` None: CUDA when PyTorch sees it, else the CPU (a run in this
    process; the flow's default is ``cpu``)."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    model: str = "mbcc"
    variant: str | None = None
    split: str = Field("loso", min_length=1)
    device: str | None = "cpu"
    seed: int = Field(0, ge=0, le=MAX_SEED)
    seeds: int = Field(1, ge=1, le=MAX_SEEDS)  # runs of seed, seed + 1, ... (one group)
    epochs: int | None = Field(None, ge=1)
    batch_size: int | None = Field(None, ge=1)
    lr: float | None = None
    # "test_oracle": each fold's epoch on its test subject (LEAKY); by name only, never a preset
    selection: Literal["validation", "last_epoch", "test_oracle"] | None = None
    #: what the model predicts: the store's emotion classes, or its action units as
    #: multi-label targets (``mer_prep.train.au_target``)
    target: Literal["emotion", "aus"] = "emotion"
    config: dict[str, Any] | None = None  # model config overrides (``--set``)
    keep_checkpoints: bool = False
    resources: dict[str, float] | None = None  # Dask resources per fold task (None: by device)
    folds_per_task: int = Field(1, ge=1)  # folds one Dask task trains

    @field_validator("device")
    @classmethod
    def _device(cls, value: str | None) -> str | None:
        check_device_name(value)  # an InvalidArgumentError is a ValueError: pydantic's to report
        return value

    @field_validator("lr")
    @classmethod
    def _lr(cls, value: float | None) -> float | None:
        # NaN fails every comparison, so ``gt=0`` alone would let it through
        if value is not None and not (math.isfinite(value) and value > 0):
            raise ValueError(f"lr must be a finite number > 0, got {value}")
        return value

    @model_validator(mode="after")
    def _seeds(self) -> TrainSettings:
        if self.seed + self.seeds - 1 > MAX_SEED:
            raise ValueError(f"seeds: seed {self.seed} + {self.seeds} seeds passes {MAX_SEED}")
        return self

    def settings(self) -> TrainSettings:
        """The settings part alone (what the policy compares)."""
        return TrainSettings.model_validate(
            {name: getattr(self, name) for name in TrainSettings.model_fields}
        )


class TrainRequest(TrainSettings):
    """One training run: :class:`TrainSettings` and the store version it reads, the dataset it
    is named after and the Dask cluster it runs on (the flow). ``store``: a location (a path or
    ``s3://...``); ``version``: a tag (None: the latest); ``n_workers``: local Dask workers
    when no ``dask_address`` is given."""

    #: what a served run may choose within the configuration's allow-lists (every other field
    #: is a setting and must be as configured)
    RUN_CHOICES: ClassVar[tuple[str, ...]] = (
        "store",
        "dataset",
        "version",
        "n_workers",
        "dask_address",
        "cluster",
    )

    store: str = Field(min_length=1)
    dataset: str | None = None
    version: str | None = None
    n_workers: int = Field(2, ge=1)
    dask_address: str | None = None
    # a cluster the run creates and closes: a [clusters.*] spec's JSON form
    cluster: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _one_cluster(self) -> TrainRequest:
        if self.dask_address is not None and self.cluster is not None:
            raise ValueError("give dask_address or cluster, not both")
        return self

    @classmethod
    def of(cls, **values: Any) -> TrainRequest:
        """The request, or :class:`TrainRequestError` naming every bad parameter in one
        line."""
        try:
            return cls.model_validate(values)
        except ValidationError as error:
            raise TrainRequestError("; ".join(describe(e) for e in error.errors())) from None

    def parameters(self) -> dict[str, Any]:
        """The ``train`` flow's parameters for this request (JSON-able)."""
        return self.model_dump(mode="json")


def describe(error: Any) -> str:
    """One pydantic error as a line naming the parameter (``epochs: must be >= 1, got 0``);
    a message of our own validators names it already."""
    place = ".".join(str(p) for p in error["loc"])
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "value_error":
        return message
    if error["type"] in ("greater_than_equal", "less_than_equal", "greater_than"):
        bound = {"greater_than_equal": ">=", "less_than_equal": "<=", "greater_than": ">"}
        limit = next(iter(error["ctx"].values()))
        return f"{place} must be {bound[error['type']]} {limit}, got {error['input']!r}"
    if error["type"] == "missing":
        return f"{place} is required"
    if error["type"] == "extra_forbidden":
        return f"{place} is not a training parameter"
    return f"{place}={error['input']!r}: {message}"
