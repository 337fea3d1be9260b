"""Reading ``mer-prep.toml``: where the file is (``--config PATH``, else ``$MER_PREP_CONFIG``,
else ``./mer-prep.toml``) and :func:`load_config`, which checks it whole (``model``) and
reports the first problems in one line naming the file and the key."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from mer_prep.config.model import Config, ProjectConfig
from mer_prep.errors import ConfigError, MerPrepError

CONFIG_ENV = "MER_PREP_CONFIG"
DEFAULT_FILE = "mer-prep.toml"


def config_path(path: str | os.PathLike | None = None) -> Path:
    """``path``, else ``$MER_PREP_CONFIG``, else ``./mer-prep.toml``."""
    return Path(path or os.environ.get(CONFIG_ENV) or DEFAULT_FILE).expanduser()


def load_config(path: str | os.PathLike | None = None) -> Config:
    """Read and check the configuration; ``ConfigError`` says which file and which key is wrong."""
    where = config_path(path)
    try:
        data = tomllib.loads(where.read_text())
    except FileNotFoundError:
        raise ConfigError(
            f"no configuration file at {where} (give --config PATH or set {CONFIG_ENV})"
        ) from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{where}: not valid TOML: {error}") from None
    _register_composites(where, data.pop("composites", None) or {})
    try:
        project = ProjectConfig.model_validate(data)
    except ValidationError as error:
        problems = "; ".join(_describe(e) for e in error.errors())
        raise ConfigError(f"{where}: {problems}") from None
    return Config(path=where.resolve(), project=project)


def _register_composites(where: Path, composites: dict) -> None:
    """``[composites.<name>] parts = [...]``: a user composite of any adapters (then usable as
    a ``[datasets.<name>]`` like megc2019)."""
    from mer_prep.datasets import register_composite

    for name, body in composites.items():
        try:
            register_composite(
                name,
                body["parts"],
                description=body.get("description", ""),
                expected=body.get("expected"),
                replace=True,
            )
        except (MerPrepError, KeyError, TypeError) as error:
            raise ConfigError(f"{where}: composites.{name}: {error}") from None


def _describe(error: ErrorDetails) -> str:
    """One pydantic error as ``place: problem`` (``datasets.casme2.cron: not a cron ...``)."""
    message = error["msg"].removeprefix("Value error, ")
    place = ".".join(str(p) for p in error["loc"])
    return f"{place}: {message}" if place else message
