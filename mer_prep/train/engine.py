"""Training one fold: :func:`train_fold`, a pure function of picklable arguments.

    result = train_fold(fold_data, spec, config, preset, seed, device)

The fold's fit part goes onto the device once (straight into GPU memory on CUDA) and batches are
indexed there: no per-sample reads, no DataLoader. Adam with the preset's lr / eps / betas
(PyTorch's fused kernel where the device has one: :func:`adam`), the preset's epochs and batch
size; bf16 autocast on CUDA only; seeds set from ``seed``
(torch, numpy, random) and, on CPU, ``torch.use_deterministic_algorithms(True, warn_only=True)``
for the duration of the fold, so that the same seed gives the same predictions (without
PyTorch's fill of new tensors' memory: :data:`FILL_UNINITIALIZED_MEMORY`).

Model selection never sees the test subjects: with ``preset.selection == "validation"`` the
checkpoint is the epoch with the best ``preset.validation_metric`` on the fold's validation part
(training subjects held out); otherwise the last epoch. The fold's subjects are checked before
training (validation ∩ test = ∅, validation ∩ fit = ∅, fit ∩ test = ∅ unless the split is a
recorded leaky one), and the test part is taken only after the model is final, through
:func:`read_test_rows` — the one place that touches ``fold.test`` (tests spy on it).

The parts live beside it: one epoch and the forward passes in ``mer_prep.train.epoch``, the best
epoch in ``mer_prep.train.selection``, the first-steps estimate and the fold's timings in
``mer_prep.train.timing``; this module keeps the checks, the seeds and the order of random draws
(statistics sample, then one permutation per epoch, from one generator).
"""

from __future__ import annotations

import contextlib
import io
import random
import time
from collections.abc import Callable

import numpy as np

from mer_prep.evaluation.metrics import accuracy, uar, uf1
from mer_prep.train.au_loss import (
    au_fold_info,
    au_loss_fn,
    au_outputs,
    au_probabilities,
    au_validation_score,
)
from mer_prep.train.au_target import AU_VALIDATION_METRIC
from mer_prep.train.data import FoldData, Part
from mer_prep.train.epoch import (
    OnDevice,
    batch,
    check_finite_training,
    on_device,
    predict,
    train_epoch,
    validation_score,
)
from mer_prep.train.errors import LeakError, NonFiniteError, TrainSetupError, torch_or_raise
from mer_prep.train.heap import reused_heap
from mer_prep.train.progress import EpochDone, FoldDone, FoldEvent
from mer_prep.train.records import TEST_ORACLE, EpochLog, FoldResult
from mer_prep.train.selection import BestEpoch
from mer_prep.train.timing import FirstSteps, FoldClock, StepsContext

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


def read_test_rows_for_oracle(fold: FoldData, preset) -> Part:
    """The fold's test part *during* training, for ``selection="test_oracle"`` alone: each
    epoch is scored on the test subject and the best one kept (how the field's published
    numbers were obtained; the run is recorded LEAKY). Any other selection is a
    :class:`LeakError`."""
    if preset.selection != TEST_ORACLE:
        raise LeakError(
            f"fold {fold.name}: test rows asked for during training with selection "
            f"{preset.selection!r} (only 'test_oracle' may, and is recorded LEAKY)"
        )
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
        raise TrainSetupError(
            f"model {spec.name} cannot be built with config "
            f"{config.model_dump(mode='json')} for inputs {shapes}: "
            f"{type(error).__name__}: {error}"
        ) from None


def seed_everything(seed: int) -> None:
    """torch (CPU and CUDA), numpy's global and Python's ``random``."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


#: Whether deterministic mode also fills every new tensor's memory before use (PyTorch's
#: default, ``torch.utils.deterministic.fill_uninitialized_memory``). Off: PyTorch's operators
#: write their whole outputs, and nothing here reads memory it has not written, so the fill
#: only costs time: it is a write pass over each activation and gradient buffer, about 60 per
#: STSTNet step of batch 256 (a quarter of the operators' time in the profile, measured).
FILL_UNINITIALIZED_MEMORY = False


@contextlib.contextmanager
def _deterministic(device):
    before = torch.are_deterministic_algorithms_enabled()
    warn_before = torch.is_deterministic_algorithms_warn_only_enabled()
    fill_before = torch.utils.deterministic.fill_uninitialized_memory
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.utils.deterministic.fill_uninitialized_memory = FILL_UNINITIALIZED_MEMORY
    try:
        yield device.type == "cpu"
    finally:
        torch.use_deterministic_algorithms(before, warn_only=warn_before)
        torch.utils.deterministic.fill_uninitialized_memory = fill_before


def _statistics_sample(inputs: dict, n: int, generator, device) -> dict:
    index = torch.randperm(n, generator=generator)[:STATISTICS_ROWS].sort().values.to(device)
    return batch(inputs, index)


def _check_settings(fold: FoldData, validating: bool, metric: str) -> None:
    """One-line :class:`TrainSetupError` for settings the fold cannot be trained with, and
    :func:`check_fold`'s leak checks, all before anything is built."""
    if validating and (fold.validation is None or fold.validation.n_clips == 0):
        raise TrainSetupError(f"fold {fold.name}: selection='validation' needs a validation part")
    if metric not in VALIDATION_METRICS and metric != AU_VALIDATION_METRIC:
        raise TrainSetupError(
            f"unknown validation metric {metric!r}; valid: {', '.join(VALIDATION_METRICS)}"
        )
    if fold.fit.n_rows == 0:
        raise TrainSetupError(f"fold {fold.name} has no training rows")
    check_fold(fold)


def _first_steps(
    fold: FoldData,
    model,
    device,
    preset,
    choose_on: Part | None,
    steps_per_epoch: int,
    report: Callable[[FoldEvent], None],
) -> FirstSteps:
    return FirstSteps(
        StepsContext(
            fold_index=fold.index,
            fold_name=fold.name,
            parameters=sum(p.numel() for p in model.parameters()),
            device=str(device),
            threads=torch.get_num_threads(),
            steps_per_epoch=steps_per_epoch,
            fit_rows=fold.fit.n_rows,
            validation_rows=choose_on.n_rows if choose_on is not None else 0,
            epochs=int(preset.epochs),
        ),
        report,
    )


def adam(model, preset):
    """Adam with the preset's lr / eps / betas / weight decay, as PyTorch's fused kernel (one
    pass over each parameter per step instead of about ten) where the parameters' device has
    one, else PyTorch's default implementation.

    The update rule is the same; only the rounding differs (on CPU: about 1e-8 on the weights
    after five steps, measured). For a many-parameter model the default's passes dominate a
    step on the CPU: per step of batch 256 on one thread, 77 -> 29 ms of optimiser for
    OFF-ApexNet's 2.7 M parameters and 322 -> 66 ms for HTNet's 11.4 M (measured)."""
    settings = {
        "lr": preset.lr,
        "eps": preset.eps,
        "betas": tuple(preset.betas),
        "weight_decay": preset.weight_decay,
    }
    try:
        return torch.optim.Adam(model.parameters(), fused=True, **settings)
    except RuntimeError:  # no fused kernel for these parameters' device or dtype
        return torch.optim.Adam(model.parameters(), **settings)


def _checkpoint(model) -> bytes:
    """The model's ``state_dict`` (on the CPU) as ``torch.save`` bytes."""
    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, buffer)
    return buffer.getvalue()


def _fit(
    fold: FoldData,
    model,
    preset,
    seed: int,
    device,
    choose_on: Part | None,
    metric: str,
    report: Callable[[FoldEvent], None] | None,
) -> tuple[list[EpochLog], int]:
    """Train ``model`` (built, on ``device``) on the fold's fit part for the preset's epochs and
    leave it selected (the weights of the best epoch on ``choose_on``: the validation part or,
    for the test oracle, the test part; None: the last epoch's) in eval mode.
    Random draws, in order, from one generator seeded with ``seed``: the statistics sample, then
    one row permutation per epoch. The epochs' logs and the selected epoch."""
    inputs, targets = on_device(fold.fit, device)
    generator = torch.Generator().manual_seed(seed)
    n, batch_size = fold.fit.n_rows, int(preset.batch_size)
    model.fit_input_statistics(_statistics_sample(inputs, n, generator, device))
    optimizer = adam(model, preset)
    weight = (
        torch.as_tensor(fold.class_weights, dtype=torch.float32, device=device)
        if fold.class_weights is not None
        else None
    )
    validating = choose_on is not None
    validation = OnDevice(choose_on, device) if choose_on is not None else None
    first = (
        _first_steps(fold, model, device, preset, choose_on, -(-n // batch_size), report)
        if report is not None
        else None
    )
    loss_fn = au_loss_fn(fold, device) if fold.au_names else None  # AU targets: weighted BCE
    best = BestEpoch()
    curves: list[EpochLog] = []
    for epoch in range(1, int(preset.epochs) + 1):
        epoch_start = time.perf_counter()
        if first is not None:  # the estimate: time the first steps of the fold
            first.epoch_started(epoch_start)
        order = torch.randperm(n, generator=generator).to(device)
        steps = train_epoch(
            model,
            optimizer,
            inputs,
            targets,
            order,
            batch_size,
            device,
            weight=weight,
            after_step=first.step_ended if first else None,
            loss_fn=loss_fn,
        )
        check_finite_training(model, steps.mean_loss, fold.name, epoch)
        score = None
        if validation is not None:
            score = (
                au_validation_score(model, validation, batch_size * 4, fold.au_names)
                if fold.au_names
                else validation_score(
                    model, validation, batch_size * 4, VALIDATION_METRICS[metric], fold.n_classes
                )
            )
            best.offer(score, epoch, model)
        curves.append(
            EpochLog(
                epoch,
                steps.mean_loss,
                score,
                time.perf_counter() - epoch_start,
                steps.step_seconds,
                steps.steps,
            )
        )
        if report is not None:
            report(
                EpochDone(
                    fold.index,
                    fold.name,
                    epoch,
                    int(preset.epochs),
                    steps.mean_loss,
                    score,
                    curves[-1].seconds,
                )
            )
    if validating:
        model.load_state_dict(best.state)
    model.eval()
    return curves, best.epoch if validating else int(preset.epochs)


def train_fold(
    fold: FoldData,
    spec,
    config,
    preset,
    seed: int,
    device: str = "cpu",
    *,
    keep_checkpoint: bool = False,
    report: Callable[[FoldEvent], None] | None = None,
) -> FoldResult:
    """Train ``spec`` (a ``ModelSpec``) with ``config`` on ``fold`` and score its test clips.

    preset: a ``TrainingPreset`` (lr, eps, betas, weight_decay, epochs, batch_size, selection,
    validation_metric) with any overrides applied; seed: the fold's seed; device: ``"cpu"``,
    ``"cuda"`` or ``"cuda:N"``. Returns a :class:`FoldResult` (predictions, curves, timings;
    the final ``state_dict`` when ``keep_checkpoint``). report: called with a
    :class:`~mer_prep.train.progress.FirstBatches` once the first steps are timed, an
    ``EpochDone`` per epoch and a ``FoldDone`` at the end (``mer_prep.train.progress``).
    """
    clock = FoldClock()
    device = torch.device(device)
    validating = preset.selection == "validation"
    metric = (
        AU_VALIDATION_METRIC
        if fold.au_names
        else preset.validation_metric or DEFAULT_VALIDATION_METRIC
    )
    _check_settings(fold, validating, metric)
    # _check_settings has refused a validating fold without a validation part
    choose_on = (
        fold.validation
        if validating
        else read_test_rows_for_oracle(fold, preset)
        if preset.selection == TEST_ORACLE
        else None
    )
    with _deterministic(device) as deterministic, reused_heap():
        seed_everything(seed)
        shapes = {name: tuple(values.shape[1:]) for name, values in fold.fit.inputs.items()}
        model = _build(spec, config, fold.n_outputs, shapes).to(device)
        clock.fit_started()
        curves, best_epoch = _fit(fold, model, preset, seed, device, choose_on, metric, report)
        clock.fit_ended()
        # --- the model is final: only now are the test rows read ---------------------------
        test = read_test_rows(fold, model)
        predict_start = time.perf_counter()
        proba = predict(
            model,
            test,
            device,
            int(preset.batch_size) * 4,
            fold.n_outputs,
            scorer=au_probabilities if fold.au_names else None,
        )
        if not np.isfinite(proba).all():
            raise NonFiniteError(
                f"fold {fold.name}: the model predicts NaN/infinite "
                f"probabilities for its test clips; nothing is recorded"
            )
        clock.predict_s = time.perf_counter() - predict_start
        checkpoint = _checkpoint(model) if keep_checkpoint else None
    if report is not None:
        report(FoldDone(fold.index, fold.name, clock.elapsed()))
    names, y_true, y_pred = (
        au_outputs(fold, test, proba)
        if fold.au_names
        else (
            fold.class_names,
            test.labels.copy(),
            proba.argmax(1).astype(np.int64) if len(proba) else np.zeros(0, np.int64),
        )
    )
    return FoldResult(
        index=fold.index,
        name=fold.name,
        class_names=names,
        rows=test.rows.copy(),
        sample_ids=test.sample_ids.copy(),
        y_true=y_true,
        y_pred=y_pred,
        proba=proba,
        curves=tuple(curves),
        selection=preset.selection,
        best_epoch=best_epoch,
        validation_metric=metric if choose_on is not None else None,
        seed=int(seed),
        info={**fold.info, **au_fold_info(fold)},
        timings=clock.timings(curves, deterministic, device),
        checkpoint=checkpoint,
    )
