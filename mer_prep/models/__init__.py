"""The five papers' model families and the field's flow baselines (STSTNet, OFF-ApexNet,
HTNet) as PyTorch modules (needs the ``torch`` extra).

Every model is an ``nn.Module`` whose ``forward(inputs)`` takes a ``dict[str, Tensor]`` keyed by
stored array name (float32, leading batch dim) and returns logits (B, K); ``model.loss(inputs,
targets, weight=None)`` is its training loss and ``model.fit_input_statistics(inputs)`` the
per-fold hook. Each family's module registers its spec (``register_model``) when imported; look
models up with :func:`get_model`; ``docs/models.md`` says, per family, what the paper states, what
was built and which choices fill its gaps.
"""

import importlib

from mer_prep.models.layers import MerModel
from mer_prep.models.registry import (
    FAMILY_MODULES,
    MODELS,
    ArrayNeed,
    ModelInputError,
    ModelSpec,
    TrainingPreset,
    UnknownModelError,
    VariantPreset,
    build_model,
    check_inputs,
    get_model,
    list_models,
)

# each family registers itself when imported; importing them here, in paper order, fills MODELS
# (the registry module imports no family: no import circle)
for _module in FAMILY_MODULES:
    importlib.import_module(_module)

__all__ = [
    "MODELS",
    "ArrayNeed",
    "MerModel",
    "ModelInputError",
    "ModelSpec",
    "TrainingPreset",
    "UnknownModelError",
    "VariantPreset",
    "build_model",
    "check_inputs",
    "get_model",
    "list_models",
]
