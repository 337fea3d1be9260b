"""One-line failures: a missing array or fold is a ``MerPrepError`` naming what there is, the
CLI says so in one line with its class's exit code, and a closed pipe ends it quietly."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from test_store import make_plan, write_version

from mer_prep.cli import main
from mer_prep.errors import EXIT_STORE, ArrayNotFoundError, InvalidArgumentError, MerPrepError
from mer_prep.store import open_store

try:  # PyTorch loads at collection, not inside a test
    import mer_prep.store.torch_dataset  # noqa: F401
except (ImportError, MerPrepError):
    pass


@pytest.fixture(scope="module")
def store_path(tmp_path_factory) -> str:
    """Six samples over three subjects with frames and landmarks only (no flow)."""
    path = str(tmp_path_factory.mktemp("one_line") / "store")
    write_version(make_plan(path, n=6))
    return path


def test_an_array_the_store_does_not_hold_is_named_with_those_it_does(store_path):
    store = open_store(store_path)
    for read in (
        lambda: store.array("flow"),
        lambda: store.dask("flow"),
        lambda: store.sample(0, ["frames", "flow"]),
        lambda: store.row_reader("flow"),
    ):
        with pytest.raises(ArrayNotFoundError) as error:
            read()
        assert str(error.value) == (
            f"store {store_path}: version {store.version_id} has no "
            f"array 'flow' (it stores frames, landmarks)"
        )
    assert store.array("frames").shape == (6, 2, 64, 64)  # what is there still reads


def test_a_fold_the_split_does_not_have_is_named_with_those_it_does(store_path):
    pytest.importorskip("torch")
    store = open_store(store_path)
    names = [name for name, *_ in store.folds("loso")]
    assert len(names) == 3
    for fold in (3, -1, "casme2/sub09", True, 1.0):
        with pytest.raises(
            InvalidArgumentError,
            match=(
                rf"split 'loso' has no fold {fold!r}: its 3 folds are 0\.\.2 by index or by "
                rf"name \({names[0]}, {names[1]}, {names[2]}\)"
            ),
        ):
            store.to_torch(fold, arrays=["frames"])
    assert len(store.to_torch(names[1], arrays=["frames"])) == len(
        store.to_torch(1, arrays=["frames"])
    )


def test_split_smote_on_an_array_the_store_lacks_is_one_line_exit_3(store_path):
    result = CliRunner().invoke(
        main, ["split", store_path, "--kind", "group_kfold", "--folds", "3", "--smote", "flow"]
    )
    assert result.exit_code == EXIT_STORE, result.output
    assert result.stderr.splitlines() == [
        f"error: store {store_path}: version {open_store(store_path).version_id} has no array "
        f"'flow' (it stores frames, landmarks)"
    ]
    assert open_store(store_path).split_names == []  # nothing was committed


def test_a_missing_annotation_sheet_is_found_before_a_run_starts(tmp_path):
    """The sheet is looked for with the roots: one line, exit 2, no Prefect home made."""
    for name in ("SAMM", "CASME2", "SMIC"):
        (tmp_path / name).mkdir()
    home = tmp_path / "home"
    result = CliRunner().invoke(
        main, ["run", "samm", "--root", str(tmp_path / "SAMM"), "--home", str(home)]
    )
    assert (result.exit_code, result.stderr.splitlines()) == (
        2,
        [
            f"error: {tmp_path / 'SAMM' / 'SAMM_Micro_FACS_Codes*.xlsx'}: no SAMM FACS-codes "
            f"spreadsheet found"
        ],
    )
    # a composite checks each of its parts (smic reads no sheet: its folders are its labels)
    result = CliRunner().invoke(
        main,
        [
            "run",
            "megc2019",
            "--root",
            f"smic={tmp_path / 'SMIC'}",
            "--root",
            f"casme2={tmp_path / 'CASME2'}",
            "--root",
            f"samm={tmp_path / 'SAMM'}",
            "--home",
            str(home),
        ],
    )
    assert (result.exit_code, result.stderr.splitlines()) == (
        2,
        [
            f"error: {tmp_path / 'CASME2' / 'CASME2-coding-*.xlsx'}: no CASME II coding "
            f"spreadsheet found"
        ],
    )
    assert not home.exists()
