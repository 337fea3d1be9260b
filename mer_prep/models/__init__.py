"""The five papers' model families and the field's flow baselines (STSTNet, OFF-ApexNet,
HTNet) as PyTorch modules (needs the ``torch`` extra).

Every model is an ``nn.Module`` whose ``forward(inputs)`` takes a ``dict[str, Tensor]`` keyed by
stored array name (float32, leading batch dim) and returns logits (B, K); ``model.loss(inputs,
targets, weight=None)`` is its training loss and ``model.fit_input_statistics(inputs)`` the
per-fold hook. Look models up with :func:`get_model`; ``docs/models.md`` says, per family, what
the paper states, what was built and which choices fill its gaps.
"""

from mer_prep.models.layers import MerModel
from mer_prep.models.registry import (
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

__all__ = ["MODELS", "ArrayNeed", "MerModel", "ModelInputError", "ModelSpec", "TrainingPreset",
           "UnknownModelError", "VariantPreset", "build_model", "check_inputs", "get_model",
           "list_models"]
