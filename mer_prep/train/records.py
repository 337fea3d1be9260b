"""Typed results of training: one fold (:class:`FoldResult`), one run (:class:`RunRecord`).

A run record is composed of typed parts: its :class:`RunHeader` (what was asked and what it ran
on), one :class:`FoldResult` per fold, the :class:`~mer_prep.train.pooled.PooledScores` and its
durations. It is computed from its fold results alone (:func:`combine_folds`), so that folds
trained anywhere (a loop here, Dask workers) combine into the same record. Scores follow
``mer_prep.evaluation.metrics`` (MEGC 2019: confusion counts pooled over folds first). Everything
here is numpy and JSON: no PyTorch needed to read or list runs. The stored format is the flat
:meth:`RunRecord.summary` it always was.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np
import pandas as pd

from mer_prep.evaluation.metrics import confusion_matrix, scores
from mer_prep.evaluation.run_view import leak_text
from mer_prep.train.au_target import pooled_au_scores
from mer_prep.train.pooled import PooledScores

#: The selection that picks each fold's epoch on its test subject (how the field's published
#: numbers were obtained): asked for by name only, and its record is LEAKY.
TEST_ORACLE = "test_oracle"
LEAKY_SELECTIONS = frozenset({TEST_ORACLE, "test-oracle"})

# How a clip's prediction is made from the model's outputs (recorded with every run).
CLIP_AGGREGATION = {
    "clip": "one row per clip: its softmax",
    "frame": "mean of the softmax of the clip's frames (frames as samples)",
}


@dataclass(frozen=True)
class EpochLog:
    """One epoch: mean training ``loss``, the ``validation`` metric (None without a validation
    part), wall ``seconds`` of the epoch and ``step_seconds`` in forward + backward + step."""

    epoch: int
    loss: float
    validation: float | None
    seconds: float
    step_seconds: float
    n_steps: int


def _scores(y_true: np.ndarray, y_pred: np.ndarray, class_names) -> dict | None:
    if not len(y_true):
        return None
    return scores(confusion_matrix(y_true, y_pred, len(class_names)), class_names)


def _score(value: float | None) -> float:
    """A pooled score as a float: NaN for None (how JSON stores a NaN score)."""
    return float("nan") if value is None else float(value)


#: What a fold's summary holds as the fold has it (a field or property of the same name), in the
#: stored order; the summary then adds the curves and whether a checkpoint was kept.
_SUMMARY_KEYS = (
    "index",
    "name",
    "selection",
    "best_epoch",
    "validation_metric",
    "seed",
    "n_test",
    "info",
    "timings",
    "metrics",
)


@dataclass(frozen=True, eq=False)
class FoldResult:
    """What training one fold produced: its test clips' predictions and how it got there.

    rows / sample_ids / y_true / y_pred (m,) and proba (m, K) float32 are the fold's scored
    (original) test clips; ``curves`` one :class:`EpochLog` per epoch; ``selection``
    ``"validation"`` (``best_epoch`` chosen on the validation part's ``validation_metric``) or
    ``"last_epoch"``; ``info``: subjects and counts of the parts (``fit_subjects``,
    ``validation_subjects``, ``test_subjects``, ``n_smote``...); ``checkpoint``: the final
    model's ``state_dict`` as ``torch.save`` bytes when asked for.
    """

    index: int
    name: str
    class_names: tuple[str, ...]
    rows: np.ndarray = field(repr=False)
    sample_ids: np.ndarray = field(repr=False)
    y_true: np.ndarray = field(repr=False)
    y_pred: np.ndarray = field(repr=False)
    proba: np.ndarray = field(repr=False)
    curves: tuple[EpochLog, ...] = field(repr=False)
    selection: str
    best_epoch: int
    validation_metric: str | None
    seed: int
    info: dict = field(default_factory=dict, repr=False)
    timings: dict = field(default_factory=dict, repr=False)
    checkpoint: bytes | None = field(default=None, repr=False)

    @property
    def metrics(self) -> dict | None:
        """``scores`` of this fold alone (None when it scored no clip); with AU targets
        (``y_true`` (m, K)) its per-AU and macro F1 (``au_target.pooled_au_scores``)."""
        if self.y_true.ndim == 2:
            return pooled_au_scores([(self.y_true, self.y_pred)], self.class_names)
        return _scores(self.y_true, self.y_pred, self.class_names)

    @property
    def n_test(self) -> int:
        """How many test clips the fold scored."""
        return len(self.y_true)

    def summary(self) -> dict:
        """Everything but the per-clip arrays and the checkpoint, JSON-able."""
        return {
            **{key: getattr(self, key) for key in _SUMMARY_KEYS},
            "curves": [asdict(c) for c in self.curves],
            "has_checkpoint": self.checkpoint is not None,
            # the columns of an AU run's (m, K) arrays (a class run's are the store's classes)
            **({"au_names": list(self.class_names)} if self.y_true.ndim == 2 else {}),
        }

    @classmethod
    def from_summary(
        cls,
        summary: dict,
        class_names,
        rows,
        sample_ids,
        y_true,
        y_pred,
        proba,
        checkpoint: bytes | None = None,
    ) -> FoldResult:
        # the fields the summary holds as they are (its properties follow from the arrays)
        names = {f.name for f in fields(cls)}
        kept = {key: summary[key] for key in _SUMMARY_KEYS if key in names}
        return cls(
            **kept,
            class_names=tuple(class_names),
            rows=rows,
            sample_ids=sample_ids,
            y_true=y_true,
            y_pred=y_pred,
            proba=proba,
            curves=tuple(EpochLog(**c) for c in summary["curves"]),
            checkpoint=checkpoint,
        )


@dataclass(frozen=True)
class RunHeader:
    """What identifies a run before any fold is trained: the model, its variant, config and
    training settings, the store version (``version_id`` tag and the exact ``snapshot_id`` read),
    the split (``leaky`` when it is a recorded sample-level split), seeds, code and device.

    ``overrides`` says what the run changed from the variant's preset: ``config`` (the model
    config keys given with ``--set`` / ``config=``, as resolved) and ``training`` (epochs,
    batch_size, lr, selection... given on the command line). Records written before it existed
    read back with ``{}``: unknown, not "none"."""

    run_id: str
    created: str
    model: str
    paper: str
    variant: str
    config: dict
    training: dict
    unit: str
    aggregation: str
    split: str
    split_kind: str
    leaky: bool
    store: dict
    seed: int
    code_version: str
    device: str
    torch_version: str
    n_folds: int
    overrides: dict = field(default_factory=dict)
    target: str = "emotion"  # "aus": multi-label action units (``train.au_target``)
    group_id: str | None = None  # the seed group (``--seeds N``); None: records before groups

    @property
    def leaky_selection(self) -> bool:
        """True when each fold's epoch was chosen on its test subject (``test_oracle``)."""
        return (self.training or {}).get("selection") in LEAKY_SELECTIONS

    @property
    def leak_label(self) -> str:
        """``""`` for a clean run, else ``LEAKY (sample-level split)`` and/or ``LEAKY
        (test-subject epoch selection)``: what every listing of the run shows."""
        return leak_text(self.leaky, self.leaky_selection)

    @property
    def name(self) -> str:
        """A human name derived from what the run was (see :func:`run_name`), e.g.
        ``mbcc-difference-inputs=apex-e20-lr1e-3-b32-s0-val``; the ``run_id`` stays the key."""
        return run_name(self)

    def settings(self) -> str:
        """One line of what the run was: model/variant, the overrides it was given (``not
        recorded`` for records older than them), epochs, lr, batch, seed and selection."""
        training = self.training or {}
        if not self.overrides:
            given = "overrides not recorded"
        else:
            changed = {
                **(self.overrides.get("config") or {}),
                **(self.overrides.get("training") or {}),
            }
            given = (
                "overrides " + ", ".join(f"{k}={v}" for k, v in sorted(changed.items()))
                if changed
                else "no overrides"
            )
        selection = training.get("selection", "?")
        if selection == "validation" and training.get("validation_metric"):
            selection += f" ({training['validation_metric']})"
        return (
            f"{self.model}/{self.variant} (paper {self.paper}); {given}; "
            f"{training.get('epochs', '?')} epochs, lr {format_lr(training.get('lr'))}, "
            f"batch {training.get('batch_size', '?')}, seed {self.seed}, "
            f"selection {selection}"
        )

    @property
    def version_id(self) -> str:
        return self.store["version_id"]

    @property
    def snapshot_id(self) -> str:
        return self.store["snapshot_id"]


def format_lr(lr) -> str:
    """A learning rate in short scientific form: 0.001 -> ``1e-3``, 1.5e-05 -> ``1.5e-5``."""
    if lr is None:
        return "?"
    mantissa, exponent = f"{float(lr):.6e}".split("e")
    return f"{float(mantissa):g}e{int(exponent)}"


#: The run name's tag of a selection (another, or none recorded, is shown as it is).
_SELECTION_TAGS: dict[object, str] = {"validation": "val", "last_epoch": "last"}


def run_name(header: RunHeader) -> str:
    """``<model>-<variant>[-<key>=<value>...]-e<epochs>-lr<lr>-b<batch>-s<seed>-<val|last>``:
    model, variant, the config overrides (when recorded), epochs, learning rate, batch size, seed
    and selection (``val``: best epoch on a validation part, ``last``: last epoch). Deterministic
    in the record, so two runs of the same settings share a name (their run ids differ)."""
    training = header.training or {}
    parts = [header.model, header.variant]
    for key, value in sorted(((header.overrides or {}).get("config") or {}).items()):
        shown = ",".join(map(str, value)) if isinstance(value, (list, tuple)) else value
        parts.append(f"{key}={shown}")
    selection = training.get("selection")
    parts += [
        f"e{training.get('epochs', '?')}",
        f"lr{format_lr(training.get('lr'))}",
        f"b{training.get('batch_size', '?')}",
        f"s{header.seed}",
        _SELECTION_TAGS.get(selection, str(selection)),
    ]
    return "-".join(str(p) for p in parts)


def new_run_id(model: str) -> str:
    """``<UTC time>-<model>-<6 hex>``: sortable by creation, unique across concurrent runs."""
    now = dt.datetime.now(dt.UTC)
    return f"{now:%Y%m%dT%H%M%SZ}-{model}-{uuid.uuid4().hex[:6]}"


#: What a :class:`RunRecord` answers for its header (``record.model`` is ``record.header.model``).
_HEADER_ATTRIBUTES = frozenset(f.name for f in fields(RunHeader)) | {
    "name",
    "settings",
    "version_id",
    "snapshot_id",
    "leaky_selection",
    "leak_label",
}


@dataclass(frozen=True, eq=False)
class RunRecord:
    """A finished run: its ``header`` (:class:`RunHeader`: what was asked, the store version,
    code and device), every :class:`FoldResult` (``folds``, by fold index), the pooled
    ``scores`` (:class:`PooledScores`: UF1, UAR, accuracy, per-class F1 / recall, confusion),
    ``duration_s`` and run-level ``timings`` (``load_s``: checks and the bulk read).

    The header's fields and properties read as the record's own (``record.model``,
    ``record.version_id``, ``record.name``...); ``metrics`` is the scores as the stored dict."""

    header: RunHeader
    folds: tuple[FoldResult, ...] = field(repr=False)
    scores: PooledScores = field(repr=False)
    duration_s: float = 0.0
    timings: dict = field(default_factory=dict, repr=False)

    def __getattr__(self, name: str) -> Any:
        # only for names not found on the record itself: the header's fields and properties
        if name in _HEADER_ATTRIBUTES:
            return getattr(self.header, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def with_header(self, **changes: Any) -> RunRecord:
        """This record with header fields replaced (``record.with_header(run_id=...)``)."""
        return dataclasses.replace(self, header=dataclasses.replace(self.header, **changes))

    @property
    def metrics(self) -> dict:
        """The pooled scores as the record stores them (``uf1``, ``uar``, ``accuracy``, ``n``,
        ``per_class_f1``, ``per_class_recall``, ``confusion``)."""
        return self.scores.as_dict()

    # the pooled scores are None once a run that scored no clip is read back (JSON has no NaN)

    @property
    def uf1(self) -> float:
        return _score(self.scores.uf1)

    @property
    def uar(self) -> float:
        return _score(self.scores.uar)

    @property
    def accuracy(self) -> float:
        return _score(self.scores.accuracy)

    @property
    def au_metrics(self) -> dict | None:
        """An AU run's pooled scores (``macro_f1``, ``per_au_f1``, ``support``...; see
        ``au_target.pooled_au_scores``); None for a class run."""
        return self.metrics if self.header.target == "aus" else None

    @property
    def plot(self):
        """Figures of this run (``mer_prep.plot.RunPlots``): ``run.plot.confusion()``."""
        from mer_prep.plot.runs import RunPlots

        return RunPlots(self)

    @property
    def selection_warning(self) -> str | None:
        """A line when selection on the validation part never moved off the first epoch in
        some folds (no later epoch beat epoch 1: the part may be too small to choose with),
        e.g. ``"kept epoch 1 in 6 of 6 folds: the validation part may be too small"``; None
        otherwise (and for ``last_epoch`` runs or single-epoch runs)."""
        chose = [f for f in self.folds if f.selection == "validation" and len(f.curves) > 1]
        stuck = [f for f in chose if f.best_epoch == min(c.epoch for c in f.curves)]
        if not stuck:
            return None
        return (
            f"kept epoch {stuck[0].best_epoch} in {len(stuck)} of {len(self.folds)} folds: "
            f"the validation part may be too small"
        )

    def predictions(self) -> pd.DataFrame:
        """One row per scored clip: fold, row, sample_id, y_true, y_pred, p_<class>..."""
        parts = []
        for fold in self.folds:
            frame = pd.DataFrame(
                {
                    "fold": fold.name,
                    "row": fold.rows,
                    "sample_id": fold.sample_ids,
                    **_outcomes(fold),
                }
            )
            for k, name in enumerate(fold.class_names):
                frame[f"p_{name}"] = fold.proba[:, k]
            parts.append(frame)
        return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()

    def fold_table(self) -> pd.DataFrame:
        """Per fold and pooled: n, UF1, UAR, accuracy (the CLI's final table)."""
        rows = []
        for fold in self.folds:
            m = fold.metrics or {}
            rows.append(
                {
                    "fold": fold.name,
                    "n": len(fold.y_true),
                    "uf1": m.get("uf1"),
                    "uar": m.get("uar"),
                    "accuracy": m.get("accuracy"),
                    "epoch": fold.best_epoch,
                }
            )
        rows.append(
            {
                "fold": "pooled",
                "n": self.scores.n,
                "uf1": self.scores.uf1,
                "uar": self.scores.uar,
                "accuracy": self.scores.accuracy,
                "epoch": None,
            }
        )
        return pd.DataFrame(rows)

    def summary(self) -> dict:
        """JSON-able: the header, pooled metrics, duration and each fold's summary."""
        return {
            **asdict(self.header),
            "name": self.name,
            "selection_warning": self.selection_warning,
            "metrics": self.metrics,
            "duration_s": self.duration_s,
            "timings": self.timings,
            "folds": [fold.summary() for fold in self.folds],
        }


def _outcomes(fold: FoldResult) -> dict[str, np.ndarray]:
    """A fold's truth and prediction as columns: ``y_true``, ``y_pred`` for classes, or
    ``true_AU1``, ``pred_AU1``... for AU targets."""
    if fold.y_true.ndim == 1:
        return {"y_true": fold.y_true, "y_pred": fold.y_pred}
    columns = {f"true_{name}": fold.y_true[:, k] for k, name in enumerate(fold.class_names)}
    columns.update({f"pred_{n}": fold.y_pred[:, k] for k, n in enumerate(fold.class_names)})
    return columns


def pooled_scores(folds: list[FoldResult], header: RunHeader) -> PooledScores:
    """The run's pooled scores: MEGC pooling of the class confusion counts, or with AU targets
    the per-AU counts pooled over folds (no UF1 / UAR: None)."""
    if header.target != "aus":
        return PooledScores.pool(folds, header.store["class_names"])
    names = folds[0].class_names if folds else ()
    au = pooled_au_scores(((f.y_true, f.y_pred) for f in folds), names)
    return PooledScores.from_dict({"uf1": None, "uar": None, "accuracy": None, **au})


def combine_folds(
    folds: list[FoldResult],
    header: RunHeader,
    duration_s: float | None = None,
    timings: dict | None = None,
) -> RunRecord:
    """The run record of ``header`` from its fold results (any order; sorted by fold index):
    MEGC pooling of the folds' confusion counts, then the scores (:meth:`PooledScores.pool`).
    ``duration_s`` defaults to the folds' summed ``total_s``."""
    folds = sorted(folds, key=lambda f: f.index)
    if duration_s is None:
        duration_s = sum(f.timings.get("total_s", 0.0) for f in folds)
    return RunRecord(
        header=header,
        folds=tuple(folds),
        scores=pooled_scores(folds, header),
        duration_s=float(duration_s),
        timings=dict(timings or {}),
    )
