"""The project configuration (``mer-prep.toml``): ``loading`` reads it, ``model`` checks it and
makes the deployments (``deployment``); ``trainings`` the ``[trainings.<name>]`` entries (of learned
spotters: ``spot_trainings``); ``policy`` says what a deployment run may do."""

from mer_prep.config.deployment import Deployment, SpotTrainingDeployment, TrainingDeployment
from mer_prep.config.loading import CONFIG_ENV, DEFAULT_FILE, config_path, load_config
from mer_prep.config.model import Config, DatasetConfig, Defaults, ProjectConfig
from mer_prep.config.policy import RUN_RULES, RunPolicy, TrainingRule
from mer_prep.config.spot_trainings import SpotRule
from mer_prep.config.trainings import TrainingConfig, task_resources
from mer_prep.errors import ConfigError

__all__ = [
    "CONFIG_ENV",
    "DEFAULT_FILE",
    "Config",
    "ConfigError",
    "DatasetConfig",
    "Defaults",
    "Deployment",
    "ProjectConfig",
    "RUN_RULES",
    "RunPolicy",
    "SpotRule",
    "SpotTrainingDeployment",
    "TrainingConfig",
    "TrainingDeployment",
    "TrainingRule",
    "config_path",
    "load_config",
    "task_resources",
]
