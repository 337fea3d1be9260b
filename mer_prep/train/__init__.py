"""Training the model families on a store's folds, with run records kept beside the store.

    from mer_prep.train import train, list_runs

    record = train("stores/casme2/mbcc64", "mbcc", variant="difference")   # LOSO by default
    record.uf1, record.uar, record.accuracy, record.fold_table()
    list_runs("stores/casme2/mbcc64")                                       # every recorded run

One concept per module: ``data`` (the store read once, folds in memory), ``selection`` (the
validation subjects, the best epoch), ``engine`` (:func:`train_fold`, one fold), ``epoch`` (one
epoch's steps, predictions), ``timing`` (the first steps' estimate, a fold's timings),
``request`` (``TrainRequest``: every parameter of a run and its default, checked when built),
``sequence`` (``run_training``: lease, plan, folds, pool, record, with a fold runner), ``plan``
(:func:`plan_run`, :func:`train`: the sequence with the folds trained here), ``records``
(:class:`FoldResult`, :class:`RunRecord`, :func:`combine_folds`), ``pooled`` (a run's pooled
scores), ``runs_store`` (:func:`save_run`, :func:`list_runs`: the ``runs`` branch of the store's
repository), ``progress`` (what a run will cost and its ETAs, as events for a reporter),
``cpu_share`` (PyTorch threads: this process's fair share of the cores), ``control`` (the
shuffled-label control). Reading records needs no PyTorch; training needs the ``train`` extra
(``pip install 'mer-prep[train]'``) and says so in one line without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mer_prep.lazy import lazy_getattr
from mer_prep.train.errors import (
    LeakError,
    RunRecordError,
    TrainExtraMissing,
    TrainSetupError,
)
from mer_prep.train.records import (
    EpochLog,
    FoldResult,
    RunHeader,
    RunRecord,
    combine_folds,
)

if TYPE_CHECKING:
    from mer_prep.train.data import FoldData, StoreData
    from mer_prep.train.engine import read_test_rows, train_fold
    from mer_prep.train.plan import RunPlan, plan_run, run_folds, train
    from mer_prep.train.runs_store import list_runs, load_run, open_run_store, save_run

# Loaded on first use: PyTorch (training) or the storage runtime (the runs branch), so that
# importing a light module of this package (``request``) costs neither.
_LAZY = {
    "list_runs": "runs_store",
    "load_run": "runs_store",
    "open_run_store": "runs_store",
    "save_run": "runs_store",
    "train": "plan",
    "plan_run": "plan",
    "run_folds": "plan",
    "RunPlan": "plan",
    "train_fold": "engine",
    "read_test_rows": "engine",
    "FoldData": "data",
    "StoreData": "data",
}

__all__ = [
    "EpochLog",
    "FoldData",
    "FoldResult",
    "LeakError",
    "RunHeader",
    "RunPlan",
    "RunRecord",
    "RunRecordError",
    "StoreData",
    "TrainExtraMissing",
    "TrainSetupError",
    "combine_folds",
    "list_runs",
    "load_run",
    "open_run_store",
    "plan_run",
    "read_test_rows",
    "run_folds",
    "save_run",
    "train",
    "train_fold",
]

__getattr__ = lazy_getattr(__name__, _LAZY)
