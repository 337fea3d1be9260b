"""Train/test splits over the sample table that cannot leak a subject or an augmented copy.

Row conventions (the store's sample table, ``n`` rows):

- ``subjects`` (n,) str, dataset-qualified ("casme2/sub01", "samm/006");
- ``labels`` (n,) int64 class index, -1 = no label;
- ``parents`` (n,) int64 row of the original an augmented copy was made from, -1 for originals;
- ``datasets`` (n,) str.

Folds are drawn over original rows only; every augmented row then inherits its parent's test
fold, so a copy never sits on the other side of a fold from the clip it was made from. For the
group splits the group is the subject, so no subject is ever on both sides.

    split = loso(subjects, parents)
    for name, train_idx, test_idx in split.folds():
        ...
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
from sklearn.model_selection import GroupKFold, StratifiedGroupKFold, StratifiedKFold

from mer_prep.errors import InvalidArgumentError
from mer_prep.labels import COMPOSITES

KINDS = (
    "loso",
    "group_kfold",
    "stratified_group_kfold",
    "megc2019",
    "random",
    "lodo",
    "dfme_official",
)
TRAIN_ONLY = -2  # test_fold of a row trained on in every fold, never tested (dfme_official)


@dataclass(frozen=True, eq=False)
class Split:
    """A partition of the table's rows into test folds.

    ``test_fold`` (n,) int64: index into ``fold_names`` of the fold in which the row is a test
    sample, or -1 for a row the protocol leaves out entirely (never tested, never trained on;
    ``megc2019_loso`` and ``dfme_official`` produce these), or ``TRAIN_ONLY`` (-2) for a row
    that is trained on in every fold and never tested (only ``dfme_official``: its train
    sheet). ``leaky`` is True only for ``random_split``.
    """

    name: str
    kind: str
    test_fold: np.ndarray = field(repr=False)
    fold_names: tuple[str, ...]
    leaky: bool = False
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise InvalidArgumentError(f"unknown split kind {self.kind!r}; expected one of {KINDS}")
        tf = np.asarray(self.test_fold)
        if tf.ndim != 1 or not np.issubdtype(tf.dtype, np.integer):
            raise InvalidArgumentError("test_fold must be a 1-D integer array")
        if tf.size and (tf.min() < TRAIN_ONLY or tf.max() >= len(self.fold_names)):
            raise InvalidArgumentError(
                f"test_fold values must lie in [{TRAIN_ONLY}, {len(self.fold_names)})"
            )
        tf = tf.astype(np.int64)
        tf.flags.writeable = False  # a frozen split must not be mutated through its array
        object.__setattr__(self, "test_fold", tf)
        object.__setattr__(self, "fold_names", tuple(str(f) for f in self.fold_names))

    @property
    def n_folds(self) -> int:
        return len(self.fold_names)

    def folds(self) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
        """Yield ``(fold_name, train_idx, test_idx)``, both sorted int64 row indices."""
        used = self.test_fold != -1
        for i, fold_name in enumerate(self.fold_names):
            is_test = self.test_fold == i
            yield (
                fold_name,
                np.flatnonzero(used & ~is_test).astype(np.int64),
                np.flatnonzero(is_test).astype(np.int64),
            )

    def to_dict(self) -> dict:
        """JSON-able metadata (the ``test_fold`` array is stored separately)."""
        return {
            "name": self.name,
            "kind": self.kind,
            "fold_names": list(self.fold_names),
            "leaky": self.leaky,
            "seed": self.seed,
            "n_rows": int(self.test_fold.size),
        }

    @classmethod
    def from_dict(cls, meta: dict, test_fold: np.ndarray) -> Split:
        """Inverse of ``to_dict`` given the stored ``test_fold`` array."""
        if "n_rows" in meta and int(meta["n_rows"]) != len(test_fold):
            raise InvalidArgumentError(
                f"split {meta['name']!r} was made for {meta['n_rows']} rows, "
                f"got a test_fold of {len(test_fold)}"
            )
        return cls(
            name=meta["name"],
            kind=meta["kind"],
            test_fold=np.asarray(test_fold),
            fold_names=tuple(meta["fold_names"]),
            leaky=bool(meta.get("leaky", False)),
            seed=meta.get("seed"),
        )


def _parents(parents: np.ndarray | None, n: int) -> np.ndarray:
    """Validated (n,) int64 parents; all -1 when none are given."""
    if parents is None:
        return np.full(n, -1, dtype=np.int64)
    p = np.asarray(parents)
    if p.shape != (n,) or not np.issubdtype(p.dtype, np.integer):
        raise InvalidArgumentError(
            f"parents must be an integer array of shape ({n},), got {p.shape}"
        )
    p = p.astype(np.int64)
    child = p >= 0
    if np.any(p < -1) or np.any(p >= n):
        raise InvalidArgumentError("parents must be -1 or a row index of the table")
    # An augmented copy of an augmented copy would make fold inheritance order-dependent.
    if np.any(p[p[child]] != -1):
        raise InvalidArgumentError("a parent must be an original row (its own parent is -1)")
    return p


def _inherit(orig_fold: np.ndarray, parents: np.ndarray) -> np.ndarray:
    """Full (n,) test_fold from the folds of originals: children take their parent's."""
    tf = orig_fold.astype(np.int64).copy()
    child = parents >= 0
    tf[child] = orig_fold[parents[child]]
    return tf


def _check_subjects(subjects: np.ndarray, parents: np.ndarray) -> None:
    _check_copies(subjects, parents, "subject")


def _check_copies(values: np.ndarray, parents: np.ndarray, what: str) -> None:
    """``InvalidArgumentError`` naming the first augmented copy whose ``what`` (``values``)
    is not its parent's."""
    child = np.flatnonzero(parents >= 0)
    bad = child[values[child] != values[parents[child]]]
    if bad.size:
        raise InvalidArgumentError(
            f"row {bad[0]} is an augmented copy of row {parents[bad[0]]} but "
            f"names {what} {values[bad[0]]!r}, not {values[parents[bad[0]]]!r}"
        )


def _as_str(a: np.ndarray, what: str, n: int | None = None) -> np.ndarray:
    a = np.asarray(a).astype(str)
    if a.ndim != 1 or (n is not None and a.shape != (n,)):
        raise InvalidArgumentError(
            f"{what} must be a 1-D array of {n if n is not None else 'n'} rows"
        )
    return a


def _from_sklearn(
    splitter,
    n: int,
    orig: np.ndarray,
    parents: np.ndarray,
    y: np.ndarray | None,
    groups: np.ndarray | None,
) -> np.ndarray:
    """Run an sklearn splitter over the original rows only; return the inherited test_fold."""
    n_splits = splitter.get_n_splits()
    if groups is not None and len(np.unique(groups)) < n_splits:
        raise InvalidArgumentError(
            f"{n_splits} subject-disjoint folds need at least {n_splits} subjects; the table "
            f"has {len(np.unique(groups))} (ask for fewer folds, e.g. --folds "
            f"{len(np.unique(groups))}, or use loso)"
        )
    fold = np.full(n, -1, dtype=np.int64)
    x = np.zeros((orig.size, 1))
    for i, (_, test) in enumerate(splitter.split(x, y, groups)):
        fold[orig[test]] = i
    return _inherit(fold, parents)


def loso(subjects: np.ndarray, parents: np.ndarray | None = None, name: str = "loso") -> Split:
    """Leave-one-subject-out: one fold per subject, named by it, in sorted subject order."""
    subjects = _as_str(subjects, "subjects")
    p = _parents(parents, subjects.size)
    _check_subjects(subjects, p)
    names, fold = np.unique(subjects, return_inverse=True)
    return Split(name, "loso", _inherit(fold, p), tuple(names))


def group_kfold(
    subjects: np.ndarray,
    n_splits: int,
    parents: np.ndarray | None = None,
    seed: int | None = None,
    name: str = "group_kfold",
) -> Split:
    """``n_splits`` subject-disjoint folds (sklearn ``GroupKFold``, groups = subjects).

    Without a seed GroupKFold balances fold sizes deterministically; with one it shuffles the
    subjects first (``shuffle=True, random_state=seed``).
    """
    subjects = _as_str(subjects, "subjects")
    p = _parents(parents, subjects.size)
    _check_subjects(subjects, p)
    orig = np.flatnonzero(p == -1)
    splitter = GroupKFold(n_splits, shuffle=seed is not None, random_state=seed)
    tf = _from_sklearn(splitter, subjects.size, orig, p, None, subjects[orig])
    return Split(name, "group_kfold", tf, tuple(f"fold{i}" for i in range(n_splits)), seed=seed)


def stratified_group_kfold(
    subjects: np.ndarray,
    labels: np.ndarray,
    n_splits: int,
    seed: int,
    parents: np.ndarray | None = None,
    name: str = "stratified_group_kfold",
) -> Split:
    """Subject-disjoint folds whose class proportions follow the whole table's.

    sklearn ``StratifiedGroupKFold(shuffle=True, random_state=seed)`` over original rows: it
    greedily assigns whole subjects to the fold that keeps per-class proportions closest, so
    the balance is only as good as the subjects allow. Label -1 counts as one more stratum.
    """
    subjects = _as_str(subjects, "subjects")
    labels = np.asarray(labels, dtype=np.int64)
    if labels.shape != subjects.shape:
        raise InvalidArgumentError("labels and subjects must have the same shape")
    p = _parents(parents, subjects.size)
    _check_subjects(subjects, p)
    orig = np.flatnonzero(p == -1)
    splitter = StratifiedGroupKFold(n_splits, shuffle=True, random_state=seed)
    tf = _from_sklearn(splitter, subjects.size, orig, p, labels[orig], subjects[orig])
    return Split(
        name, "stratified_group_kfold", tf, tuple(f"fold{i}" for i in range(n_splits)), seed=seed
    )


def megc2019_loso(
    subjects: np.ndarray,
    datasets: np.ndarray,
    labels: np.ndarray,
    parents: np.ndarray | None = None,
    name: str = "megc2019",
) -> Split:
    """MEGC 2019 composite protocol: LOSO over the megc3-labelled SMIC + CASME II + SAMM rows.

    Rows of other datasets and rows labelled -1 (dropped by the megc3 scheme) get test_fold -1:
    they are in no fold, neither tested nor trained on, because the published UF1/UAR are
    computed over exactly the composite's labelled samples and training on extra rows would
    make the numbers incomparable. Augmented copies follow their parent (in or out). On the real
    composite this yields 68 folds (16 SMIC + 24 CASME II + 28 SAMM subjects).
    """
    subjects = _as_str(subjects, "subjects")
    n = subjects.size
    datasets = _as_str(datasets, "datasets", n)
    labels = np.asarray(labels, dtype=np.int64)
    if labels.shape != (n,):
        raise InvalidArgumentError(f"labels must have shape ({n},)")
    p = _parents(parents, n)
    _check_subjects(subjects, p)
    keep = (p == -1) & np.isin(datasets, COMPOSITES["megc2019"]) & (labels >= 0)
    if not keep.any():
        raise InvalidArgumentError(
            "no labelled smic/casme2/samm rows: nothing for the MEGC 2019 protocol"
        )
    fold = np.full(n, -1, dtype=np.int64)
    names, fold[keep] = np.unique(subjects[keep], return_inverse=True)
    return Split(name, "megc2019", _inherit(fold, p), tuple(names))


def lodo(
    datasets: np.ndarray,
    parents: np.ndarray | None = None,
    subjects: np.ndarray | None = None,
    name: str = "lodo",
) -> Split:
    """Leave-one-dataset-out (the cross-dataset protocol, composite ``cross6``): one fold per
    dataset, named by it, in sorted order; each fold tests one dataset and trains on the others.

    Subjects are dataset-qualified, so no subject can sit on both sides; when ``subjects`` are
    given this is checked (a subject named in two datasets is an error, not a silent leak).
    Augmented copies follow their parent.
    """
    datasets = _as_str(datasets, "datasets")
    p = _parents(parents, datasets.size)
    if subjects is not None:
        subjects = _as_str(subjects, "subjects", datasets.size)
        _check_subjects(subjects, p)
        pairs = {(str(sj), str(ds)) for sj, ds in zip(subjects, datasets, strict=True)}
        per_subject: dict[str, set[str]] = {}
        for subject, dataset in pairs:
            per_subject.setdefault(subject, set()).add(dataset)
        shared = sorted(sj for sj, ds in per_subject.items() if len(ds) > 1)
        if shared:
            raise InvalidArgumentError(
                f"subject {shared[0]!r} appears in datasets "
                f"{sorted(per_subject[shared[0]])}: qualify subjects by dataset"
            )
    _check_copies(datasets, p, "dataset")
    names, fold = np.unique(datasets, return_inverse=True)
    if names.size < 2:
        raise InvalidArgumentError(
            "leave-one-dataset-out needs rows of at least two datasets, got "
            f"{', '.join(names) or 'none'}"
        )
    return Split(name, "lodo", _inherit(fold, p), tuple(names))


DFME_TEST_PARTS: tuple[str, ...] = ("testA", "testB")


def dfme_official(
    partitions: np.ndarray,
    datasets: np.ndarray | None = None,
    parents: np.ndarray | None = None,
    name: str = "dfme_official",
) -> Split:
    """DFME's own subject-disjoint parts (``Sample.partition``): one fold, ``official``, that
    trains on the ``train`` sheet and tests on ``testA`` and ``testB`` (report them apart by
    the partition column). Rows of other datasets or without a part are in no fold (-1).
    Augmented copies follow their parent; a copy of a test row is never trained on.
    """
    partitions = _as_str(partitions, "partitions")
    n = partitions.size
    p = _parents(parents, n)
    dfme = (
        np.ones(n, dtype=bool) if datasets is None else _as_str(datasets, "datasets", n) == "dfme"
    )
    train = dfme & (partitions == "train")
    test = dfme & np.isin(partitions, DFME_TEST_PARTS)
    if not train.any() or not test.any():
        raise InvalidArgumentError(
            "dfme_official needs DFME rows of the train part and of testA/testB "
            f"(found parts: {', '.join(sorted(set(partitions[dfme]))) or 'none'})"
        )
    fold = np.full(n, -1, dtype=np.int64)
    fold[test] = 0
    fold[train] = TRAIN_ONLY
    return Split(name, "dfme_official", _inherit(fold, p), ("official",))


def random_split(
    labels: np.ndarray,
    n_splits: int,
    seed: int,
    parents: np.ndarray | None = None,
    leaky: bool = False,
    name: str = "random",
) -> Split:
    """Sample-level stratified random folds (sklearn ``StratifiedKFold``) — leaky by design.

    Kept only to reproduce the papers' numbers: clips of one subject land on both sides, so a
    model can recognise the person rather than the expression. Refused unless ``leaky=True``.
    Augmented copies still follow their parent; only the subject leaks.
    """
    if not leaky:
        raise InvalidArgumentError(
            "random_split puts clips of the same subject in both train and test, so the model "
            "is scored on people it has already seen (this is how 93-100 % accuracies are "
            "obtained); use loso / stratified_group_kfold, or pass leaky=True to reproduce a "
            "paper's protocol knowingly"
        )
    labels = np.asarray(labels, dtype=np.int64)
    if labels.ndim != 1:
        raise InvalidArgumentError("labels must be 1-D")
    p = _parents(parents, labels.size)
    orig = np.flatnonzero(p == -1)
    splitter = StratifiedKFold(n_splits, shuffle=True, random_state=seed)
    tf = _from_sklearn(splitter, labels.size, orig, p, labels[orig], None)
    return Split(
        name, "random", tf, tuple(f"fold{i}" for i in range(n_splits)), leaky=True, seed=seed
    )


def parent_rows(sample_ids: np.ndarray, aug_parents: np.ndarray) -> np.ndarray:
    """Row of each row's parent sample (``aug_parent`` is a sample id, "" for originals),
    -1 for originals: (n,) int64. A parent missing from the rows is an error."""
    index = {sample_id: i for i, sample_id in enumerate(sample_ids)}
    out = np.full(len(sample_ids), -1, dtype=np.int64)
    for i, parent in enumerate(aug_parents):
        if parent:
            if parent not in index:
                raise InvalidArgumentError(
                    f"row {i} ({sample_ids[i]}) names parent {parent!r}, "
                    f"which is not among the rows"
                )
            out[i] = index[parent]
    return out


def build_split(
    table,
    kind: str,
    *,
    name: str | None = None,
    n_splits: int = 5,
    seed: int = 0,
    leaky: bool = False,
) -> Split:
    """A split of ``kind`` over a store's sample ``table`` (pandas, the reader's ``table``)."""
    subjects = table["subject"].to_numpy(dtype=str)
    labels = table["label"].to_numpy(dtype=np.int64)
    parents = parent_rows(
        table["sample_id"].to_numpy(dtype=str), table["aug_parent"].to_numpy(dtype=str)
    )
    name = name or kind
    if kind == "loso":
        return loso(subjects, parents, name=name)
    if kind == "group_kfold":
        return group_kfold(subjects, n_splits, parents, seed=seed, name=name)
    if kind == "stratified_group_kfold":
        return stratified_group_kfold(subjects, labels, n_splits, seed, parents, name=name)
    if kind == "megc2019":
        return megc2019_loso(
            subjects, table["dataset"].to_numpy(dtype=str), labels, parents, name=name
        )
    if kind == "random":
        return random_split(labels, n_splits, seed, parents, leaky=leaky, name=name)
    if kind == "lodo":
        return lodo(table["dataset"].to_numpy(dtype=str), parents, subjects, name=name)
    if kind == "dfme_official":
        if "partition" not in table.columns:
            raise InvalidArgumentError(
                "dfme_official needs the sample table's partition column "
                "(Sample.partition: train/testA/testB), which this store lacks"
            )
        return dfme_official(
            table["partition"].to_numpy(dtype=str),
            table["dataset"].to_numpy(dtype=str),
            parents,
            name=name,
        )
    raise InvalidArgumentError(f"unknown split kind {kind!r}; expected one of {KINDS}")


def fold_index(names: list[str], fold: str | int | np.integer, split: str) -> int:
    """The position of ``fold`` (a fold's name, or its index 0..n-1) among a split's folds
    ``names``; ``InvalidArgumentError`` naming the folds there are otherwise."""
    if isinstance(fold, str) and fold in names:
        return names.index(fold)
    # a bool is an int, but no fold's index
    if (
        isinstance(fold, (int, np.integer))
        and not isinstance(fold, bool)
        and 0 <= fold < len(names)
    ):
        return int(fold)
    shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
    raise InvalidArgumentError(
        f"split {split!r} has no fold {fold!r}: its {len(names)} folds "
        f"are 0..{len(names) - 1} by index or by name ({shown})"
    )
