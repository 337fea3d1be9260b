"""Training one fold: :func:`train_fold`, a pure function of picklable arguments.

    result = train_fold(fold_data, spec, config, preset, seed, device)

The fold's fit part goes onto the device once (straight into GPU memory on CUDA) and batches are
indexed there: no per-sample reads, no DataLoader. Adam with the preset's lr / eps / betas,
the preset's epochs and batch size; bf16 autocast on CUDA only; seeds set from ``seed``
(torch, numpy, random) and, on CPU, ``torch.use_deterministic_algorithms(True, warn_only=True)``
for the duration of the fold, so that the same seed gives the same predictions.

Model selection never sees the test subjects: with ``preset.selection == "validation"`` the
checkpoint is the epoch with the best ``preset.validation_metric`` on the fold's validation part
(training subjects held out); otherwise the last epoch. The fold's subjects are checked before
training (validation ∩ test = ∅, validation ∩ fit = ∅, fit ∩ test = ∅ unless the split is a
recorded leaky one), and the test part is taken only after the model is final, through
:func:`read_test_rows` — the one place that touches ``fold.test`` (tests spy on it).
"""

from __future__ import annotations

import contextlib
import copy
import io
import random
import time
from collections.abc import Callable

import numpy as np

from mer_prep.evaluation.metrics import accuracy, confusion_matrix, uar, uf1
from mer_prep.train.data import FoldData, Part
from mer_prep.train.errors import LeakError, NonFiniteError, TrainSetupError, torch_or_raise
from mer_prep.train.progress import TIMED_STEPS, EpochDone, FirstBatches, FoldDone, FoldEvent
from mer_prep.train.records import EpochLog, FoldResult

torch = torch_or_raise()

# Validation metrics: name -> (score of a confusion matrix, higher is better).
VALIDATION_METRICS = {"uf1": uf1, "uar": uar, "accuracy": accuracy}
DEFAULT_VALIDATION_METRIC = "uf1"
STATISTICS_ROWS = 1024  # at most this many fit rows go to ``model.fit_input_statistics``


def read_test_rows(fold: FoldData, model) -> Part:
    """The fold's test part, handed over once ``model`` is final (trained, selected, in eval
    mode). The only access to ``fold.test`` in the engine: a test can wrap it to prove that no
    test row is read earlier."""
    if model.training:
        raise LeakError(f"fold {fold.name}: test rows asked for while the model is training")
    return fold.test


def check_fold(fold: FoldData) -> None:
    """Raise :class:`LeakError` unless the fold's parts are disjoint where they must be.

    Uses the fold's recorded test subjects and rows, never the test part itself.
    """
    test_subjects = set(fold.info["test_subjects"])
    fit = fold.fit.subject_set
    held = set(fold.validation.subject_set) if fold.validation is not None else set()
    leaky = fold.info.get("leaky", False)
    problems = []
    if held & fit:
        problems.append(f"validation subjects {sorted(held & fit)} are also trained on")
    if held & test_subjects and not leaky:
        problems.append(f"validation subjects {sorted(held & test_subjects)} are tested")
    if fit & test_subjects and not leaky:
        problems.append(f"subjects {sorted(fit & test_subjects)} are both trained on and tested")
    test_rows = set(fold.test_rows.tolist())
    for part, what in ((fold.fit, "fit"), (fold.validation, "validation")):
        if part is not None and test_rows & set(part.rows[part.rows >= 0].tolist()):
            problems.append(f"{what} part holds test rows")
    if problems:
        raise LeakError(f"fold {fold.name}: " + "; ".join(problems))


def _build(spec, config, n_classes: int, shapes: dict):
    """``spec.build``, or a one-line :class:`TrainSetupError` for a config the model cannot
    be built with (``--set filters=[0,0]``: layers of no channels)."""
    try:
        return spec.build(config, n_classes, shapes)
    except (ArithmeticError, ValueError, RuntimeError, TypeError) as error:
        raise TrainSetupError(f"model {spec.name} cannot be built with config "
                              f"{config.model_dump(mode='json')} for inputs {shapes}: "
                              f"{type(error).__name__}: {error}") from None


def _check_finite_training(model, mean_loss: float, fold_name: str, epoch: int) -> None:
    """Stop the fold at the first epoch whose mean loss or weights are NaN / infinite (one
    host sync per epoch for the weights), rather than train on and record NaN as a result."""
    if not np.isfinite(mean_loss):
        raise NonFiniteError(f"fold {fold_name}, epoch {epoch}: the training loss is {mean_loss} "
                             f"(diverged: lower the lr); nothing is recorded")
    finite = torch.stack([torch.isfinite(p).all() for p in model.parameters()]).all()
    if not bool(finite):
        raise NonFiniteError(f"fold {fold_name}, epoch {epoch}: the model's weights hold "
                             f"NaN/infinite values (diverged: lower the lr); nothing is "
                             f"recorded")


def seed_everything(seed: int) -> None:
    """torch (CPU and CUDA), numpy's global and Python's ``random``."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2 ** 32)
    random.seed(seed)


@contextlib.contextmanager
def _deterministic(device):
    before = torch.are_deterministic_algorithms_enabled()
    warn_before = torch.is_deterministic_algorithms_warn_only_enabled()
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield device.type == "cpu"
    finally:
        torch.use_deterministic_algorithms(before, warn_only=warn_before)


def _autocast(device):
    return torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")


def _on_device(part: Part, device) -> tuple[dict, object]:
    """The part's inputs (stored dtype) and targets as tensors on ``device``, moved once."""
    inputs = {name: torch.from_numpy(np.ascontiguousarray(values)).to(device)
              for name, values in part.inputs.items()}
    return inputs, torch.from_numpy(part.targets.astype(np.int64)).to(device)


def _batch(inputs: dict, index) -> dict:
    return {name: values.index_select(0, index).float() for name, values in inputs.items()}


def _predict_on_device(model, inputs: dict, clip_of, n_clips: int, n_classes: int,
                       batch_size: int) -> np.ndarray:
    n = int(clip_of.numel())
    device = clip_of.device
    proba = torch.zeros(n_clips, n_classes, device=device)
    with torch.no_grad(), _autocast(device):
        for start in range(0, n, batch_size):
            index = torch.arange(start, min(start + batch_size, n), device=device)
            rows = torch.softmax(model(_batch(inputs, index)).float(), dim=1)
            proba.index_add_(0, clip_of[start:start + batch_size], rows)
    counts = torch.bincount(clip_of, minlength=n_clips).clamp(min=1).unsqueeze(1)
    return (proba / counts).cpu().numpy().astype(np.float32)


class _OnDevice:
    """A part's inputs and clip map on the device, moved once."""

    def __init__(self, part: Part, device) -> None:
        self.part = part
        self.inputs, self.targets = _on_device(part, device)
        self.clip_of = torch.from_numpy(part.clip_of.astype(np.int64)).to(device)


def predict(model, part: Part, device, batch_size: int, n_classes: int,
            moved: _OnDevice | None = None) -> np.ndarray:
    """(clips, K) float32 class probabilities of the part's clips: the softmax of each row,
    averaged over a clip's rows (its frames when frames are samples). ``model`` in eval mode."""
    moved = moved or _OnDevice(part, torch.device(device))
    return _predict_on_device(model, moved.inputs, moved.clip_of, part.n_clips, n_classes,
                              batch_size)


def _validation_score(model, moved: _OnDevice, batch_size: int, metric: str,
                      n_classes: int) -> float:
    model.eval()
    proba = predict(model, moved.part, None, batch_size, n_classes, moved)
    confusion = confusion_matrix(moved.part.labels, proba.argmax(1), n_classes)
    value = VALIDATION_METRICS[metric](confusion)
    return float("-inf") if np.isnan(value) else float(value)


def _statistics_sample(inputs: dict, n: int, generator, device) -> dict:
    index = torch.randperm(n, generator=generator)[:STATISTICS_ROWS].sort().values.to(device)
    return _batch(inputs, index)


def _first_batches(fold: FoldData, model, device, preset, step_ends: list[float],
                   epoch_start: float, steps_per_epoch: int) -> FirstBatches:
    # the first step pays one-off allocations: leave it out when later ones were timed
    if len(step_ends) > 1:
        per_step = (step_ends[-1] - step_ends[0]) / (len(step_ends) - 1)
    else:
        per_step = step_ends[0] - epoch_start
    return FirstBatches(
        fold_index=fold.index, fold_name=fold.name,
        parameters=sum(p.numel() for p in model.parameters()), device=str(device),
        threads=torch.get_num_threads(), steps=len(step_ends), seconds_per_step=per_step,
        steps_per_epoch=steps_per_epoch, fit_rows=fold.fit.n_rows,
        validation_rows=fold.validation.n_rows
        if preset.selection == "validation" and fold.validation is not None else 0,
        epochs=int(preset.epochs))


def train_fold(fold: FoldData, spec, config, preset, seed: int, device: str = "cpu", *,
               keep_checkpoint: bool = False,
               report: Callable[[FoldEvent], None] | None = None) -> FoldResult:
    """Train ``spec`` (a ``ModelSpec``) with ``config`` on ``fold`` and score its test clips.

    preset: a ``TrainingPreset`` (lr, eps, betas, weight_decay, epochs, batch_size, selection,
    validation_metric) with any overrides applied; seed: the fold's seed; device: ``"cpu"``,
    ``"cuda"`` or ``"cuda:N"``. Returns a :class:`FoldResult` (predictions, curves, timings;
    the final ``state_dict`` when ``keep_checkpoint``). report: called with a
    :class:`~mer_prep.train.progress.FirstBatches` once the first steps are timed, an
    ``EpochDone`` per epoch and a ``FoldDone`` at the end (``mer_prep.train.progress``).
    """
    start = time.perf_counter()
    device = torch.device(device)
    validating = preset.selection == "validation"
    metric = preset.validation_metric or DEFAULT_VALIDATION_METRIC
    if validating and (fold.validation is None or fold.validation.n_clips == 0):
        raise TrainSetupError(f"fold {fold.name}: selection='validation' needs a validation part")
    if metric not in VALIDATION_METRICS:
        raise TrainSetupError(f"unknown validation metric {metric!r}; valid: "
                              f"{', '.join(VALIDATION_METRICS)}")
    if fold.fit.n_rows == 0:
        raise TrainSetupError(f"fold {fold.name} has no training rows")
    check_fold(fold)
    with _deterministic(device) as deterministic:
        seed_everything(seed)
        shapes = {name: tuple(values.shape[1:]) for name, values in fold.fit.inputs.items()}
        model = _build(spec, config, fold.n_classes, shapes).to(device)
        inputs, targets = _on_device(fold.fit, device)
        generator = torch.Generator().manual_seed(seed)
        n, batch_size = fold.fit.n_rows, int(preset.batch_size)
        model.fit_input_statistics(_statistics_sample(inputs, n, generator, device))
        optimizer = torch.optim.Adam(model.parameters(), lr=preset.lr, eps=preset.eps,
                                     betas=tuple(preset.betas), weight_decay=preset.weight_decay)
        weight = (torch.as_tensor(fold.class_weights, dtype=torch.float32, device=device)
                  if fold.class_weights is not None else None)
        validation = _OnDevice(fold.validation, device) if validating else None
        curves: list[EpochLog] = []
        best = (float("-inf"), None, 0)
        epochs = range(1, int(preset.epochs) + 1)
        steps_per_epoch = -(-n // batch_size)
        step_ends: list[float] | None = [] if report is not None else None
        fit_start = time.perf_counter()
        for epoch in epochs:
            model.train()
            epoch_start, step_s, steps = time.perf_counter(), 0.0, 0
            total = torch.zeros((), device=device)
            order = torch.randperm(n, generator=generator).to(device)
            for first in range(0, n, batch_size):
                index = order[first:first + batch_size]
                batch, y = _batch(inputs, index), targets.index_select(0, index)
                step_start = time.perf_counter()
                with _autocast(device):
                    loss = model.loss(batch, y, weight=weight)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                step_s += time.perf_counter() - step_start
                steps += 1
                total += loss.detach().float() * index.numel()
                if step_ends is not None:  # the estimate: time the first steps of the fold
                    step_ends.append(time.perf_counter())
                    if len(step_ends) == min(TIMED_STEPS, steps_per_epoch):
                        report(_first_batches(fold, model, device, preset, step_ends,
                                              epoch_start, steps_per_epoch))
                        step_ends = None
            mean_loss = float(total) / n
            _check_finite_training(model, mean_loss, fold.name, epoch)
            score = None
            if validating:
                score = _validation_score(model, validation, batch_size * 4, metric,
                                          fold.n_classes)
                if score > best[0] or best[1] is None:
                    best = (score, copy.deepcopy(model.state_dict()), epoch)
            curves.append(EpochLog(epoch, mean_loss, score, time.perf_counter() - epoch_start,
                                   step_s, steps))
            if report is not None:
                report(EpochDone(fold.index, fold.name, epoch, int(preset.epochs), mean_loss,
                                 score, curves[-1].seconds))
        best_epoch = best[2] if validating else int(preset.epochs)
        if validating:
            model.load_state_dict(best[1])
        model.eval()
        fit_s = time.perf_counter() - fit_start
        del inputs, targets, optimizer, validation
        # --- the model is final: only now are the test rows read ---------------------------
        test = read_test_rows(fold, model)
        predict_start = time.perf_counter()
        proba = predict(model, test, device, batch_size * 4, fold.n_classes)
        if not np.isfinite(proba).all():
            raise NonFiniteError(f"fold {fold.name}: the model predicts NaN/infinite "
                                 f"probabilities for its test clips; nothing is recorded")
        predict_s = time.perf_counter() - predict_start
        checkpoint = None
        if keep_checkpoint:
            buffer = io.BytesIO()
            torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, buffer)
            checkpoint = buffer.getvalue()
    epoch_s = sum(c.seconds for c in curves)
    if report is not None:
        report(FoldDone(fold.index, fold.name, time.perf_counter() - start))
    step_total = sum(c.step_seconds for c in curves)
    timings = {"fit_s": fit_s, "predict_s": predict_s, "total_s": time.perf_counter() - start,
               "epoch_s": epoch_s, "step_s": step_total,
               "outside_step_share": (epoch_s - step_total) / epoch_s if epoch_s else 0.0,
               "deterministic": deterministic, "device": str(device),
               # CUDA runs asynchronously: there the step times are what the host waited
               "step_timing": "synchronous" if device.type == "cpu" else "host-side"}
    return FoldResult(index=fold.index, name=fold.name, class_names=fold.class_names,
                      rows=test.rows.copy(), sample_ids=test.sample_ids.copy(),
                      y_true=test.labels.copy(), y_pred=proba.argmax(1).astype(np.int64)
                      if len(proba) else np.zeros(0, np.int64), proba=proba,
                      curves=tuple(curves), selection=preset.selection, best_epoch=best_epoch,
                      validation_metric=metric if validating else None, seed=int(seed),
                      info=dict(fold.info), timings=timings, checkpoint=checkpoint)
