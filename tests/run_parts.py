"""The parts of a run record built by hand (no training), for the record, report, pooling and
comparison tests: a ``RunHeader`` and a ``FoldResult`` holding the values such a test does not
care about, every one of which a keyword replaces."""

from __future__ import annotations

from typing import Any

import numpy as np

from mer_prep.train.records import EpochLog, FoldResult, RunHeader


def run_header(run_id: str, store: dict, n_folds: int, **fields: Any) -> RunHeader:
    """The header of an mbcc/difference run over LOSO clips (created 2026-01-01, seed 0, on the
    CPU, empty config and training settings, code version "0", paper "000", no torch version)
    of the store version ``store`` describes, in ``n_folds`` folds; ``fields`` replace any of
    these."""
    values: dict[str, Any] = {
        "created": "2026-01-01T00:00:00+00:00",
        "model": "mbcc",
        "paper": "000",
        "variant": "difference",
        "config": {},
        "training": {},
        "unit": "clip",
        "aggregation": "clip",
        "split": "loso",
        "split_kind": "loso",
        "leaky": False,
        "seed": 0,
        "code_version": "0",
        "device": "cpu",
        "torch_version": "",
    }
    return RunHeader(run_id=run_id, store=store, n_folds=n_folds, **{**values, **fields})


def fold_result(
    index: int,
    name: str,
    class_names: tuple[str, ...],
    sample_ids: np.ndarray,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    proba: np.ndarray,
    **fields: Any,
) -> FoldResult:
    """Fold ``index`` (``name``) that scored ``sample_ids`` (rows 0..m-1) with ``y_true``,
    ``y_pred`` and ``proba``, after one epoch, selection by last epoch (best epoch 1), seed 0;
    ``fields`` replace any of these (``rows``, ``curves``, ``selection``, ``best_epoch``,
    ``validation_metric``, ``seed``) or add ``info``, ``timings``, ``checkpoint``."""
    values: dict[str, Any] = {
        "rows": np.arange(len(y_true)),
        "curves": (EpochLog(1, 1.0, None, 0.1, 0.09, 1),),
        "selection": "last_epoch",
        "best_epoch": 1,
        "validation_metric": None,
        "seed": 0,
    }
    return FoldResult(
        index=index,
        name=name,
        class_names=class_names,
        sample_ids=sample_ids,
        y_true=y_true,
        y_pred=y_pred,
        proba=proba,
        **{**values, **fields},
    )
