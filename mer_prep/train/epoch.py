"""One training epoch and the forward passes of a fold, on tensors already on the device.

A part's inputs go onto the device once (:class:`OnDevice`); batches are then indexed there
(``index_select``, cast to float32): no per-sample reads, no DataLoader. :func:`train_epoch`
runs one pass of optimiser steps in a given row order under bf16 autocast on CUDA (none on the
CPU); :func:`predict` averages each clip's softmax over its rows. Used by
:func:`mer_prep.train.engine.train_fold`, which owns the seeds and the order of random draws.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from mer_prep.evaluation.metrics import confusion_matrix
from mer_prep.train.data import Part
from mer_prep.train.errors import NonFiniteError, torch_or_raise

torch = torch_or_raise()


def autocast(device) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA; a no-op context on other devices."""
    return torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")


def on_device(part: Part, device) -> tuple[dict, object]:
    """The part's inputs (stored dtype, e.g. float16) and targets as tensors on ``device``,
    moved once: int64 classes (rows,), or float32 0/1 AUs (rows, K) with AU targets."""
    inputs = {
        name: torch.from_numpy(np.ascontiguousarray(values)).to(device)
        for name, values in part.inputs.items()
    }
    dtype = np.float32 if part.targets.ndim == 2 else np.int64
    return inputs, torch.from_numpy(part.targets.astype(dtype)).to(device)


def batch(inputs: Mapping, index) -> dict:
    """Rows ``index`` (int64 tensor on the inputs' device) of every input, as float32."""
    return {name: values.index_select(0, index).float() for name, values in inputs.items()}


class OnDevice:
    """A part's inputs, targets and clip map (int64 (rows,): each row's clip) on the device,
    moved once."""

    def __init__(self, part: Part, device) -> None:
        self.part = part
        self.inputs, self.targets = on_device(part, device)
        self.clip_of = torch.from_numpy(part.clip_of.astype(np.int64)).to(device)


#: (model, batch) -> (B, K) float32 per-row scores that a clip's rows average (default: softmax)
Scorer = Callable[..., Any]


def _softmax(model, rows: dict):
    return torch.softmax(model(rows).float(), dim=1)


def _predict_on_device(
    model,
    inputs: dict,
    clip_of,
    n_clips: int,
    n_classes: int,
    batch_size: int,
    scorer: Scorer | None = None,
) -> np.ndarray:
    scorer = scorer or _softmax
    n = int(clip_of.numel())
    device = clip_of.device
    proba = torch.zeros(n_clips, n_classes, device=device)
    with torch.no_grad(), autocast(device):
        for start in range(0, n, batch_size):
            index = torch.arange(start, min(start + batch_size, n), device=device)
            rows = scorer(model, batch(inputs, index))
            proba.index_add_(0, clip_of[start : start + batch_size], rows)
    counts = torch.bincount(clip_of, minlength=n_clips).clamp(min=1).unsqueeze(1)
    return (proba / counts).cpu().numpy().astype(np.float32)


def predict(
    model,
    part: Part,
    device,
    batch_size: int,
    n_classes: int,
    moved: OnDevice | None = None,
    scorer: Scorer | None = None,
) -> np.ndarray:
    """(clips, K) float32 class probabilities of the part's clips: the softmax of each row
    (``scorer``: another per-row score, e.g. AU sigmoids), averaged over a clip's rows (its
    frames when frames are samples). ``model`` in eval mode."""
    moved = moved or OnDevice(part, torch.device(device))
    return _predict_on_device(
        model, moved.inputs, moved.clip_of, part.n_clips, n_classes, batch_size, scorer
    )


def validation_score(
    model, moved: OnDevice, batch_size: int, metric: Callable[[np.ndarray], float], n_classes: int
) -> float:
    """``metric`` of the confusion matrix of the validation part's clips (model put in eval
    mode); ``-inf`` where the metric is undefined (NaN), so that any defined score beats it."""
    model.eval()
    proba = predict(model, moved.part, None, batch_size, n_classes, moved)
    value = metric(confusion_matrix(moved.part.labels, proba.argmax(1), n_classes))
    return float("-inf") if np.isnan(value) else float(value)


@dataclass(frozen=True)
class EpochSteps:
    """What one pass of optimiser steps gave: the ``mean_loss`` over the rows, the wall seconds
    spent in forward + backward + step (``step_seconds``) and the number of ``steps``."""

    mean_loss: float
    step_seconds: float
    steps: int


def train_epoch(
    model,
    optimizer,
    inputs: Mapping,
    targets,
    order,
    batch_size: int,
    device,
    weight=None,
    after_step: Callable[[], None] | None = None,
    loss_fn: Callable[..., Any] | None = None,
) -> EpochSteps:
    """One epoch: batches of ``batch_size`` rows taken in ``order`` (int64 permutation on the
    device), each an optimiser step on ``model.loss`` with per-class ``weight`` (K,) or None
    (``loss_fn(model, rows, targets)``: another loss, e.g. the AUs' BCE).
    ``after_step`` is called after each step (the first steps' timing). The model is put in
    training mode; the mean loss costs one host sync per epoch, not per step."""
    model.train()
    n = int(order.numel())
    step_s, steps = 0.0, 0
    total = torch.zeros((), device=device)
    for first in range(0, n, batch_size):
        index = order[first : first + batch_size]
        rows, y = batch(inputs, index), targets.index_select(0, index)
        step_start = time.perf_counter()
        with autocast(device):
            loss = (
                model.loss(rows, y, weight=weight) if loss_fn is None else loss_fn(model, rows, y)
            )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step_s += time.perf_counter() - step_start
        steps += 1
        total += loss.detach().float() * index.numel()
        if after_step is not None:
            after_step()
    return EpochSteps(float(total) / n, step_s, steps)


def check_finite_training(model, mean_loss: float, fold_name: str, epoch: int) -> None:
    """Stop the fold at the first epoch whose mean loss or weights are NaN / infinite (one
    host sync per epoch for the weights), rather than train on and record NaN as a result."""
    if not np.isfinite(mean_loss):
        raise NonFiniteError(
            f"fold {fold_name}, epoch {epoch}: the training loss is {mean_loss} "
            f"(diverged: lower the lr); nothing is recorded"
        )
    finite = torch.stack([torch.isfinite(p).all() for p in model.parameters()]).all()
    if not bool(finite):
        raise NonFiniteError(
            f"fold {fold_name}, epoch {epoch}: the model's weights hold "
            f"NaN/infinite values (diverged: lower the lr); nothing is "
            f"recorded"
        )
