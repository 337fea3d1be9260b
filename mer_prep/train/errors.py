"""The trainer's errors: each one a :class:`mer_prep.errors.MerPrepError`, printed by the CLI as
one line with its class's exit code."""

from __future__ import annotations

from mer_prep.errors import EnvironmentProblem, InvalidArgumentError

# the run records' errors are the runs branch's (every kind of record shares them); named here
# as before
from mer_prep.store.run_errors import CorruptRunRecordError, RunRecordError

__all__ = [
    "CorruptRunRecordError",
    "LeakError",
    "NonFiniteError",
    "RunRecordError",
    "TrainExtraMissing",
    "TrainSetupError",
    "torch_or_raise",
]

TRAIN_EXTRA = "pip install 'mer-prep[train]'"


class TrainExtraMissing(EnvironmentProblem):
    """PyTorch (the ``train`` extra) is not installed."""


class TrainSetupError(InvalidArgumentError):
    """A run that cannot start: a store, split or variant that does not fit the model."""


class LeakError(TrainSetupError):
    """A fold whose validation or training part shares a subject (or a row) with its test part.

    Raised by the engine's own assertions; seeing one is a bug in the fold construction.
    """


class NonFiniteError(TrainSetupError):
    """A NaN or infinity where training needs finite numbers: a stored input (naming the
    sample), a loss or the weights (naming the fold and epoch), a setting (``--lr inf``)."""


def torch_or_raise():
    """``import torch``, or :class:`TrainExtraMissing` naming the extra to install."""
    try:
        import torch
    except ImportError as error:
        raise TrainExtraMissing(f"training needs PyTorch: {TRAIN_EXTRA}") from error
    return torch
