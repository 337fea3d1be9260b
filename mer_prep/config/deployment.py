"""The deployments a configuration resolves to (``Config.deployments`` and the like): a name,
the flow's default parameters, a schedule and, for a training or a spotting, the store whose
new versions start it."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class Deployment(BaseModel):
    """A resolved deployment: its name, the flow's default parameters and its schedule.
    ``store``: the location a run with the default parameters writes (``parameters["store"]``
    is the template a run fills in, as it may override the recipe)."""

    name: str
    dataset: str
    parameters: dict[str, Any]
    store: str
    cron: str | None
    timezone: str | None
    paused: bool
    flow: str = "preprocess"


class TrainingDeployment(Deployment):
    """A resolved ``train/<name>`` deployment: also the store location whose new versions it
    trains (``on_commit``)."""

    flow: str = "train"
    store: str
    on_commit: bool


class SpotTrainingDeployment(TrainingDeployment):
    """A learned spotter's ``train/<name>`` deployment (``spot_trainings``): it runs the
    ``spot`` flow, once per seed of ``seeds`` on each new version and each cron tick
    (``parameters`` hold the first seed: a run started by hand)."""

    flow: str = "spot"
    seeds: list[int]
