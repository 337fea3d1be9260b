"""The cross-dataset protocol: the cross6 composite, leave-one-dataset-out folds, AU targets, a
user's own composite, and DFME's official parts as a split."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from synth_clips import clip

from mer_prep.datasets import DATASETS, register_composite, scan_dataset, unregister_composite
from mer_prep.datasets.aus import au_matrix
from mer_prep.datasets.options import adapter_options, check_options, check_roots
from mer_prep.errors import InvalidArgumentError
from mer_prep.evaluation.splits import TRAIN_ONLY, Split, build_split, dfme_official, lodo
from mer_prep.labels import COMPOSITES, class_names, composite
from mer_prep.synth.layouts import write_layout

# clips per part of the scaled-down composite: (dataset, subject numbers, emotions, AU strings)
PARTS = {
    "casme1": ([1, 2, 2], ["disgust", "happiness", "surprise"], ["L10", "6+12", "1+2"]),
    "casme2": (
        [1, 1, 2, 3],
        ["disgust", "others", "happiness", "repression"],
        ["4+L10", "R12", "6+12", "15+17"],
    ),
    "samm": ([6, 7, 7], ["Anger", "Other", "Happiness"], ["4+7", "R14 or 14", "12"]),
    "4dme": ([1, 2], ["negative", "surprise"], ["AU4+AU7", "AU1+2(k)"]),
    "mmew": ([1, 3], ["others", "happiness"], ["4", "6+12"]),
    "casme3": ([1, 1, 2], ["disgust", "Others", "happy"], ["4+R2", "T28+14", "R12"]),
}


@pytest.fixture(scope="module")
def cross6_roots(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("cross6")
    roots = {}
    for dataset, (subjects, emotions, aus) in PARTS.items():
        roots[dataset] = base / dataset
        clips = [
            clip(s, e, action_units=a, clip="a" if dataset == "casme3" else None)
            for s, e, a in zip(subjects, emotions, aus, strict=True)
        ]
        write_layout(dataset, roots[dataset], clips)
    write_layout(
        "casme3", roots["casme3"], [clip(9, "negative", apex=None)], variant="C"
    )  # Part C beside
    return roots


def test_cross6_is_data(cross6_roots) -> None:
    found = composite("cross6")
    assert found.parts == ("casme1", "casme2", "samm", "4dme", "mmew", "casme3")
    assert found.options == {"casme3": {"part": "A"}}
    assert sum(found.expected.values()) == 2031  # the protocol's sample count
    assert found.expected["casme3"] == 860 and "cross6" in DATASETS
    assert "casme3.part" not in adapter_options("cross6") and "casme2.variant" in adapter_options(
        "cross6"
    )
    with pytest.raises(InvalidArgumentError, match="no option 'casme3.part'"):
        check_options("cross6", {"casme3.part": "C"})
    with pytest.raises(InvalidArgumentError, match="is not one of raw, cropped"):
        check_options("cross6", {"casme2.variant": "big"})
    with pytest.raises(InvalidArgumentError, match="missing mmew"):
        check_roots("cross6", {k: v for k, v in cross6_roots.items() if k != "mmew"})


def test_cross6_counts_subjects_aus_and_lodo_folds(cross6_roots) -> None:
    scan = scan_dataset("cross6", cross6_roots)
    assert scan.problems == []
    counts = Counter(s.dataset for s in scan)
    assert counts == {d: len(subjects) for d, (subjects, _, _) in PARTS.items()}  # Part A only
    # subject 1 of five datasets: five subjects, never one
    assert {s.subject for s in scan if s.subject.endswith(("/sub01", "/S01", "/spNO.1"))} == {
        "casme1/sub01",
        "casme2/sub01",
        "4dme/S01",
        "mmew/S01",
        "casme3/spNO.1",
    }
    assert len({s.subject for s in scan}) == 13
    # AU targets over the 12 AUs of the protocol
    targets = au_matrix(scan.samples, "cross12")
    assert targets.shape == (len(scan), 12) and targets.any(axis=1).all()
    row = [s.sample_id for s in scan].index("casme3/spNO.1/a_8")  # T28+14: AU28 is not among the 12
    assert np.flatnonzero(targets[row]).tolist() == [9]  # AU14
    # three-class labels over every part (others/Other dropped)
    assert class_names("megc3", "cross6") == ["negative", "positive", "surprise"]
    assert len(scan_dataset("cross6", cross6_roots, labels="megc3")) == 13

    datasets = np.array([s.dataset for s in scan])
    subjects = np.array([s.subject for s in scan])
    split = lodo(datasets, subjects=subjects)
    assert split.kind == "lodo" and split.fold_names == (
        "4dme",
        "casme1",
        "casme2",
        "casme3",
        "mmew",
        "samm",
    )
    for name, train, test in split.folds():
        assert set(datasets[test]) == {name} and name not in set(datasets[train])
        assert len(train) + len(test) == len(scan)
        assert not set(subjects[train]) & set(subjects[test])
    # the same from a store's sample table, an augmented copy following its parent
    table = pd.DataFrame(
        {
            "sample_id": [s.sample_id for s in scan] + [scan.samples[0].sample_id + "#aug0"],
            "subject": [*subjects, subjects[0]],
            "dataset": [*datasets, datasets[0]],
            "label": [0] * (len(scan) + 1),
            "aug_parent": [""] * len(scan) + [scan.samples[0].sample_id],
        }
    )
    stored = build_split(table, "lodo")
    assert stored.test_fold[-1] == stored.test_fold[0] == split.fold_names.index(datasets[0])


def test_lodo_refuses_unqualified_subjects_and_one_dataset() -> None:
    with pytest.raises(InvalidArgumentError, match="subject 's01' appears in datasets"):
        lodo(np.array(["smic", "casme2"]), subjects=np.array(["s01", "s01"]))
    with pytest.raises(InvalidArgumentError, match="at least two datasets"):
        lodo(np.array(["samm", "samm"]))


def test_a_users_composite(cross6_roots, tmp_path: Path) -> None:
    lab = tmp_path / "lab"
    write_layout("manifest", lab, [clip(1, "happy"), clip(2, "surprise")])
    try:
        made = register_composite(
            "lab_plus",
            ["casme2", {"casme3": {"part": "C"}}, "manifest"],
            description="CASME II, CAS(ME)^3 Part C and our lab",
        )
        assert (
            made.parts == ("casme2", "casme3", "manifest") and COMPOSITES["lab_plus"] == made.parts
        )
        assert "lab_plus" in __import__("mer_prep.datasets", fromlist=["x"]).DATASETS
        register_composite(
            "lab_plus", ["casme2", {"casme3": {"part": "C"}}, "manifest"]
        )  # same: harmless
        roots = {
            "casme2": cross6_roots["casme2"],
            "casme3": cross6_roots["casme3"],
            "manifest": lab,
        }
        check_roots("lab_plus", roots)
        scan = scan_dataset("lab_plus", roots, **{"casme2.variant": "cropped"})
        assert Counter(s.dataset for s in scan) == {"casme2": 4, "casme3": 1, "manifest": 2}
        assert {s.subject for s in scan if s.dataset != "casme2"} == {
            "casme3/C09",
            "manifest/p01",
            "manifest/p02",
        }
        assert all("/Cropped/" in s.frame_paths[0] for s in scan if s.dataset == "casme2")
        split = lodo(np.array([s.dataset for s in scan]))
        assert split.n_folds == 3
        assert class_names("native", "lab_plus") == []  # the manifest's labels are its classes
        with pytest.raises(InvalidArgumentError, match="already exists"):
            register_composite("lab_plus", ["casme2", "samm"])
        with pytest.raises(InvalidArgumentError, match="is an adapter"):
            register_composite("samm", ["casme2", "casme1"])
        with pytest.raises(InvalidArgumentError, match="not an adapter"):
            register_composite("bad", ["casme2", "casme9"])
        with pytest.raises(InvalidArgumentError, match="is not one of A, C"):
            register_composite("bad", [{"casme3": {"part": "D"}}])
    finally:
        unregister_composite("lab_plus")
    assert "lab_plus" not in COMPOSITES and "lab_plus" not in DATASETS


def test_dfme_official_split() -> None:
    partitions = np.array(["train", "train", "testA", "testB", "train", ""])
    datasets = np.array(["dfme"] * 5 + ["samm"])
    parents = np.array([-1, -1, -1, -1, 0, -1])  # row 4: an augmented copy of row 0
    split = dfme_official(partitions, datasets, parents)
    assert split.fold_names == ("official",)
    assert split.test_fold.tolist() == [TRAIN_ONLY, TRAIN_ONLY, 0, 0, TRAIN_ONLY, -1]
    ((name, train, test),) = list(split.folds())
    assert name == "official" and train.tolist() == [0, 1, 4] and test.tolist() == [2, 3]
    again = Split.from_dict(split.to_dict(), split.test_fold)
    assert [(tr.tolist(), te.tolist()) for _, tr, te in again.folds()] == [([0, 1, 4], [2, 3])]
    table = pd.DataFrame(
        {
            "sample_id": list("abcdef"),
            "subject": list("uuvwux"),
            "dataset": datasets,
            "label": [0] * 6,
            "aug_parent": ["", "", "", "", "a", ""],
            "partition": partitions,
        }
    )
    assert build_split(table, "dfme_official").test_fold.tolist() == split.test_fold.tolist()
    with pytest.raises(InvalidArgumentError, match="partition column"):
        build_split(table.drop(columns="partition"), "dfme_official")
    with pytest.raises(InvalidArgumentError, match="train part and of testA/testB"):
        dfme_official(np.array(["train", "train"]))
