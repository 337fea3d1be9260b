"""The project configuration (``mer-prep.toml``): ``model`` reads and checks the file and makes
the deployments; ``trainings`` the ``[trainings.<name>]`` entries; ``policy`` says what a
deployment run may do."""

from mer_prep.config.model import (
    CONFIG_ENV,
    DEFAULT_FILE,
    Config,
    DatasetConfig,
    Defaults,
    Deployment,
    ProjectConfig,
    TrainingDeployment,
    config_path,
    load_config,
)
from mer_prep.config.policy import RUN_RULES, RunPolicy, TrainingRule
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
    "TrainingConfig",
    "TrainingDeployment",
    "TrainingRule",
    "config_path",
    "load_config",
    "task_resources",
]
