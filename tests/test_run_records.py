"""Run records are as safe as the features: a flipped bit in any file a record's commit wrote
raises a ``MerPrepError`` on read (and is reported by ``mer-prep verify``) or changes nothing;
a record never reads back as other labels, predictions, seeds or losses.

The records here are built by hand from known values (no training): what is checked is the
storage, not the engine.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from test_store import make_plan, write_version

from mer_prep.cli import main
from mer_prep.errors import MerPrepError
from mer_prep.store import open_store
from mer_prep.train.errors import CorruptRunRecordError
from mer_prep.train.records import EpochLog, FoldResult, RunHeader, combine_folds
from mer_prep.train.runs_store import list_runs, load_run, save_run, verify_runs

CLASSES = ("disgust", "happiness")
REPOSITORY_DIRS = ("snapshots", "manifests", "chunks", "refs", "transactions")


def _files(store: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for sub in REPOSITORY_DIRS for p in (store / sub).rglob("*")
            if p.is_file()}


def known_record(store_path: Path, run_id: str = "r1", *, checkpoint: bytes | None = None):
    """A run record of two folds of five clips with known labels, predictions, seeds, losses."""
    store = open_store(store_path)
    header = RunHeader(
        run_id=run_id, created="2026-01-01T00:00:00+00:00", model="mbcc", paper="p",
        variant="difference", config={"filters": [8, 16]}, training={"lr": 0.003, "epochs": 2},
        unit="clip", aggregation="clip", split="loso", split_kind="loso", leaky=False,
        store={"location": "s", "version_id": store.version_id,
               "snapshot_id": store.session.snapshot_id, "class_names": list(CLASSES)},
        seed=3, code_version="c", device="cpu", torch_version="t", n_folds=2)
    rng = np.random.default_rng(7)
    folds = []
    for index in range(2):
        proba = rng.random((5, 2)).astype(np.float32)
        folds.append(FoldResult(
            index=index, name=f"sub{index}", class_names=CLASSES, rows=np.arange(5) + 5 * index,
            sample_ids=np.array([f"casme2/sub{index}/EP{j}" for j in range(5)]),
            y_true=np.array([1, 0, 1, 1, 0]), y_pred=proba.argmax(1), proba=proba,
            curves=(EpochLog(1, 0.7 + index, 0.4, 1.5, 1.0, 3),
                    EpochLog(2, 0.5 + index, 0.6, 1.5, 1.0, 3)),
            selection="validation", best_epoch=2, validation_metric="uf1", seed=100 + index,
            info={"test_subjects": [f"sub{index}"]}, timings={"total_s": 1.0},
            checkpoint=checkpoint))
    return combine_folds(folds, header)


def _same(record, expected) -> bool:
    return (record.summary() == expected.summary()
            and record.predictions().equals(expected.predictions())
            and [f.checkpoint for f in record.folds] == [f.checkpoint for f in expected.folds])


def test_every_flipped_bit_in_a_run_record_raises_or_changes_nothing(tmp_path):
    """Single bits flipped at random in the snapshot, manifest, chunk and ref files the record's
    commit wrote: 0 silent differences (before record digests: 2 in 100 flips read back with
    every y_true 0 or another seed, and 2 in 5 raised non-MerPrepError exceptions: exit 70)."""
    store = tmp_path / "s"
    write_version(make_plan(store, n=2))
    before = _files(store)
    record = known_record(store, checkpoint=bytes(range(256)) * 4)
    save_run(store, record)
    written = sorted(p for p in _files(store) if p not in before)
    assert any("manifests" in str(p) for p in written) and any("refs" in str(p) for p in written)
    assert _same(load_run(store, "r1"), record) and verify_runs(store) == []
    rng = np.random.default_rng(0)
    outcomes = {"raised": 0, "same": 0}
    for flip in range(60):
        path = written[flip % len(written)]
        original = path.read_bytes()
        damaged = bytearray(original)
        bit = int(rng.integers(0, 8 * len(original)))
        damaged[bit // 8] ^= 1 << (bit % 8)
        path.write_bytes(bytes(damaged))
        try:
            back = load_run(store, "r1")
        except MerPrepError:
            outcomes["raised"] += 1
        else:
            assert _same(back, record), (path.relative_to(store), bit)  # never silently other
            outcomes["same"] += 1
        path.write_bytes(original)
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
    for args in (["runs", str(store), "--run", "bad"], ["verify", str(store)],
                 ["verify", str(store), "--all-versions"]):
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
