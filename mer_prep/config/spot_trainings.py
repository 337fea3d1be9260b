"""Trainings of learned spotters: a ``[trainings.<name>]`` table whose ``dataset`` is a
long-video dataset (``mer_prep.datasets.long_video.LONG_VIDEO_ADAPTERS``) and whose ``model``
is a learned spotter (``mer_prep.spotting.methods.LEARNED_METHODS``)::

    [trainings.casme-sq-long-softnet]
    dataset = "casme-sq-long"   # a configured long-video dataset
    model = "softnet"           # softnet | mtsn
    preset = "quick"            # spotting.learned_result.PRESETS (default: the method's own)
    seed = 0                    # the first seed
    seeds = 3                   # seeds 0, 1, 2: one run each per new version and per cron tick
    cron = "0 7 * * *"          # optional schedule
    # tune_on_test = true       # epochs, k and values chosen on the test subject: LEAKY

Its deployment ``train/<name>`` (``<dataset>-<model>`` unless ``name`` says otherwise) runs the
``spot`` flow with ``method`` = the spotter: the networks are trained per LOSO fold on the
training subjects (``spotting.learned``) and the run is recorded on the store's ``runs``
branch, on the store of the dataset's first recipe (or ``recipe``), on every version committed
there (``on_commit``, the default) and on ``cron``. The keys of a recognition training that
mean nothing to a spotter (``variant``, ``target``, ``selection``, ``epochs``, a Dask cluster,
...) are refused when the file loads, as are a recognition model on a long-video dataset, a
spotter on a clip dataset and ``preset`` / ``tune_on_test`` on a recognition training.

A served ``spot`` run must keep the settings of one configured spotting of its dataset
(:class:`SpotRule`: ``spot/<dataset>`` or one of these trainings; ``policy._check_spot``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mer_prep.config.trainings import TrainingConfig
from mer_prep.errors import MerPrepError

#: the keys a learned spotter's training takes (every other ``TrainingConfig`` key belongs to
#: a recognition model, or to a Dask cluster the ``spot`` flow does not use)
SPOTTER_KEYS = (
    "dataset",
    "model",
    "recipe",
    "name",
    "preset",
    "seed",
    "seeds",
    "tune_on_test",
    "split",
    "cron",
    "timezone",
    "paused",
    "enabled",
    "on_commit",
)
#: the keys only a learned spotter's training takes, and what a recognition training uses instead
SPOTTER_ONLY = {
    "preset": "a recognition model's schedule is epochs, batch_size and lr",
    "tune_on_test": 'a recognition model chooses on the test subject by selection = "test_oracle"',
}


@dataclass(frozen=True)
class SpotRule:
    """A configured spotting deployment and the settings its runs must keep: ``deployment``
    (``spot/<dataset>`` or ``train/<name>``), ``method``, the ``seeds`` a run may use,
    ``preset`` (None: the method's own) and ``tune_on_test`` (True: LEAKY, configured so)."""

    deployment: str
    method: str
    seeds: tuple[int, ...] = (0,)
    preset: str | None = None
    tune_on_test: bool = False

    def parameters(self, dataset: str, store: str) -> dict[str, Any]:
        """The ``spot`` flow's parameters of the deployment's default run (its first seed)."""
        return {
            "dataset": dataset,
            "store": store,
            "method": self.method,
            "seed": self.seeds[0],
            "preset": self.preset,
            "tune_on_test": self.tune_on_test,
        }


def is_spotter(training: TrainingConfig) -> bool:
    """Whether ``training`` trains a learned spotter (runs the ``spot`` flow)."""
    from mer_prep.spotting.methods import LEARNED_METHODS

    return training.model in LEARNED_METHODS


def spot_rule(training: TrainingConfig) -> SpotRule:
    """The rule of a spotter's training: its deployment, model, seeds, preset, tune_on_test."""
    return SpotRule(
        deployment=f"train/{training.deployment_name()}",
        method=training.model,
        seeds=tuple(range(training.seed, training.seed + training.seeds)),
        preset=training.preset,
        tune_on_test=training.tune_on_test,
    )


def check_spot_trainings(trainings: Mapping[str, TrainingConfig]) -> None:
    """Raise ``ValueError`` (``trainings.<key>.<field>: why``, one line) for the first training
    that mixes a spotter's and a recognition model's settings (module docstring)."""
    for key, training in trainings.items():
        problem = _problem(training)
        if problem is not None:
            raise ValueError(f"trainings.{key}.{problem}")


def _problem(training: TrainingConfig) -> str | None:
    """``<field>: why`` a training's table does not describe a training, or None."""
    from mer_prep.datasets.long_video import LONG_VIDEO_ADAPTERS
    from mer_prep.spotting.methods import LEARNED_METHODS, METHODS

    learned, dataset = ", ".join(LEARNED_METHODS), training.dataset
    long_video = dataset in LONG_VIDEO_ADAPTERS
    if training.model in METHODS:
        return (
            f"model: {training.model} is a training-free spotter, there is nothing to train; "
            f"a long-video dataset's spot_method runs it (spot/<dataset>)"
        )
    if not is_spotter(training):
        if long_video:
            return (
                f"model: {training.model!r} is a recognition model and datasets.{dataset} holds "
                f"long videos; a long-video dataset trains a learned spotter ({learned})"
            )
        for name, instead in SPOTTER_ONLY.items():
            if name in training.model_fields_set:
                return (
                    f"{name}: only a learned spotter's training ({learned}) takes {name}; {instead}"
                )
        return None
    if not long_video:
        return (
            f"model: {training.model} is a learned spotter and datasets.{dataset} holds clips; "
            f"it trains on a long-video dataset ({', '.join(LONG_VIDEO_ADAPTERS)})"
        )
    for name in TrainingConfig.model_fields:  # in the class's order: the same first one each load
        if name in training.model_fields_set and name not in SPOTTER_KEYS:
            return (
                f"{name}: a learned spotter ({training.model}) has no {name}; its training "
                f"takes {', '.join(SPOTTER_KEYS)}"
            )
    from mer_prep.spotting.learned import settings_of
    from mer_prep.spotting.run import SPLITS

    if training.split not in SPLITS:
        return f"split: {training.split!r}: a spotter is trained and scored {', '.join(SPLITS)}"
    try:
        settings_of(training.model, training.preset)
    except MerPrepError as error:
        return f"preset: {error}"
    return None
