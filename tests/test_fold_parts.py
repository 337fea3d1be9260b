"""What a fold's parts hold: test parts are the test clips (their augmented copies only with
test-time augmentation, each naming its original); a SMOTE plan balances exactly the rows that
are fitted; frames as samples leave the neutral onset out where the model says so; a model
refuses arrays far from its paper's input, naming the recipe that makes it."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest
from recipe_variants import mbcc64_augmented
from torch_or_skip import torch
from train_helpers import casme2_of_classes

from mer_prep.errors import MerPrepError
from mer_prep.evaluation.balance import smote_plan
from mer_prep.evaluation.splits import build_split
from mer_prep.models import ModelInputError, check_inputs, get_model
from mer_prep.recipes import builtin_recipes
from mer_prep.store import open_store
from mer_prep.store.splits import save_split
from mer_prep.train import plan_run
from mer_prep.train.data import StoreData, build_fold

COPIES = 2


@pytest.fixture(scope="module")
def store_path(tmp_path_factory, synth_dataset):
    """mbcc64 (onset, apex at 64x64) with 2 augmented copies per clip: 4 subjects x 4 clips,
    one class twice per subject (unbalanced, so SMOTE has samples to make). A LOSO split with
    SMOTE on the frames is stored."""
    from mer_prep.pipeline.local import commit_version

    root, _ = synth_dataset(
        "casme2", **casme2_of_classes(4, 4, seed=3, amplitude_px=(2.0, 3.0), n_frames=10)
    )
    path = tmp_path_factory.mktemp("fold-parts") / "store"
    commit_version("casme2", root, mbcc64_augmented(COPIES, name="mbcc64aug2"), path)
    store = open_store(path)
    save_split(store, build_split(store.table, "loso"), smote_features="frames")
    return path


@pytest.mark.slow  # the module's store: 4-9 s to write on a shared CPU
def test_test_parts_hold_the_test_clips_only(store_path):
    store = open_store(store_path)
    parents = store.parents
    assert (parents >= 0).sum() == COPIES * (parents < 0).sum() == COPIES * 16
    for name, train, test, _ in store.folds("loso"):
        assert test.size == 4 and (parents[test] == -1).all(), name
        assert (parents[train] >= 0).sum() == COPIES * 12  # training keeps the copies
        _, _, with_copies, _ = next(f for f in store.folds("loso", tta=True) if f[0] == name)
        copies = with_copies[parents[with_copies] >= 0]
        assert copies.size == COPIES * test.size and set(parents[copies]) == set(test)

    name, _, test, _ = next(store.folds("loso"))
    plain = store.to_torch(name, part="test", arrays=["frames"])
    assert len(plain) == test.size
    assert [plain[i]["row"] for i in range(len(plain))] == test.tolist()
    assert not any(plain[i]["copy"] for i in range(len(plain)))
    assert [plain[i]["original"] for i in range(len(plain))] == test.tolist()
    rows = torch.cat(
        [b["row"] for b in store.loader(name, part="test", arrays=["frames"], batch_size=3)]
    ).tolist()
    assert rows == test.tolist()


@pytest.mark.slow  # the module's store: 4-9 s to write on a shared CPU
def test_test_time_augmentation_says_which_clip_each_copy_is(store_path):
    store = open_store(store_path)
    name, _, test, _ = next(store.folds("loso"))
    tta = store.to_torch(name, part="test", arrays=["frames"], tta=True)
    assert len(tta) == (1 + COPIES) * test.size
    items = [tta[i] for i in range(len(tta))]
    ids = store.table["sample_id"].to_numpy()
    for item in items:
        if item["copy"]:
            assert item["original"] == store.parents[item["row"]] != item["row"]
            assert ids[item["row"]].startswith(ids[item["original"]] + "#aug")
        else:
            assert item["original"] == item["row"] and item["row"] in test
    assert sorted(i["original"] for i in items) == sorted(np.repeat(test, 1 + COPIES).tolist())
    batch = next(
        iter(
            store.loader(
                name, part="test", arrays=["frames"], tta=True, batch_size=len(tta), shuffle=False
            )
        )
    )
    assert batch["copy"].sum() == COPIES * test.size
    with pytest.raises(MerPrepError, match="tta"):
        store.to_torch(name, part="train", tta=True)


def _memory_data(seed: int = 0) -> tuple[StoreData, np.ndarray]:
    """6 subjects x 5 original clips (classes 0, 0, 0, 1, 2 each), 4 frames of 6x6: features
    are the flattened frames."""
    rng = np.random.default_rng(seed)
    subjects = np.repeat([f"s{i}" for i in range(6)], 5)
    labels = np.tile([0, 0, 0, 1, 2], 6).astype(np.int64)
    frames = rng.random((30, 4, 6, 6)).astype(np.float32) + labels[:, None, None, None]
    data = StoreData(
        arrays={"frames": frames},
        labels=labels,
        subjects=subjects,
        sample_ids=np.array([f"c{i}" for i in range(30)]),
        parents=np.full(30, -1, np.int64),
        class_names=("a", "b", "c"),
        dims={"frames": ("frame", "y", "x")},
    )
    return data, frames.reshape(30, -1)


def test_smote_balances_exactly_the_rows_that_are_fitted():
    data, features = _memory_data()
    test = np.flatnonzero(data.subjects == "s0")
    train = np.flatnonzero(data.subjects != "s0")
    stored = smote_plan(features, data.labels, train, seed=0, k_neighbors=3)  # the whole part
    # fold 0 (test subject s0) by clips, neither augmented nor weighted, with the stored plan
    cut = partial(
        build_fold,
        data,
        0,
        "s0",
        train,
        test,
        unit="clip",
        augmented=False,
        weighted=False,
        seed=1,
        smote=stored,
    )
    fold = cut(validation=True, smote_features=features)
    held = fold.info["validation_subjects"]
    assert held and fold.info["smote_refit"]
    counts = np.bincount(fold.fit.labels, minlength=3)
    fitted = (fold.fit.rows >= 0) & ~np.isin(fold.fit.subjects, held)
    originals = np.bincount(fold.fit.labels[fitted], minlength=3)
    assert (counts == originals.max()).all(), (counts, originals)  # balanced as SMOTE promises
    assert fold.info["n_smote"] == int((originals.max() - originals).sum())
    # every synthetic sample lies between two fitted clips of its class, none of a held subject
    synthetic = fold.fit.inputs["frames"][fold.fit.rows == -1].reshape(-1, features.shape[1])
    fit_rows = fold.fit.rows[fold.fit.rows >= 0]
    for x, label in zip(synthetic, fold.fit.labels[fold.fit.rows == -1], strict=True):
        same = features[fit_rows[data.labels[fit_rows] == label]]
        assert x.min() >= same.min(axis=0).min() - 1e-6 and int(np.floor(x.mean())) == label

    # without a validation part the stored plan is used as stored
    last = cut(validation=False)
    assert not last.info["smote_refit"] and last.info["n_smote"] == len(stored)
    assert (np.bincount(last.fit.labels, minlength=3) == 15).all()


@pytest.mark.slow  # the module's store: 4-9 s to write on a shared CPU
def test_a_validation_run_on_a_stored_smote_split_is_balanced(store_path):
    plan = plan_run(
        store_path,
        "mer3dcnn",
        variant="scb",
        selection="validation",
        epochs=1,
        config={"head": "gap", "filters": 2, "dense": 4},
    )
    for fold in plan.folds():
        real = fold.fit.rows >= 0
        originals = np.bincount(fold.fit.labels[real], minlength=fold.n_classes)
        counts = np.bincount(fold.fit.labels, minlength=fold.n_classes)
        present = originals > 0
        assert (counts[present] == originals.max()).all(), (counts, originals)
        assert fold.info["smote_refit"]
        assert not set(fold.fit.subject_set) & set(fold.info["validation_subjects"])


@pytest.mark.slow  # the module's store: 4-9 s to write on a shared CPU
def test_frames_as_samples_leave_the_neutral_onset_out(store_path):
    plan = plan_run(store_path, "mbcc", variant="frames", epochs=1)
    fold = next(plan.folds())
    frames = plan.data.arrays["frames"]
    assert fold.fit.n_rows == fold.fit.n_clips  # mbcc64: onset + apex -> the apex alone
    np.testing.assert_array_equal(fold.fit.inputs["frames"][:, 0], frames[fold.fit.rows, 1])
    np.testing.assert_array_equal(fold.test.inputs["frames"][:, 0], frames[fold.test.rows, 1])
    # broadbent's frames are its paper's samples, onset included (paper 001 classifies frames)
    broad = next(plan_run(store_path, "broadbent", epochs=1).folds())
    assert broad.fit.n_rows == 2 * broad.fit.n_clips


def _arrays(recipe: str) -> dict:
    return {n: (d, s) for n, (d, s, _) in builtin_recipes()[recipe].array_specs().items()}


def test_a_model_refuses_arrays_far_from_its_paper_input_naming_the_recipe():
    with pytest.raises(ModelInputError) as refused:
        check_inputs(get_model("msres3d"), "ststnet28", _arrays("ststnet28"))
    message = str(refused.value)
    assert "\n" not in message and "recipe msres3d" in message and "ststnet28" in message
    assert "134x134" in message and "x = 28" in message and "frame = 2" in message
    # every model fits its own recipe, and a user recipe with the same arrays fits too
    for name in ("mbcc", "broadbent", "dp3dnet", "ha3dnet", "msres3d", "mer3dcnn"):
        spec = get_model(name)
        check_inputs(spec, spec.recipe, _arrays(spec.recipe))
        check_inputs(spec, "my_own", _arrays(spec.recipe))
    # far in size alone: the 3-D CNN of 004 (128x128) on 28x28 frames
    with pytest.raises(ModelInputError, match="recipe dacwb3d"):
        check_inputs(get_model("mer3dcnn"), "ststnet28", _arrays("ststnet28"))
