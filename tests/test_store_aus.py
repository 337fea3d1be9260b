"""Issue 15, the store side: action units as stored targets (``aus``, ``au_list``, the torch
``target="aus"``), DFME's ``partition`` column (``dfme_official`` on a store), annotation
corrections recorded with the version (and in its input fingerprint), failure kinds in the
reader and ``mer-prep info``, a ``uint16`` (depth) array, and stores written before all that.

Stores are written in-process through the library (as the flow wires it), on small synthetic
look-alikes generated once per session.
"""

from __future__ import annotations

import dataclasses
import json
import pickle

import numpy as np
import pytest
import zarr
from click.testing import CliRunner
from recipe_variants import mbcc64_augmented
from test_store import fake_plan, fake_sample, sample_arrays

from mer_prep.cli import main
from mer_prep.datasets import scan_dataset
from mer_prep.datasets.aus import au_matrix, au_numbers
from mer_prep.errors import InvalidArgumentError, SchemaError
from mer_prep.evaluation.metrics import au_scores, macro_f1, per_au_f1, pooled_au_counts
from mer_prep.evaluation.splits import TRAIN_ONLY, build_split
from mer_prep.labels import au_set
from mer_prep.pipeline.planning import plan_version
from mer_prep.recipes import ArraySpec, load_recipe
from mer_prep.sample import Failure, Problem
from mer_prep.store import open_store
from mer_prep.store.repo import MAIN, StoreLocation, open_repository
from mer_prep.store.schema import validate_attrs, validate_group
from mer_prep.store.table import sample_row
from mer_prep.store.versions import VersionPlan, store_au_list
from mer_prep.store.writer import SampleWriter, VersionWriter

SMALL = {"n_subjects": 3, "clips_per_subject": 2, "size": (240, 320), "n_frames": 12, "seed": 1}


def _commit(dataset, root, store_path, recipe=None, **options):
    """One version through the library (``recipe``, or mbcc64 with one augmented copy per clip:
    2 rows per sample); the plan."""
    from mer_prep.pipeline.local import commit_version

    return commit_version(dataset, root, recipe or mbcc64_augmented(), store_path, **options)[0]


@pytest.fixture(scope="module")
def casme2(tmp_path_factory, synth_dataset):
    root, _ = synth_dataset("casme2", **SMALL)
    path = tmp_path_factory.mktemp("aus") / "store"
    plan = _commit("casme2", root, path)
    return {"root": root, "path": path, "plan": plan}


# --- action units --------------------------------------------------------------------------------


def test_scanned_samples_carry_parsed_aus(casme2):
    samples = scan_dataset("casme2", casme2["root"]).samples
    assert samples and all(s.aus for s in samples)
    assert all(s.aus == au_numbers(s.action_units) for s in samples)


def test_store_aus_are_the_scanned_samples_au_matrix(casme2):
    store = open_store(casme2["path"])
    scanned = {s.sample_id: s for s in scan_dataset("casme2", casme2["root"]).samples}
    assert store.au_list == store_au_list(list(scanned.values()))
    assert store.au_list[:12] == list(au_set("cross12"))  # cross-dataset columns first
    parents = [
        p or s for s, p in zip(store.table["sample_id"], store.table["aug_parent"], strict=True)
    ]
    expected = au_matrix([scanned[p] for p in parents], store.au_list)
    assert store.aus.dtype == bool and store.aus.shape == (len(store.table), len(store.au_list))
    np.testing.assert_array_equal(store.aus, expected)
    assert store.aus.any(axis=1).all()
    # the table keeps the raw AU text; augmented copies take their parent's row
    assert list(store.table["action_units"]) == [scanned[p].action_units for p in parents]
    copies = np.flatnonzero(store.parents >= 0)
    assert copies.size == len(scanned)
    np.testing.assert_array_equal(store.aus[copies], store.aus[store.parents[copies]])
    dataset = store.xarray()  # the same targets, labelled, beside the arrays
    assert dataset["aus"].dims == ("sample", "au") and list(dataset["au"]) == store.au_list
    np.testing.assert_array_equal(dataset["aus"].values, store.aus)
    assert list(dataset["sample_id"].values) == list(store.table["sample_id"])
    assert store.attrs["au_list"] == store.au_list


def test_to_torch_gives_multi_hot_au_targets(casme2):
    pytest.importorskip("torch")
    import torch

    store = open_store(casme2["path"])
    n_aus = len(store.au_list)
    data = store.to_torch(0, part="train", arrays=["frames"], target="aus")
    item = data[0]
    assert item["label"].dtype == torch.float32 and tuple(item["label"].shape) == (n_aus,)
    for index in range(len(data)):
        row = data[index]["row"]
        np.testing.assert_array_equal(
            data[index]["label"].numpy(), store.aus[row].astype(np.float32)
        )
    batch = next(iter(store.loader(0, part="test", arrays=["frames"], target="aus", batch_size=4)))
    assert batch["label"].dtype == torch.float32 and batch["label"].shape[1] == n_aus
    classes = store.to_torch(0, part="train", arrays=["frames"])  # the default: class index
    assert classes[0]["label"].dtype == torch.int64 and classes[0]["label"].ndim == 0
    with pytest.raises(InvalidArgumentError, match="SMOTE"):
        store.to_torch(0, target="aus", balance="smote")
    with pytest.raises(InvalidArgumentError, match="target"):
        store.to_torch(0, target="emotion")


def test_a_perfect_au_predictor_scores_one(casme2):
    store = open_store(casme2["path"])
    folds = [(store.aus[test], store.aus[test].copy()) for _, _, test, _ in store.folds("loso")]
    counts = pooled_au_counts(folds)
    f1 = per_au_f1(counts)
    present = store.aus.any(axis=0)
    np.testing.assert_array_equal(f1[present], 1.0)
    assert np.isnan(f1[~present]).all()
    assert macro_f1(counts) == 1.0 and macro_f1(store.aus, store.aus) == 1.0
    scores = au_scores(counts, au_names=store.au_list)
    assert scores["macro_f1"] == 1.0 and set(scores["per_au_f1"]) == {
        f"AU{a}" for a in store.au_list
    }


def test_info_prints_au_counts(casme2):
    result = CliRunner().invoke(main, ["info", str(casme2["path"])])
    assert result.exit_code == 0, result.output
    assert f"action units: {len(open_store(casme2['path']).au_list)} columns" in result.output


def test_the_writer_refuses_an_aus_array_that_does_not_fit(tmp_path, monkeypatch):
    plan = _fake_plan(tmp_path / "s", n=3)
    monkeypatch.setattr(VersionPlan, "au_rows", lambda _self, rows: np.zeros((len(rows), 2), bool))
    with pytest.raises(SchemaError, match="aus"):
        _write_fake(plan)


# --- DFME's partition ---------------------------------------------------------------------------


def test_dfme_official_split_on_a_dfme_store(tmp_path, synth_dataset):
    root, _ = synth_dataset("dfme", **SMALL)
    plan = _commit("dfme", root, tmp_path / "dfme")
    store = open_store(tmp_path / "dfme")
    assert store.attrs["dataset"] == "dfme"
    by_id = {s.sample_id: s.partition for s in plan.samples}
    assert set(by_id.values()) == {"train", "testA", "testB"}
    parents = [
        p or s for s, p in zip(store.table["sample_id"], store.table["aug_parent"], strict=True)
    ]
    assert list(store.table["partition"]) == [by_id[p] for p in parents]
    split = build_split(store.table, "dfme_official")
    train = store.table["partition"].to_numpy() == "train"
    assert (split.test_fold[train] == TRAIN_ONLY).all() and (split.test_fold[~train] == 0).all()
    ((_, fit, test),) = split.folds()
    assert set(store.table["partition"][test]) == {"testA", "testB"}
    assert set(store.table["subject"][fit]).isdisjoint(store.table["subject"][test])
    assert store.aus.shape[1] >= 12  # DFME codes AUs too (AD codes are not AUs)


def test_partition_is_blank_without_one(casme2):
    assert set(open_store(casme2["path"]).table["partition"]) == {""}


def test_a_moved_partition_changes_the_sample_fingerprint():
    from mer_prep.pipeline.fingerprint import sample_fingerprint

    sample = dataclasses.replace(
        _fake_samples(1)[0], frame_paths=tuple(f"/nowhere/img{i}.jpg" for i in range(1, 11))
    )
    recipe = load_recipe("mbcc64")
    train = dataclasses.replace(sample, partition="train")
    assert sample_fingerprint(train, recipe) != sample_fingerprint(
        dataclasses.replace(sample, partition="testA"), recipe
    )


# --- corrections --------------------------------------------------------------------------------


def _corrections_file(root, lines):
    path = root / "my_fixes.yaml"
    path.write_text("corrections:\n" + "".join(f"  - {line}\n" for line in lines))
    return path


def test_corrections_are_recorded_root_relative_and_listed(tmp_path, synth_dataset):
    root, _ = synth_dataset("casme2", copy_to=tmp_path / "data", **SMALL)
    first = min(scan_dataset("casme2", root).samples, key=lambda s: s.sample_id)
    new = "4+7" if first.action_units != "4+7" else "1+2"
    fixes = _corrections_file(
        root,
        [
            (
                f"{{sample: {first.sample_id}, field: aus, old: '{first.action_units}', "
                f"new: '{new}', reason: recoded}}"
            ),
            "{sample: casme2/sub09/EP09_09, field: apex, old: '', new: 5, reason: not here}",
        ],
    )
    _commit("casme2", root, tmp_path / "store", corrections=str(fixes))
    store = open_store(tmp_path / "store")
    applied, unused = store.attrs["corrections"]
    assert (applied["sample"], applied["field"], applied["status"]) == (
        first.sample_id,
        "aus",
        "applied",
    )
    assert applied["file"] == "my_fixes.yaml" and unused["status"] == "unused"
    assert applied["where"].startswith("CASME2-coding") and ":" in applied["where"]
    assert str(root) not in json.dumps(store.attrs["corrections"])
    # the corrected AU cell is what the row and the aus targets hold
    row = store.table.index[store.table["sample_id"] == first.sample_id][0]
    assert store.table.loc[row, "action_units"] == new
    np.testing.assert_array_equal(store.aus[row], au_matrix([new], store.au_list)[0])
    result = CliRunner().invoke(main, ["info", str(tmp_path / "store")])
    assert result.exit_code == 0, result.output
    assert "annotation corrections: 2" in result.output
    assert (
        f"{first.sample_id} aus:" in result.output and "[applied] at CASME2-coding" in result.output
    )


def test_corrections_enter_the_input_fingerprint(tmp_path, synth_dataset):
    """A correction the sheet already holds changes no sample, yet the version records it."""
    root, _ = synth_dataset("casme2", copy_to=tmp_path / "data", **SMALL)
    first = min(scan_dataset("casme2", root).samples, key=lambda s: s.sample_id)
    recipe = load_recipe("mbcc64")
    plain = plan_version("casme2", root, recipe, tmp_path / "s")
    fixes = _corrections_file(
        root,
        [
            (
                f"{{sample: {first.sample_id}, field: onset, old: 99, "
                f"new: {first.onset}, reason: earlier sheet}}"
            )
        ],
    )
    already = plan_version("casme2", root, recipe, tmp_path / "s", corrections=str(fixes))
    assert [c.status for c in already.corrections] == ["already"]
    assert already.fingerprints == plain.fingerprints
    assert already.input_fingerprint != plain.input_fingerprint
    again = plan_version("casme2", root, recipe, tmp_path / "s", corrections=str(fixes))
    assert again.input_fingerprint == already.input_fingerprint


def test_packaged_corrections_files_are_named_from_the_package():
    from mer_prep.datasets.corrections import CorrectionRecord, packaged_file
    from mer_prep.pipeline.planning import _relative_to_roots
    from mer_prep.sample import DatasetScan

    record = CorrectionRecord(
        "casme1/sub01/EP01_1", "onset", 1, 2, "", str(packaged_file("casme1")), "unused"
    )
    (kept,) = _relative_to_roots(DatasetScan([], [], [record]), "/data/CASME").corrections
    assert kept.file == "mer_prep/datasets/casme1_corrections.yaml"


def test_the_schema_checks_correction_records():
    attrs = _valid_attrs()
    validate_attrs(
        {
            **attrs,
            "corrections": [
                {"sample": "a/b/c", "field": "onset", "old": 1, "new": 2, "status": "applied"}
            ],
        }
    )
    with pytest.raises(SchemaError, match="corrections"):
        validate_attrs(
            {
                **attrs,
                "corrections": [
                    {"sample": "a/b/c", "field": "onset", "old": 1, "new": 2, "status": "maybe"}
                ],
            }
        )
    with pytest.raises(SchemaError, match="au_list"):
        validate_attrs({**attrs, "au_list": [1, 1]})


# --- failure kinds ------------------------------------------------------------------------------


def test_failures_carry_their_kind_in_the_reader_and_info(tmp_path):
    plan = _fake_plan(tmp_path / "s", n=3)
    _write_fake(plan)
    store = open_store(tmp_path / "s")
    assert list(store.failures.columns) == ["sample_id", "file", "stage", "message", "kind"]
    assert list(store.failures["kind"]) == ["permanent"]
    result = CliRunner().invoke(main, ["info", str(tmp_path / "s")])
    assert "casme2/sub09/EP99 [scan, permanent]" in result.output


# --- depth (uint16) -----------------------------------------------------------------------------


class _DepthPlan(VersionPlan):
    @property
    def arrays(self):
        return {**super().arrays, "depth": ArraySpec(("frame", "y", "x"), (2, 64, 64), "uint16")}


def test_a_uint16_depth_array_is_stored_and_read_back(tmp_path):
    plan = _fake_plan(tmp_path / "s", n=2, cls=_DepthPlan)
    _write_fake(plan, extra=lambda i: {"depth": np.full((2, 64, 64), 1000 + i, np.uint16)})
    store = open_store(tmp_path / "s")
    assert store.attrs["arrays"]["depth"]["dtype"] == "uint16"
    depth = store.array("depth")
    assert depth.dtype == np.uint16 and depth[:, 0, 0, 0].tolist() == [1000, 1001]
    validate_group(store.group)


# --- stores written before issue 15 -------------------------------------------------------------


def test_a_store_written_before_opens_and_derives_its_aus(tmp_path):
    """A store without ``aus``, ``au_list``, ``corrections``, the ``partition`` column and
    failure kinds (made by removing them from a fresh one) opens; AUs come from its table."""
    plan = _fake_plan(tmp_path / "s", n=4)
    _write_fake(plan)
    fresh = open_store(tmp_path / "s")
    expected_aus, expected_list = fresh.aus.copy(), fresh.au_list
    repo = open_repository(StoreLocation.parse(tmp_path / "s"))
    session = repo.writable_session(MAIN)
    root = zarr.open_group(session.store, mode="r+")
    del root["aus"]
    del root["samples"]["partition"]
    del root["samples"]["content_crc32c"]
    attrs = dict(root.attrs)
    for key in ("au_list", "corrections", "attrs_digest", "table_digest"):
        attrs.pop(key)
    attrs["table_columns"] = {
        k: v for k, v in attrs["table_columns"].items() if k not in ("partition", "content_crc32c")
    }
    attrs["failures"] = [{k: v for k, v in f.items() if k != "kind"} for f in attrs["failures"]]
    root.attrs.put(attrs)
    session.commit("as written before issue 15")
    old = open_store(tmp_path / "s")
    validate_attrs(dict(old.attrs))  # the new attributes are optional
    assert "partition" not in old.table.columns and len(old.table) == 4
    assert old.au_list == expected_list
    np.testing.assert_array_equal(old.aus, expected_aus)
    assert list(old.failures["kind"]) == ["permanent"]
    with pytest.raises(InvalidArgumentError, match="partition"):
        build_split(old.table, "dfme_official")
    result = CliRunner().invoke(main, ["info", str(tmp_path / "s")])
    assert result.exit_code == 0, result.output


def test_writer_names_are_still_importable_from_the_writer():
    from mer_prep.store import versions, writer

    for name in (
        "VersionPlan",
        "make_version_id",
        "incomplete_version_id",
        "existing_version",
        "current_version",
        "TRANSIENT",
        "PERMANENT",
    ):
        assert getattr(writer, name) is getattr(versions, name)


# --- helpers: a store of fake samples, written without processing --------------------------------

AUS = ["4+R12", "1+2", "AU14 or 15", ""]


def _fake_samples(n):
    return [
        fake_sample(
            f"EP0{i}_01", f"casme2/sub{i % 2 + 1:02d}", "happiness", action_units=AUS[i % len(AUS)]
        )
        for i in range(n)
    ]


def _fake_plan(path, n, cls=VersionPlan):
    problem = Problem("casme2/sub09/EP99", "coding.xlsx:row 7", "folder missing")
    return fake_plan(path, _fake_samples(n), ["happiness"], problems=(problem,), cls=cls)


def _write_fake(plan, extra=None):
    """Write ``plan`` with fake frames and landmarks and, where given, ``extra(i)``'s arrays."""
    writer = VersionWriter.begin(plan)
    try:
        fork = pickle.loads(pickle.dumps(writer.fork()))
        sample_writer = SampleWriter(fork, plan.arrays)
        rows = []
        for i, sample in enumerate(plan.samples):
            crc = sample_writer.write(
                i, {**sample_arrays(i), **({} if extra is None else extra(i))}
            )
            rows.append(
                sample_row(
                    sample, plan.class_names, fingerprint=plan.fingerprints[i], content_crc=crc
                )
            )
        return writer.finish([fork], rows, [Failure.from_problem(p) for p in plan.problems])
    except BaseException:
        writer.abort()
        raise


def _valid_attrs() -> dict:
    return {
        "schema": "mer-prep/feature-store",
        "schema_version": 1,
        "dataset": "dfme",
        "labels": "native",
        "class_names": ["a"],
        "recipe": {"name": "r", "hash": "0" * 16, "parameters": {}},
        "input_fingerprint": "0" * 32,
        "code_version": "x",
        "version_id": "v-" + "0" * 16,
        "created": "2024-01-01T00:00:00+00:00",
        "n_samples": 0,
        "n_ok": 0,
        "arrays": {},
        "table_columns": {},
        "failures": [],
    }
