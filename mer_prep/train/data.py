"""Fold data in memory: the store's arrays read once per run, then cut into each fold's parts.

A run reads every array its model needs with one bulk ``store.array(name)`` call each (no
per-sample reads), together with the table columns it needs (:class:`StoreData`). Each fold is
then a :class:`FoldData` of numpy arrays — picklable, so a fold can be shipped to a Dask worker —
with three :class:`Part` s:

``fit``
    what the model is trained on: the fold's original training clips of the training subjects,
    their augmented copies only when the variant uses them, and the fold's SMOTE samples when
    the variant uses them (rebuilt from their two parents, never from a validation subject);
``validation``
    about 10 % of the training subjects (:mod:`mer_prep.train.selection`), original clips only,
    used for the best-epoch choice; None when the preset trains a fixed number of epochs;
``test``
    the fold's original test clips; augmented copies of a test clip are never scored. The engine
    reads it only once the model is final (``engine.read_test_rows``).

Rows labelled -1 (no class under the store's label scheme) are neither trained on nor scored.
With ``unit="frame"`` every clip's ``T`` frames become ``T`` rows (the clip's label and
subject); ``Part.clip_of`` maps each row back to its clip, so that a clip's prediction is the
mean of its frames' softmax. With ``skip_onset`` frame 0 (the onset, a neutral face: it carries
no emotion, so training it with the clip's label teaches the model a lie) is not a row: T - 1.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mer_prep.errors import InvalidArgumentError
from mer_prep.evaluation.balance import SmotePlan, class_weights, rebuild_smote, smote_plan
from mer_prep.train.errors import LeakError, TrainSetupError
from mer_prep.train.selection import validation_subjects

SMOTE_ID = "smote:"  # sample id prefix of a SMOTE sample (it has no table row: row -1)


@dataclass(frozen=True, eq=False)
class StoreData:
    """What a run reads from one store version, once.

    arrays: name -> (n, ...) in the stored dtype, row i = ``store.table`` row i; labels (n,)
    int64 (-1: none); subjects, sample_ids (n,) str; parents (n,) int64 row of an augmented
    copy's original, -1 for originals; dims: name -> per-sample dim names.
    """

    arrays: dict[str, np.ndarray] = field(repr=False)
    labels: np.ndarray = field(repr=False)
    subjects: np.ndarray = field(repr=False)
    sample_ids: np.ndarray = field(repr=False)
    parents: np.ndarray = field(repr=False)
    class_names: tuple[str, ...]
    dims: dict[str, tuple[str, ...]]
    #: (n, K) bool action units per row when the run's target is AUs (``--target aus``), else
    #: None; ``au_names`` their names (``AU1``...)
    aus: np.ndarray | None = field(default=None, repr=False)
    au_names: tuple[str, ...] = ()

    @property
    def n_rows(self) -> int:
        return int(self.labels.size)

    @property
    def n_augmented(self) -> int:
        """Rows that are augmented copies (``aug_parent`` set)."""
        return int((self.parents >= 0).sum())

    def with_labels(self, labels: np.ndarray) -> StoreData:
        """The same data with other labels (e.g. shuffled for a null experiment)."""
        labels = np.asarray(labels, dtype=np.int64)
        if labels.shape != self.labels.shape:
            raise TrainSetupError(f"labels must have shape {self.labels.shape}")
        return StoreData(
            self.arrays,
            labels,
            self.subjects,
            self.sample_ids,
            self.parents,
            self.class_names,
            self.dims,
            self.aus,
            self.au_names,
        )


def load_store_data(store, names: list[str]) -> StoreData:
    """Read ``names`` from ``store`` (a ``FeatureStore``) in bulk, one call per array."""
    table = store.table
    layout = store.info.arrays
    return StoreData(
        arrays={name: store.array(name, cache=True) for name in names},
        labels=table["label"].to_numpy(dtype=np.int64),
        subjects=table["subject"].to_numpy(dtype=str),
        sample_ids=table["sample_id"].to_numpy(dtype=str),
        parents=np.asarray(store.parents, dtype=np.int64),
        class_names=tuple(store.class_names),
        dims={name: tuple(layout[name].dims[1:]) for name in names},
    )


@dataclass(frozen=True, eq=False)
class Part:
    """One part of a fold: clips (``rows``, ``sample_ids``, ``labels``, ``subjects``, (m,)) and
    the model's sample rows (``inputs`` name -> (r, ...), ``targets`` (r,), ``clip_of`` (r,)
    index of each row's clip; r = m, or m x T frames as samples). ``rows`` is -1 for SMOTE.
    With AU targets, ``aus`` (m, K) bool holds the clips' AUs and ``targets`` is (r, K) float32
    0/1; otherwise ``aus`` is None and ``targets`` the int64 classes."""

    rows: np.ndarray = field(repr=False)
    sample_ids: np.ndarray = field(repr=False)
    labels: np.ndarray = field(repr=False)
    subjects: np.ndarray = field(repr=False)
    inputs: dict[str, np.ndarray] = field(repr=False)
    targets: np.ndarray = field(repr=False)
    clip_of: np.ndarray = field(repr=False)
    aus: np.ndarray | None = field(default=None, repr=False)

    @property
    def n_clips(self) -> int:
        return int(self.rows.size)

    @property
    def n_rows(self) -> int:
        return len(self.targets)  # (rows,) classes or (rows, K) AUs

    @property
    def subject_set(self) -> set[str]:
        """Subjects of the part's real clips (SMOTE samples name none)."""
        return {s for s in self.subjects.tolist() if s}


@dataclass(frozen=True, eq=False)
class FoldData:
    """One fold, in memory; see the module docstring. ``class_weights`` (K,) float32 W_k = N/n_k
    over the fit part's clips when the variant weights the loss, else None; ``test_rows``: the
    table rows of the test clips (what the engine checks against without reading the test
    part); ``info``: counts and subjects for the run record."""

    index: int
    name: str
    class_names: tuple[str, ...]
    unit: str
    fit: Part
    validation: Part | None
    test: Part = field(repr=False)
    test_rows: np.ndarray = field(repr=False)
    class_weights: np.ndarray | None = field(repr=False)
    info: dict = field(default_factory=dict, repr=False)
    #: the AUs the model predicts with ``--target aus`` (``Part.aus``'s columns); () for classes
    au_names: tuple[str, ...] = ()

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def n_outputs(self) -> int:
        """What the model's head gives: one logit per AU with AU targets, else per class."""
        return len(self.au_names) or self.n_classes


def _expand(
    values: np.ndarray, dims: tuple[str, ...], unit: str, skip_onset: bool = False
) -> np.ndarray:
    """Clip rows -> sample rows: with ``unit="frame"`` (m, T, ...) -> (m*T, 1, ...), or
    (m*(T-1), 1, ...) without each clip's onset frame (``skip_onset``)."""
    if unit != "frame" or not dims or dims[0] != "frame":
        return values
    if skip_onset:
        values = values[:, 1:]
    m, t = values.shape[:2]
    return values.reshape(m * t, 1, *values.shape[2:])


def make_part(
    data: StoreData,
    rows: np.ndarray,
    unit: str,
    *,
    synthetic: dict | None = None,
    synthetic_labels: np.ndarray | None = None,
    skip_onset: bool = False,
) -> Part:
    """The part of ``rows`` (table rows), plus optional synthetic clips (name -> (s, ...));
    ``skip_onset``: with ``unit="frame"``, frame 0 of each clip is not a sample row."""
    rows = np.asarray(rows, dtype=np.int64)
    inputs = {name: values[rows] for name, values in data.arrays.items()}
    labels = data.labels[rows]
    sample_ids, subjects = data.sample_ids[rows], data.subjects[rows]
    if synthetic:
        n = len(next(iter(synthetic.values())))
        inputs = {
            name: np.concatenate([inputs[name], synthetic[name].astype(inputs[name].dtype)])
            for name in inputs
        }
        labels = np.concatenate([labels, np.asarray(synthetic_labels, np.int64)])
        sample_ids = np.concatenate([sample_ids, [f"{SMOTE_ID}{j}" for j in range(n)]])
        subjects = np.concatenate([subjects, np.full(n, "", dtype=str)])
        rows = np.concatenate([rows, np.full(n, -1, np.int64)])
    inputs = {
        name: _expand(values, data.dims[name], unit, skip_onset) for name, values in inputs.items()
    }
    n_rows = len(next(iter(inputs.values()))) if inputs else rows.size
    per_clip = n_rows // max(rows.size, 1)
    aus = None
    if data.aus is not None:
        if synthetic:  # refused when planned (au_target.check_au_variant): SMOTE makes classes
            raise TrainSetupError("SMOTE samples have no action units to train on")
        aus = data.aus[rows]
    return Part(
        rows=rows,
        sample_ids=np.asarray(sample_ids, dtype=str),
        labels=labels,
        subjects=np.asarray(subjects, dtype=str),
        inputs=inputs,
        targets=(
            np.repeat(labels, per_clip)
            if aus is None
            else np.repeat(aus.astype(np.float32), per_clip, axis=0)
        ),
        clip_of=np.repeat(np.arange(rows.size), per_clip),
        aus=aus,
    )


def fold_seed(seed: int, index: int) -> int:
    """The seed of fold ``index`` of a run seeded with ``seed`` (recorded per fold)."""
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1)[0])


def build_fold(
    data: StoreData,
    index: int,
    name: str,
    train_rows: np.ndarray,
    test_rows: np.ndarray,
    *,
    unit: str,
    augmented: bool,
    weighted: bool,
    validation: bool,
    seed: int,
    smote: SmotePlan | None = None,
    leaky: bool = False,
    skip_onset: bool = False,
    smote_features: np.ndarray | None = None,
) -> FoldData:
    """Cut fold ``name`` out of ``data``: see the module docstring for the three parts.

    ``train_rows`` / ``test_rows``: the split's table rows; ``augmented``: train on the copies of
    training clips; ``weighted``: class weights in the loss; ``validation``: carve a validation
    part (subjects drawn with ``seed``); ``smote``: the fold's stored SMOTE plan, fitted on the
    split's whole training part. With a validation part that plan no longer fits what is
    trained, so it is fitted again (its seed and k) on the fit rows' originals, on
    ``smote_features`` ((n, d) float, the split's SMOTE features of every table row): the fit
    part is then balanced as a SMOTE plan promises (every class at the majority count of its
    originals) and no synthetic sample has a validation parent. ``skip_onset``: with frames as
    samples, drop each clip's onset frame.
    ``leaky``: the split is a recorded sample-level (leaky) one, whose subjects sit on both
    sides; otherwise a subject on both sides raises :class:`LeakError`. The validation subjects
    are drawn among the training subjects that are not tested in the fold; only a leaky split
    where every training subject is also tested draws them among all training subjects.
    """
    train_rows = np.asarray(train_rows, dtype=np.int64)
    test_rows = np.asarray(test_rows, dtype=np.int64)
    labelled, original = data.labels >= 0, data.parents < 0
    test = test_rows[original[test_rows] & labelled[test_rows]]
    test_subjects = set(data.subjects[test].tolist())
    overlap = test_subjects & set(data.subjects[train_rows].tolist())
    info: dict = {
        "n_test_copies_ignored": int((~original[test_rows]).sum()),
        "n_unlabelled_ignored": int((~labelled[train_rows]).sum() + (~labelled[test_rows]).sum()),
        "subject_overlap": sorted(overlap),
        "leaky": bool(leaky),
    }
    if overlap and not leaky:
        raise LeakError(
            f"fold {name}: subject(s) {', '.join(sorted(overlap)[:3])} on both the "
            f"training and the test side of a split not recorded as leaky"
        )
    train = train_rows[labelled[train_rows]]
    copies = train[~original[train]]
    train = train if augmented else train[original[train]]
    info["n_augmented_used"] = int(copies.size) if augmented else 0
    info["n_copies_dropped"] = 0 if augmented else int(copies.size)

    held: list[str] = []
    if validation:
        originals = train[original[train]]
        clean = originals[~np.isin(data.subjects[originals], list(test_subjects))]
        originals = clean if np.unique(data.subjects[clean]).size >= 2 else originals
        held = validation_subjects(data.subjects[originals], data.labels[originals], seed)
    is_held = np.isin(data.subjects[train], held)
    fit_rows, val_rows = train[~is_held], train[is_held & original[train]]

    synthetic, synthetic_labels = None, None
    info["n_smote"], info["smote_refit"] = 0, False
    if smote is not None and (len(smote) or held):
        parents = np.stack([smote.parent_a, smote.parent_b])
        if not np.isin(parents, train_rows).all():
            raise LeakError(
                f"fold {name}: a SMOTE sample has a parent outside the fold's training rows"
            )
        if held:
            # The stored plan balanced the whole training part; with validation subjects
            # carved out it would be neither balanced nor free of their clips. Fit it again
            # on exactly the rows that are trained, with the stored seed and k.
            if smote_features is None:
                raise TrainSetupError(
                    f"fold {name}: SMOTE with a validation part needs the "
                    f"split's SMOTE features to fit the plan again"
                )
            try:
                smote = smote_plan(
                    smote_features,
                    data.labels,
                    fit_rows,
                    seed=smote.seed,
                    k_neighbors=smote.k_neighbors,
                    parents=data.parents,
                )
            except InvalidArgumentError as error:
                raise TrainSetupError(
                    f"fold {name}: SMOTE on the part that is fitted "
                    f"(validation subjects {', '.join(held)} held out): "
                    f"{error}"
                ) from None
            info["smote_refit"] = True
        synthetic = {n: rebuild_smote(values, smote) for n, values in data.arrays.items()}
        synthetic_labels = smote.label
        info["n_smote"] = len(smote)

    fit = make_part(
        data,
        fit_rows,
        unit,
        synthetic=synthetic,
        synthetic_labels=synthetic_labels,
        skip_onset=skip_onset,
    )
    weights = (
        class_weights(fit.labels, len(data.class_names)).astype(np.float32) if weighted else None
    )
    info.update(
        fit_subjects=sorted(fit.subject_set),
        validation_subjects=held,
        test_subjects=sorted(test_subjects),
        n_fit_clips=fit.n_clips,
        n_validation_clips=int(val_rows.size),
        n_test_clips=int(test.size),
        validation_seed=seed if validation else None,
    )
    return FoldData(
        index=index,
        name=str(name),
        class_names=data.class_names,
        unit=unit,
        fit=fit,
        validation=make_part(data, val_rows, unit, skip_onset=skip_onset) if validation else None,
        test=make_part(data, test, unit, skip_onset=skip_onset),
        test_rows=test,
        class_weights=weights,
        info=info,
        au_names=data.au_names,
    )
