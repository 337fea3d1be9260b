"""The multi-label side of a fold trained on action units (``--target aus``): the loss, the
probabilities and the validation score, for every model family.

Every family is built with one output per AU (``spec.build(config, n_aus, shapes)``: its
feature extractor unchanged, its ``classifier_head`` giving K AU logits). A family whose
``forward`` is not plain logits but mixes several heads (``msres3d``: ``forward_heads``, four
heads whose softmax it averages) is trained on each head's logits, as its cross-entropy is:
the loss sums the heads' BCE, and a clip's AU probability is the mean of the heads' sigmoids.
Used by :mod:`mer_prep.train.engine`; the AUs, weights and scores are
:mod:`mer_prep.train.au_target`'s.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from mer_prep.train.au_target import THRESHOLD, PositiveWeights, pooled_au_scores, positive_weights
from mer_prep.train.data import FoldData, Part
from mer_prep.train.epoch import OnDevice, predict
from mer_prep.train.errors import TrainSetupError, torch_or_raise

torch = torch_or_raise()
F = torch.nn.functional


def _head_logits(model: Any, inputs: Mapping[str, Any]) -> list[Any]:
    """The model's AU logits, (B, K) float32 each: one per head (``forward_heads``) or its
    ``forward``."""
    heads = getattr(model, "forward_heads", None)
    outputs = heads(inputs) if callable(heads) else [model(inputs)]
    return [out.float() for out in outputs]


def multilabel_loss(model: Any, inputs: Mapping[str, Any], targets: Any, pos_weight: Any) -> Any:
    """Mean BCE-with-logits of the model's AU logits against (B, K) float32 0/1 ``targets``,
    with per-AU ``pos_weight`` (K,) float32; summed over the heads of a multi-head family."""
    return sum(
        F.binary_cross_entropy_with_logits(logits, targets.float(), pos_weight=pos_weight)
        for logits in _head_logits(model, inputs)
    )


def au_probabilities(model: Any, inputs: Mapping[str, Any]) -> Any:
    """(B, K) float32 probability of each AU: the sigmoid of its logit (mean over heads)."""
    return torch.stack([torch.sigmoid(h) for h in _head_logits(model, inputs)]).mean(0)


def _aus(part: Part, fold: FoldData) -> np.ndarray:
    if part.aus is None:
        raise TrainSetupError(f"fold {fold.name}: AU targets asked for, but its parts hold none")
    return part.aus


def fold_positive_weights(fold: FoldData) -> PositiveWeights:
    """The positive weights of ``fold``'s fit part alone (its clips: the training subjects
    less the validation ones; ``au_target.positive_weights``)."""
    return positive_weights(_aus(fold.fit, fold), fold.au_names)


def au_loss_fn(fold: FoldData, device: Any) -> Callable[..., Any]:
    """``loss(model, inputs, targets)`` of ``fold``'s AU training: :func:`multilabel_loss` with
    the fit part's positive weights (on ``device``)."""
    weight = torch.as_tensor(fold_positive_weights(fold).weights, device=device)
    return lambda model, inputs, targets: multilabel_loss(model, inputs, targets, weight)


def au_validation_score(
    model: Any, moved: OnDevice, batch_size: int, names: tuple[str, ...]
) -> float:
    """The macro F1 of the part's clips (model put in eval mode; AUs present at
    ``THRESHOLD``); ``-inf`` when no AU occurs in the part, so that any defined score beats it."""
    model.eval()
    proba = predict(model, moved.part, None, batch_size, len(names), moved, au_probabilities)
    truth = moved.part.aus if moved.part.aus is not None else np.zeros(proba.shape, bool)
    macro = pooled_au_scores([(truth, proba >= THRESHOLD)], names)["macro_f1"]
    return float("-inf") if macro is None else float(macro)


def au_outputs(
    fold: FoldData, test: Part, proba: np.ndarray
) -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    """What a fold's result records of its test clips: the AU names, (m, K) int64 0/1 truth and
    prediction (probability >= ``THRESHOLD``)."""
    truth = _aus(test, fold).astype(np.int64)
    return fold.au_names, truth, (proba >= THRESHOLD).astype(np.int64)


def au_fold_info(fold: FoldData) -> dict[str, Any]:
    """The fold's positive weights for its record (``{}`` for a class target)."""
    if not fold.au_names:
        return {}
    return fold_positive_weights(fold).info(fold.au_names)
