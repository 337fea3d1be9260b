"""The MEGC 2019 composite under megc3: 442 clips, 68 subjects, the official class counts."""

from __future__ import annotations

from collections import Counter
from itertools import cycle
from pathlib import Path

import numpy as np
from synth_clips import clip

from mer_prep.datasets import scan_dataset
from mer_prep.evaluation.splits import megc2019_loso
from mer_prep.labels import class_names
from mer_prep.synth.layouts import SynthClip, write_layout

# native emotion -> clip count, and the subjects that hold them
SMIC = {"negative": 70, "positive": 51, "surprise": 43}
CASME2_KEPT = {"disgust": 61, "repression": 27, "happiness": 32, "surprise": 25}
CASME2_DROPPED = {"others": 99, "fear": 2, "sadness": 7}
SAMM_KEPT = {
    "Anger": 57,
    "Contempt": 12,
    "Disgust": 9,
    "Fear": 8,
    "Sadness": 6,
    "Happiness": 26,
    "Surprise": 15,
}
SAMM_DROPPED = {"Other": 26}


def _clips(counts: dict[str, int], subjects: list[int]) -> list[SynthClip]:
    who = cycle(subjects)
    return [
        clip(next(who), emotion, n=3, onset=0, apex=1, offset=2)
        for emotion, n in counts.items()
        for _ in range(n)
    ]


def test_megc2019_composite_under_megc3(tmp_path: Path) -> None:
    roots = {name: tmp_path / name for name in ("smic", "casme2", "samm")}
    write_layout("smic", roots["smic"], _clips(SMIC, list(range(1, 17))))
    # CASME II subjects 25 and 26 and SAMM 034-037 hold only classes megc3 drops
    write_layout(
        "casme2",
        roots["casme2"],
        _clips(CASME2_KEPT, list(range(1, 25))) + _clips(CASME2_DROPPED, list(range(26, 0, -1))),
    )
    write_layout(
        "samm",
        roots["samm"],
        _clips(SAMM_KEPT, list(range(6, 34))) + _clips(SAMM_DROPPED, list(range(37, 5, -1))),
    )

    scan = scan_dataset("megc2019", roots, labels="megc3")
    assert scan.problems == []
    assert len(scan) == 442
    assert len({s.subject for s in scan}) == 68
    counts = Counter((s.dataset, s.label) for s in scan)
    assert counts == {
        ("smic", "negative"): 70,
        ("smic", "positive"): 51,
        ("smic", "surprise"): 43,
        ("casme2", "negative"): 88,
        ("casme2", "positive"): 32,
        ("casme2", "surprise"): 25,
        ("samm", "negative"): 92,
        ("samm", "positive"): 26,
        ("samm", "surprise"): 15,
    }
    subjects = Counter(s.subject.split("/")[0] for s in {s.subject: s for s in scan}.values())
    assert subjects == {"smic": 16, "casme2": 24, "samm": 28}
    kept = {(s.dataset, s.emotion) for s in scan}
    assert (
        not {("casme2", "others"), ("casme2", "fear"), ("casme2", "sadness"), ("samm", "Other")}
        & kept
    )
    assert ("samm", "Fear") in kept  # fear is negative except in CASME II
    assert {s.fps for s in scan if s.dataset == "smic"} == {100.0}

    # the MEGC 2019 protocol over this table: 68 leave-one-subject-out folds, every clip tested once
    names = class_names("megc3", "megc2019")
    split = megc2019_loso(
        np.array([s.subject for s in scan]),
        np.array([s.dataset for s in scan]),
        np.array([names.index(s.label) for s in scan]),
    )
    assert split.n_folds == 68 and sorted(split.fold_names) == sorted({s.subject for s in scan})
    assert (split.test_fold >= 0).all() and np.bincount(split.test_fold).sum() == 442

    native = scan_dataset("megc2019", roots)
    assert len(native) == 442 + 108 + 26
    assert len({s.subject for s in native}) == 16 + 26 + 32
