"""Run records built by hand from known labels and predictions (no training), for the
comparison, per-dataset and leaderboard tests: one LOSO fold per subject."""

from __future__ import annotations

import numpy as np
import pandas as pd
from run_parts import fold_result, run_header

from mer_prep.train.records import EpochLog, combine_folds


def make_run(
    run_id: str,
    clips: dict[str, tuple[list[int], list[int]]],
    *,
    classes=("negative", "positive", "surprise"),
    seed: int = 0,
    model: str = "mbcc",
    variant: str = "difference",
    selection: str = "last_epoch",
    leaky: bool = False,
    split: str = "loso",
    version: str = "v1",
    epochs: int = 2,
    target: str | None = None,
    config: dict | None = None,
    snapshot: str = "snap1",
    sample_ids: dict[str, list[str]] | None = None,
):
    """A record whose fold ``subject`` scored clips ``<subject>/c<j>`` (or
    ``sample_ids[subject]``) with labels and predictions ``clips[subject] = (y_true,
    y_pred)``."""
    training = {"epochs": epochs, "lr": 0.001, "batch_size": 4, "selection": selection}
    if target is not None:
        training["target"] = target
    header = run_header(
        run_id,
        {
            "location": "s",
            "version_id": version,
            "snapshot_id": snapshot,
            "class_names": list(classes),
        },
        len(clips),
        model=model,
        paper="p",
        variant=variant,
        config=config or {"filters": [8, 16]},
        training=training,
        split=split,
        leaky=leaky,
        seed=seed,
        code_version="c",
        torch_version="t",
        target=target or "emotion",
        overrides={
            "config": dict(config or {}),
            "training": {"selection": selection} if selection == "test-oracle" else {},
        },
    )
    folds = []
    for index, (subject, (y_true, y_pred)) in enumerate(clips.items()):
        k = len(classes)
        proba = np.eye(k, dtype=np.float32)[np.asarray(y_pred, int)]
        folds.append(
            fold_result(
                index,
                subject,
                tuple(classes),
                np.array(
                    sample_ids[subject]
                    if sample_ids
                    else [f"{subject}/c{j}" for j in range(len(y_true))]
                ),
                _targets(y_true, k, target),
                _targets(y_pred, k, target),
                proba,
                curves=(EpochLog(1, 0.5, None, 1.0, 1.0, 1),),
                seed=seed,
                info={"test_subjects": [subject]},
                timings={"total_s": 1.0},
            )
        )
    return combine_folds(folds, header)


def _targets(labels, k: int, target: str | None) -> np.ndarray:
    """Class labels (n,) int64, or with ``target="aus"`` the same labels as one 0/1 column per
    name (n, k) int64, as an AU run records them."""
    labels = np.asarray(labels, np.int64)
    return np.eye(k, dtype=np.int64)[labels] if target == "aus" else labels


def table_of(*records) -> pd.DataFrame:
    """The sample table the records' clips come from: sample_id, subject and dataset (the
    subject's first path part, as adapters qualify subjects)."""
    ids = sorted({s for r in records for f in r.folds for s in f.sample_ids.tolist()})
    subjects = [s.rsplit("/", 1)[0] for s in ids]
    return pd.DataFrame(
        {"sample_id": ids, "subject": subjects, "dataset": [s.split("/", 1)[0] for s in subjects]}
    )
