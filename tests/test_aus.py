"""Action-unit strings of every dataset in one normal form; AU targets and their scores."""

from __future__ import annotations

import numpy as np
import pytest

from mer_prep.datasets.aus import AUCode, au_matrix, parse_aus
from mer_prep.errors import InvalidArgumentError
from mer_prep.evaluation.metrics import au_counts, au_scores, macro_f1, per_au_f1, pooled_au_counts
from mer_prep.labels import au_set
from mer_prep.sample import Sample

# (cell as a dataset writes it, AU numbers, certain AUs, alternatives, descriptors, normal form)
REAL_STRINGS = [
    # CAS(ME)^3 Part A: laterality, T(op) lip, + joins
    ("R12", (12,), (12,), (), (), "R12"),
    ("T28+14", (14, 28), (14, 28), (), (), "T28+14"),
    ("4+R2", (2, 4), (2, 4), (), (), "4+R2"),
    ("4", (4,), (4,), (), (), "4"),
    # undecided intensity, decided intensity
    ("4(B/C)+7B", (4, 7), (4, 7), (), (), "4(B/C)+7B"),
    # SAMM: alternatives with "or"
    ("L12 or 14", (12, 14), (), ((12, 14),), (), "L12|14"),
    ("R14 or 14", (14,), (14,), (), (), "R14|14"),
    ("4+L12 or 14", (4, 12, 14), (4,), ((12, 14),), (), "4+L12|14"),
    ("12/14", (12, 14), (), ((12, 14),), (), "12|14"),
    # 4DME: AU prefix and (k) marks
    ("AU1+2(k)", (1, 2), (1, 2), (), (), "1+2(k)"),
    ("AU1(k)+AU2(k)", (1, 2), (1, 2), (), (), "1(k)+2(k)"),
    # DFME: action descriptors are recorded, not AUs
    ("R4+AD38", (4,), (4,), (), ("AD38",), "R4+AD38"),
    # CAS(ME)^3 Part C: commas, once a full-width one
    ("4，11", (4, 11), (4, 11), (), (), "4+11"),
    ("4,11", (4, 11), (4, 11), (), (), "4+11"),
    # CASME II / SAMM styles of the synthetic sheets, and intensity letters
    ("6+12", (6, 12), (6, 12), (), (), "6+12"),
    ("1+2+L10", (1, 2, 10), (1, 2, 10), (), (), "1+2+L10"),
    ("R20B+R14B", (14, 20), (14, 20), (), (), "R20B+R14B"),
    ("AU 12 + AU 14", (12, 14), (12, 14), (), (), "12+14"),
    # numbers from a numeric cell, and the spellings of "nothing coded"
    (4.0, (4,), (4,), (), (), "4"),
    (None, (), (), (), (), ""),
    ("/", (), (), (), (), ""),
    ("?", (), (), (), (), ""),
]


@pytest.mark.parametrize("cell, numbers, certain, alternatives, descriptors, normal", REAL_STRINGS)
def test_au_strings_of_every_dataset(
    cell, numbers, certain, alternatives, descriptors, normal
) -> None:
    parsed = parse_aus(cell)
    assert parsed.numbers == numbers
    assert parsed.certain == certain
    assert parsed.alternatives == alternatives
    assert parsed.descriptors == descriptors
    assert parsed.normal == normal
    assert parsed.unparsed == ()


def test_marks_are_recorded_on_the_codes() -> None:
    codes = parse_aus("4(B/C)+7B+R12+T28+AU2(k)+A1+AD38").codes
    assert codes == (
        AUCode(4, intensity="B/C"),
        AUCode(7, intensity="B"),
        AUCode(12, side="R"),
        AUCode(28, side="T"),
        AUCode(2, marks=("k",)),
        AUCode(1, side="A"),
        AUCode(38, descriptor=True),
    )
    assert parse_aus("B28").codes == (AUCode(28, side="B"),)  # bottom lip, not an intensity
    assert parse_aus("12?").codes[0].marks == ("?",)


def test_unparsable_tokens_are_kept_not_guessed() -> None:
    parsed = parse_aus("4+smile+R12")
    assert parsed.numbers == (4, 12) and parsed.unparsed == ("smile",)


def test_au_matrix_from_samples_and_strings() -> None:
    cross12 = au_set("cross12")
    assert cross12 == (1, 2, 4, 5, 6, 7, 9, 10, 12, 14, 15, 17)
    sample = Sample(
        "samm",
        "samm/006",
        "006_1_1",
        (),
        (),
        0,
        None,
        1,
        200.0,
        "Anger",
        action_units="L12 or 14",
        aus=(12, 14),
    )
    matrix = au_matrix([sample, "R4+AD38", "T28+14", "AU1+2(k)"], "cross12")
    assert matrix.dtype == bool and matrix.shape == (4, 12)
    columns = dict(zip(cross12, matrix.T, strict=True))
    assert columns[12].tolist() == [True, False, False, False]
    assert columns[14].tolist() == [True, False, True, False]
    assert columns[4].tolist() == [False, True, False, False]  # AD38 is no AU; AU28 not in the set
    assert matrix[3].nonzero()[0].tolist() == [0, 1]
    assert au_matrix(["AU12"], ["AU12", 14]).tolist() == [[True, False]]
    assert au_matrix([], [1, 2]).shape == (0, 2)
    with pytest.raises(InvalidArgumentError, match="twice"):
        au_matrix(["1"], [1, "AU1"])


def test_per_au_f1_and_macro_f1_pool_counts_over_folds() -> None:
    t1 = np.array([[1, 0, 0], [1, 1, 0]], bool)
    p1 = np.array([[1, 0, 0], [0, 1, 0]], bool)
    t2 = np.array([[0, 1, 0]], bool)
    p2 = np.array([[1, 1, 0]], bool)
    counts = pooled_au_counts([(t1, p1), (t2, p2)])
    assert counts.tolist() == [[1, 1, 1], [2, 0, 0], [0, 0, 0]]
    f1 = per_au_f1(counts)
    assert f1[0] == pytest.approx(0.5) and f1[1] == 1.0 and np.isnan(f1[2])  # AU never in play
    assert macro_f1(counts) == pytest.approx(0.75)
    assert per_au_f1(t1, p1)[0] == pytest.approx(2 / 3)
    scores = au_scores(counts, au_names=[1, 2, 4])
    assert scores["per_au_f1"] == {"AU1": 0.5, "AU2": 1.0, "AU4": None}
    assert scores["support"] == {"AU1": 2, "AU2": 2, "AU4": 0} and scores[
        "macro_f1"
    ] == pytest.approx(0.75)
    assert au_counts(t1, p1).shape == (3, 3)
    with pytest.raises(InvalidArgumentError):
        au_counts(t1, p2)
