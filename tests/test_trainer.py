"""The trainer's side of a store: augmented rows, leakage-safe splits with class weights and
SMOTE, the audit, the PyTorch adapter, the HDF5 export, and a model that learns (or not)."""

import subprocess
import sys

import h5py
import numpy as np
import pytest
import yaml
from recipe_variants import mbcc64_augmented
from sklearn.linear_model import LogisticRegression
from train_helpers import casme2_of_classes

from mer_prep.evaluation.metrics import pooled_confusion, uar
from mer_prep.evaluation.splits import build_split
from mer_prep.store import open_store
from mer_prep.store.export import export_hdf5
from mer_prep.store.splits import save_split

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_server")]


@pytest.fixture(scope="module")
def store_path(tmp_path_factory, synth_dataset):
    """8 subjects x 3 clips (one per class) with one augmented copy each, through the flow."""
    from flows.preprocess import run_preprocess

    work = tmp_path_factory.mktemp("trainer")
    root, _ = synth_dataset("casme2", **casme2_of_classes(8, 3, seed=2, amplitude_px=(1.0, 2.0)))
    recipe = mbcc64_augmented().model_dump(mode="json", by_alias=True)
    (work / "mbcc64aug.yaml").write_text(yaml.safe_dump(recipe))
    summary = run_preprocess(
        "casme2", str(root), str(work / "mbcc64aug.yaml"), str(work / "store"), n_workers=1
    )
    assert summary.n_failed == 0
    return work / "store"


def test_augmented_copies_follow_their_parent_into_every_fold(store_path):
    store = open_store(store_path)
    table = store.table
    assert len(table) == 48 and (store.parents >= 0).sum() == 24
    children = np.flatnonzero(store.parents >= 0)
    assert all(
        table["sample_id"][c] == table["sample_id"][store.parents[c]] + "#aug1" for c in children
    )
    assert all(table["aug_params"][c]["angle_deg"] != 0 for c in children)  # recorded, not identity
    frames = store.array("frames", dtype="float32")
    assert not np.allclose(frames[children], frames[store.parents[children]])
    for kind in ("loso", "group_kfold", "stratified_group_kfold"):
        split = build_split(table, kind, n_splits=4, seed=0)
        for _, train, test in split.folds():
            assert not set(table["subject"][train]) & set(table["subject"][test]), kind
            in_test = np.isin(np.arange(len(table)), test)
            assert (in_test[children] == in_test[store.parents[children]]).all(), kind
    assert build_split(table, "loso").n_folds == 8


def test_stored_split_weights_smote_and_audit(store_path, tmp_path):
    store = open_store(store_path)
    save_split(
        store, build_split(store.table, "loso"), smote_features="frames", materialise=("frames",)
    )
    store = open_store(store_path)
    assert (
        store.split_names == ["loso"] and store.split_attrs("loso")["smote"]["features"] == "frames"
    )
    labels = store.labels
    for name, train, _test, weights in store.folds("loso"):
        counts = np.bincount(labels[train], minlength=len(store.class_names))
        present = counts > 0  # CASME II's native scheme has 7 classes; these clips use 3
        assert present.sum() == 3 and not weights[~present].any()
        np.testing.assert_allclose(weights[present], len(train) / counts[present])  # N / n_k
        plan = store.smote("loso", name)
        assert np.isin(plan.parent_a, train).all() and np.isin(plan.parent_b, train).all()
        assert (labels[plan.parent_a] == plan.label).all()
        assert (store.parents[plan.parent_a] == -1).all()  # originals only feed SMOTE

    # the audit passes LOSO and flags a deliberately leaky split (exit code 1)
    def audit(name):
        return subprocess.run(
            [sys.executable, "-m", "mer_prep.cli", "audit", str(store_path), "--split", name],
            capture_output=True,
            text=True,
            timeout=300,
        )

    clean = audit("loso")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    with pytest.raises(ValueError, match="leaky=True"):
        build_split(store.table, "random", n_splits=4)
    made = subprocess.run(
        [
            sys.executable,
            "-m",
            "mer_prep.cli",
            "split",
            str(store_path),
            "--kind",
            "random",
            "--name",
            "paper",
            "--folds",
            "4",
            "--leaky",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert made.returncode == 0 and "LEAKY" in made.stdout, made.stderr
    assert open_store(store_path).split_attrs("paper")["leaky"] is True
    leaky = audit("paper")
    assert leaky.returncode == 1, leaky.stdout
    assert "subject_overlap" in leaky.stdout and "near_duplicate" in leaky.stdout


def test_torch_dataset_and_hdf5_export(store_path, tmp_path):
    torch = pytest.importorskip("torch")
    store = open_store(store_path)
    if "loso" not in store.split_names:
        save_split(store, build_split(store.table, "loso"), smote_features="frames")
        store = open_store(store_path)
    name, train, test, weights = next(store.folds("loso"))
    plain = store.to_torch(name, part="test", arrays=["frames"])
    assert len(plain) == len(test)
    item = plain[0]
    assert item["frames"].shape == (2, 64, 64) and item["frames"].dtype == torch.float32
    np.testing.assert_allclose(item["frames"].numpy(), store.array("frames", "float32")[test[0]])
    weighted = store.to_torch(name, arrays=["frames"], balance="weights")
    np.testing.assert_allclose(weighted.class_weights.numpy(), weights, rtol=1e-6)
    smote = store.to_torch(name, arrays=["frames"], balance="smote")
    plan = store.smote("loso", name)
    assert len(smote) == len(train) + len(plan) and len(plan) >= 0
    if len(plan):
        last = smote[len(smote) - 1]
        frames = store.array("frames", "float32")
        expected = frames[plan.parent_a[-1]] + plan.weight[-1] * (
            frames[plan.parent_b[-1]] - frames[plan.parent_a[-1]]
        )
        assert last["synthetic"] and int(last["label"]) == plan.label[-1]
        np.testing.assert_allclose(last["frames"].numpy(), expected, atol=1e-3)
    loader = torch.utils.data.DataLoader(weighted, batch_size=8)
    batch = next(iter(loader))
    assert batch["frames"].shape == (8, 2, 64, 64) and batch["label"].shape == (8,)

    path = export_hdf5(store, tmp_path / "store.h5")
    with h5py.File(path) as h5:
        np.testing.assert_array_equal(h5["frames"][:], store.array("frames"))
        assert [s.decode() for s in h5["table/sample_id"][:]] == list(store.table["sample_id"])
        np.testing.assert_array_equal(h5["splits/loso/test_fold"][:], store.split("loso").test_fold)


FORKED_LOADERS = """
import sys, numpy as np, torch
from mer_prep.store import open_store
store = open_store(sys.argv[1])
name = next(store.folds("loso"))[0]
dataset = store.to_torch(name, arrays=["frames"], balance="weights")
expected = sum(float(b["frames"].sum()) for b in torch.utils.data.DataLoader(dataset, batch_size=4))
got = sum(float(b["frames"].sum()) for b in torch.utils.data.DataLoader(
    dataset, batch_size=4, num_workers=2))  # the default start method: fork on Linux
loader = store.loader(name, arrays=["frames"], batch_size=4, num_workers=2, shuffle=False)
rows = torch.cat([b["row"] for b in loader]).numpy()
assert np.isclose(got, expected, rtol=1e-6), (got, expected)
assert list(rows) == list(dataset.rows), rows
print("ok", len(dataset))
"""


def test_dataloader_workers_under_fork_finish(store_path):
    """The storage runtime does not survive fork: the fold is read before workers start."""
    pytest.importorskip("torch")
    import multiprocessing

    assert multiprocessing.get_start_method() == "fork"
    done = subprocess.run(
        [sys.executable, "-c", FORKED_LOADERS, str(store_path)],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0 and done.stdout.startswith("ok"), done.stderr[-2000:]


def loso_uar(store, labels):
    """LOSO logistic regression on onset->apex difference images; pooled UAR."""
    frames = store.array("frames", dtype="float32")
    difference = np.abs(frames[:, 1] - frames[:, 0])
    # 4x4 pooling: the expression moves whole regions, and 256 features suit 36 training rows
    features = (
        difference.reshape(len(frames), 16, 4, 16, 4).mean(axis=(2, 4)).reshape(len(frames), -1)
    )
    results = []
    for _, train, test, weights in store.folds("loso"):
        model = LogisticRegression(C=10.0, max_iter=2000, class_weight=dict(enumerate(weights)))
        model.fit(features[train] / features[train].std(), labels[train])
        results.append((labels[test], model.predict(features[test] / features[train].std())))
    return uar(pooled_confusion(results, len(store.class_names)))


def test_a_model_learns_the_expression_and_not_shuffled_labels(store_path):
    store = open_store(store_path)
    real = loso_uar(store, store.labels)
    assert real > 0.6, real  # chance is 1/3
    rng = np.random.default_rng(0)
    shuffled = []
    for _ in range(5):
        labels = store.labels.copy()
        originals = np.flatnonzero(store.parents < 0)
        labels[originals] = rng.permutation(labels[originals])
        labels[store.parents >= 0] = labels[store.parents[store.parents >= 0]]  # copies follow
        shuffled.append(loso_uar(store, labels))
    assert np.mean(shuffled) < 0.45, shuffled
