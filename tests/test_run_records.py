"""Run records are as safe as the features: a flipped bit in any file a record's commit wrote
raises a ``MerPrepError`` on read (and is reported by ``mer-prep verify``) or changes nothing;
a record never reads back as other labels, predictions, seeds or losses.

The records here are built by hand from known values (no training): what is checked is the
storage, not the engine.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from flipped_bits import flip_bits, repository_files
from run_parts import fold_result, run_header
from test_store import make_plan, write_version
from train_helpers import mbcc_train_args

from mer_prep.cli import main
from mer_prep.store import open_store
from mer_prep.train.errors import CorruptRunRecordError
from mer_prep.train.records import EpochLog, combine_folds
from mer_prep.train.runs_store import list_runs, load_run, save_run, verify_runs

CLASSES = ("disgust", "happiness")
# For the tests that train, or run the CLI's train (which asks for PyTorch before anything else);
# the records themselves are stored and read without PyTorch.
needs_torch = pytest.mark.skipif(
    importlib.util.find_spec("torch") is None, reason="needs PyTorch (the train extra)"
)


def known_record(store_path: Path, run_id: str = "r1", *, checkpoint: bytes | None = None):
    """A run record of two folds of five clips with known labels, predictions, seeds, losses."""
    store = open_store(store_path)
    header = run_header(
        run_id,
        {
            "location": "s",
            "version_id": store.version_id,
            "snapshot_id": store.session.snapshot_id,
            "class_names": list(CLASSES),
        },
        2,
        paper="p",
        config={"filters": [8, 16]},
        training={"lr": 0.003, "epochs": 2},
        seed=3,
        code_version="c",
        torch_version="t",
    )
    rng = np.random.default_rng(7)
    folds = []
    for index in range(2):
        proba = rng.random((5, 2)).astype(np.float32)
        folds.append(
            fold_result(
                index,
                f"sub{index}",
                CLASSES,
                np.array([f"casme2/sub{index}/EP{j}" for j in range(5)]),
                np.array([1, 0, 1, 1, 0]),
                proba.argmax(1),
                proba,
                rows=np.arange(5) + 5 * index,
                curves=(
                    EpochLog(1, 0.7 + index, 0.4, 1.5, 1.0, 3),
                    EpochLog(2, 0.5 + index, 0.6, 1.5, 1.0, 3),
                ),
                selection="validation",
                best_epoch=2,
                validation_metric="uf1",
                seed=100 + index,
                info={"test_subjects": [f"sub{index}"]},
                timings={"total_s": 1.0},
                checkpoint=checkpoint,
            )
        )
    return combine_folds(folds, header)


def _same(record, expected) -> bool:
    return (
        record.summary() == expected.summary()
        and record.predictions().equals(expected.predictions())
        and [f.checkpoint for f in record.folds] == [f.checkpoint for f in expected.folds]
    )


def test_every_flipped_bit_in_a_run_record_raises_or_changes_nothing(tmp_path):
    """Single bits flipped at random in the snapshot, manifest, chunk and ref files the record's
    commit wrote: 0 silent differences (before record digests: 2 in 100 flips read back with
    every y_true 0 or another seed, and 2 in 5 raised non-MerPrepError exceptions: exit 70)."""
    store = tmp_path / "s"
    write_version(make_plan(store, n=2))
    before = repository_files(store)
    record = known_record(store, checkpoint=bytes(range(256)) * 4)
    save_run(store, record)
    written = sorted(p for p in repository_files(store) if p not in before)
    assert any("manifests" in str(p) for p in written) and any("refs" in str(p) for p in written)
    assert _same(load_run(store, "r1"), record) and verify_runs(store) == []
    outcomes = flip_bits(
        written, 60, lambda: load_run(store, "r1"), lambda back: _same(back, record)
    )
    assert outcomes["raised"] >= 20 and outcomes["same"] >= 5, outcomes
    assert _same(load_run(store, "r1"), record) and verify_runs(store) == []


def test_a_record_whose_chunk_reference_is_lost_raises_and_verify_reports_it(tmp_path):
    """zarr reads a chunk whose reference is gone as the fill value (every y_true 0): the
    record's digests make that an error for `runs --run`, `runs` and `verify` (exit 3)."""
    import zarr

    from mer_prep.store.repo import open_repository

    store = tmp_path / "s"
    write_version(make_plan(store, n=2))
    save_run(store, known_record(store, "good"))
    save_run(store, known_record(store, "bad"))
    session = open_repository(store).writable_session("runs")
    zarr.open_group(session.store, mode="r+")["runs/bad/y_true"][...] = 0  # ref dropped
    session.commit("lose y_true of run bad")
    with pytest.raises(CorruptRunRecordError, match="run bad: array 'y_true' reads back other"):
        load_run(store, "bad")
    assert load_run(store, "good").folds[0].y_true.tolist() == [1, 0, 1, 1, 0]
    with pytest.raises(CorruptRunRecordError):
        list_runs(store)
    (finding,) = verify_runs(store)
    assert finding.array == "runs/bad" and "y_true" in finding.problem
    for args in (
        ["runs", str(store), "--run", "bad"],
        ["verify", str(store)],
        ["verify", str(store), "--all-versions"],
    ):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 3, (args, result.output)
        assert result.output.count("\n") <= 2 and "run bad" in result.output, result.output


def test_a_changed_attribute_of_a_record_raises(tmp_path):
    """A fold's seed or a loss changed in the record's attributes (what a flipped bit in a
    snapshot did) no longer matches the attributes' digest."""
    import zarr

    from mer_prep.store.repo import open_repository

    store = tmp_path / "s"
    write_version(make_plan(store, n=2))
    save_run(store, known_record(store))
    session = open_repository(store).writable_session("runs")
    group = zarr.open_group(session.store, mode="r+")["runs/r1"]
    folds = group.attrs["folds"]
    folds[1]["seed"] = 102
    group.attrs["folds"] = folds
    session.commit("change a fold's seed")
    with pytest.raises(CorruptRunRecordError, match="attributes do not match their digest"):
        load_run(store, "r1")


# --- a store location that is not a store: each command one line, exit 2 --------------------------


@needs_torch
def test_a_regular_file_as_the_store_is_one_line_exit_2(tmp_path):
    file = tmp_path / "store.txt"
    file.write_text("not a store")
    for command in (
        ["train", str(file), "--model", "mbcc"],
        ["runs", str(file)],
        ["verify", str(file)],
    ):
        result = CliRunner().invoke(main, command)
        assert result.exit_code == 2, (command, result.output)
        assert (
            result.output.strip() == f"error: store location {file} is a file, not a store "
            f"directory"
        ), result.output


# --- stores that cannot give a score, NaN, where the record says the store is ------------------

QUICK_MBCC = {
    "variant": "difference",
    "config": {"filters": (8, 16), "dense": 32},
    "epochs": 2,
    "batch_size": 4,
    "selection": "last_epoch",
}


def _tiny_store(
    path: Path, monkeypatch, *, n: int = 6, nan_row: int | None = None, failed=(), labels=None
) -> Path:
    """n samples of 3 subjects, random frames (row ``nan_row`` with one NaN pixel), labels
    alternating between two classes unless ``labels`` (a class name per sample) is given."""
    import test_store

    def arrays(i):
        rng = np.random.default_rng(i)
        values = {
            "frames": rng.random((2, 64, 64)).astype(np.float16),
            "landmarks": rng.random((68, 2)).astype(np.float32),
        }
        if i == nan_row:
            values["frames"][1, 3, 3] = np.nan
        return values

    monkeypatch.setattr(test_store, "sample_arrays", arrays)
    plan = make_plan(path, n=n)
    if labels is not None:
        import dataclasses

        plan = dataclasses.replace(
            plan,
            samples=[
                dataclasses.replace(s, label=label, emotion=label)
                for s, label in zip(plan.samples, labels, strict=True)
            ],
        )
    write_version(plan, failed=failed)
    return path


def _train_cli(path, *args):
    quick = "--epochs 2 --batch-size 4 --selection last_epoch --quiet".split()
    return CliRunner().invoke(main, mbcc_train_args(path, *quick, *args))


@needs_torch
def test_a_nan_sample_stops_the_run_naming_it_and_nothing_is_recorded(tmp_path, monkeypatch):
    """Before: NaN losses and predictions, exit 0 and a UF1 on the leaderboard."""
    path = _tiny_store(tmp_path / "s", monkeypatch, nan_row=4)
    result = _train_cli(path)
    assert result.exit_code == 2, result.output
    assert result.output.count("\n") == 1, result.output
    assert "array 'frames', sample casme2/sub02/EP04_01 (row 4) holds 1 NaN" in result.output
    assert list_runs(path) == []


@needs_torch
def test_a_diverging_training_stops_at_the_epoch_and_nothing_is_recorded(tmp_path, monkeypatch):
    """A finite but absurd lr (1e30) makes the loss NaN in epoch 2: the fold stops there."""
    from mer_prep.train import train
    from mer_prep.train.errors import NonFiniteError

    path = _tiny_store(tmp_path / "s", monkeypatch)
    with pytest.raises(NonFiniteError, match=r"fold casme2/sub01, epoch \d: the training loss"):
        train(path, "mbcc", lr=1e30, **QUICK_MBCC)
    assert list_runs(path) == []


@needs_torch
def test_stores_that_cannot_give_a_score_are_refused(tmp_path, monkeypatch):
    """Every sample failed (before: exit 0, a record of 0 folds); one class (before: UF1
    1.000); megc2019 on a CASME II store (before: LOSO recorded as "megc2019")."""
    failed = _tiny_store(tmp_path / "failed", monkeypatch, n=3, failed=(0, 1, 2))
    result = _train_cli(failed)
    assert result.exit_code == 2 and "holds no processed sample" in result.output, result.output
    one = _tiny_store(tmp_path / "one", monkeypatch, labels=["happiness"] * 6)
    result = _train_cli(one)
    assert result.exit_code == 2 and "1 class(es) (happiness)" in result.output, result.output
    casme2 = _tiny_store(tmp_path / "casme2", monkeypatch)
    result = _train_cli(casme2, "--split", "megc2019")
    assert result.exit_code == 2, result.output
    assert "holds casme2 under the native labels (no smic, samm)" in result.output
    for path in (failed, one, casme2):
        assert list_runs(path) == []
        assert result.output.count("\n") == 1


@needs_torch
def test_the_record_names_the_store_relative_or_under_home_never_the_user(tmp_path, monkeypatch):
    from mer_prep.train import plan_run
    from mer_prep.train.preflight import portable_location

    home = tmp_path / "home" / "someone"
    path = _tiny_store(home / "stores" / "s", monkeypatch)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)
    assert plan_run(path, "mbcc", **QUICK_MBCC).header.store["location"] == "~/stores/s"
    monkeypatch.chdir(home / "stores")
    assert plan_run(path, "mbcc", **QUICK_MBCC).header.store["location"] == "s"
    assert portable_location("s3://bucket/x") == "s3://bucket/x"
    assert portable_location("/srv/stores/s") == "/srv/stores/s"


@needs_torch
def test_a_store_that_cannot_record_refuses_first_and_a_failed_save_keeps_the_results(
    tmp_path, monkeypatch
):
    """Before: training ran to the end, then exit 70 while saving, results lost. A store whose
    repository cannot be written to (here its ``transactions`` folder is a file: tests run as
    root, for whom a read-only folder is writable) refuses before the first fold; a commit that
    fails after training keeps the results beside the cache and says where."""
    from mer_prep.train import plan as plan_module
    from mer_prep.train import sequence as sequence_module
    from mer_prep.train import train
    from mer_prep.train.errors import RunRecordError

    monkeypatch.setenv("MER_PREP_CACHE", str(tmp_path / "cache" / "arrays"))
    path = _tiny_store(tmp_path / "s", monkeypatch)
    save_run(path, known_record(path))  # the runs branch exists
    transactions = path / "transactions"
    moved = tmp_path / "transactions"
    transactions.rename(moved)
    transactions.write_text("in the way")
    trained, real_run_folds = [], plan_module.run_folds
    monkeypatch.setattr(
        plan_module, "run_folds", lambda *a, **k: trained.append(1) or real_run_folds(*a, **k)
    )
    with pytest.raises(RunRecordError, match="cannot record a run"):
        train(path, "mbcc", **QUICK_MBCC)
    assert trained == []
    transactions.unlink()
    moved.rename(transactions)

    real_check = sequence_module.check_writable
    monkeypatch.setattr(
        sequence_module,
        "check_writable",
        lambda store: (real_check(store), transactions.rename(moved), transactions.write_text("x")),
    )
    with pytest.raises(RunRecordError, match="its results are kept in") as caught:
        train(path, "mbcc", **QUICK_MBCC)
    kept = Path(str(caught.value).rsplit(" in ", 1)[1])
    assert kept.parent == tmp_path / "cache" / "unsaved-runs"
    import json

    body = json.loads(kept.read_text())
    assert len(body["folds"]) == 3 and len(body["predictions"]["y_true"]) == 6
    assert sorted(body["predictions"]["sample_id"]) == sorted(open_store(path).table["sample_id"])


def test_verify_reports_a_sample_with_non_finite_features(tmp_path, monkeypatch):
    """Its chunk and checksums are intact (the NaN was written as data): verify still names the
    array and sample, since training on it gives NaN losses."""
    from mer_prep.store.verify import verify_store

    path = _tiny_store(tmp_path / "s", monkeypatch, nan_row=4)
    (finding,) = verify_store(path)
    assert (finding.array, finding.row, finding.sample_id) == ("frames", 4, "casme2/sub02/EP04_01")
    assert "1 NaN/infinite value(s)" in finding.problem
    result = CliRunner().invoke(main, ["verify", str(path)])
    assert result.exit_code == 3 and "frames row 4 (casme2/sub02/EP04_01)" in result.output
