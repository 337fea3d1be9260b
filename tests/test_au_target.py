"""Issue 22 item 5: action units as the training target (``--target aus``).

On a small synthetic CASME II look-alike (8 subjects x 3 clips; each class moves its own AUs:
happiness 6+12, surprise 1+2, disgust 9+10), an MBCC trained on the 12 cross-dataset AUs over
LOSO reaches a pooled macro F1 well above the all-positive predictor's; its per-AU F1 is
sklearn's ``f1_score`` of the pooled predictions; each fold's positive weights are the fit
part's clips' negatives / positives (by hand), never the test or validation subjects'; the run
is recorded with its target and listed with it; a store that codes no AU is refused in one line
before anything trains. torch runs on one thread (as in test_train: two threads on the shared
two-core machine spin against each other).
"""

from __future__ import annotations

import dataclasses
import importlib

import numpy as np
import pytest
from click.testing import CliRunner
from sklearn.metrics import f1_score
from train_helpers import learnable_casme2, one_torch_thread

from mer_prep.cli import main
from mer_prep.labels import au_set
from mer_prep.recipes import load_recipe
from mer_prep.store import open_store
from mer_prep.train.au_target import (
    POS_WEIGHT_CAP,
    check_au_variant,
    pooled_au_scores,
    positive_weights,
)
from mer_prep.train.errors import TrainSetupError
from mer_prep.train.runs_store import list_runs

# the rest needs PyTorch: without it the module is skipped, not failed at import
torch = pytest.importorskip("torch")
au_loss = importlib.import_module("mer_prep.train.au_loss")
training = importlib.import_module("mer_prep.train.plan")
plan_run, train = training.plan_run, training.train
multilabel_loss, au_probabilities = au_loss.multilabel_loss, au_loss.au_probabilities

DATASET = learnable_casme2()
MBCC = {"filters": (8, 16), "dense": 32}
AU_RUN = {
    "variant": "difference",
    "config": MBCC,
    "epochs": 8,
    "batch_size": 4,
    "lr": 3e-3,
    "target": "aus",
}
CODED = ("AU1", "AU2", "AU6", "AU9", "AU10", "AU12")  # what the three classes move


one_thread = one_torch_thread(torch)


def _commit(dataset, root, path):
    from mer_prep.pipeline.local import commit_version

    commit_version(dataset, root, load_recipe("mbcc64"), path)


@pytest.fixture(scope="module")
def store_path(tmp_path_factory, synth_dataset):
    root, _ = synth_dataset("casme2", **DATASET)
    path = tmp_path_factory.mktemp("au-target") / "store"
    _commit("casme2", root, path)
    return path


@pytest.fixture(scope="module")
def au_run(store_path):
    """One LOSO AU run, recorded on the store."""
    return train(store_path, "mbcc", **AU_RUN)


def _pooled(record):
    y_true = np.concatenate([f.y_true for f in record.folds])
    y_pred = np.concatenate([f.y_pred for f in record.folds])
    return y_true, y_pred


# --- positive weights ----------------------------------------------------------------------------


def test_positive_weights_by_hand():
    aus = np.array([[1, 0, 0], [1, 1, 0], [0, 0, 0], [1, 0, 0]], bool)
    weights = positive_weights(aus, ("AU1", "AU2", "AU4"))
    # AU1: 1 negative / 3 positives; AU2: 3 / 1; AU4: no positive -> 1 and named
    np.testing.assert_allclose(weights.weights, [1 / 3, 3.0, 1.0], rtol=1e-6)
    assert weights.without_positives == ("AU4",)
    rare = np.zeros((25, 2), bool)
    rare[0, 0] = rare[:5, 1] = True
    np.testing.assert_allclose(
        positive_weights(rare, ("AU1", "AU2")).weights, [POS_WEIGHT_CAP, 20 / 5]
    )


def test_a_folds_positive_weights_come_from_its_fit_rows_only(store_path):
    store = open_store(store_path)
    plan = plan_run(store, "mbcc", **{**AU_RUN, "selection": "validation"})
    names = tuple(f"AU{n}" for n in au_set("cross12"))
    assert plan.header.target == "aus" and plan.data.au_names == names
    fold = plan.fold(0)
    columns = [store.au_list.index(n) for n in au_set("cross12")]
    by_row = store.aus[:, columns]
    fit_rows = fold.fit.rows
    np.testing.assert_array_equal(fold.fit.aus, by_row[fit_rows])
    tested = set(fold.info["test_subjects"]) | set(fold.info["validation_subjects"])
    assert tested and not tested & set(store.table["subject"].to_numpy()[fit_rows])
    # by hand: negatives / positives over the fit rows, capped; 1 where there is no positive
    positives = by_row[fit_rows].sum(0)
    expected = [
        min((len(fit_rows) - p) / p, POS_WEIGHT_CAP) if p else 1.0 for p in positives.tolist()
    ]
    fold_positive_weights = au_loss.fold_positive_weights
    np.testing.assert_allclose(fold_positive_weights(fold).weights, expected, rtol=1e-6)
    # flipping every test and validation clip's AUs changes nothing
    flipped = plan.data.aus.copy()
    other = np.isin(plan.data.subjects, sorted(tested))
    flipped[other] = ~flipped[other]
    moved = dataclasses.replace(plan, data=dataclasses.replace(plan.data, aus=flipped))
    np.testing.assert_allclose(fold_positive_weights(moved.fold(0)).weights, expected, rtol=1e-6)


# --- training and scores --------------------------------------------------------------------------


def test_au_training_beats_a_constant_predictor(au_run):
    y_true, y_pred = _pooled(au_run)
    names = au_run.folds[0].class_names
    assert y_true.shape == y_pred.shape == (24, 12) and len(names) == 12
    occurs = y_true.any(0)
    assert [n for n, on in zip(names, occurs, strict=True) if on] == list(CODED)
    # the all-positive predictor: F1 = 2 support / (support + n) per present AU
    constant = pooled_au_scores([(y_true, np.ones_like(y_true))], names)["macro_f1"]
    support = y_true[:, occurs].sum(0)
    assert constant == pytest.approx(np.mean(2 * support / (support + len(y_true))))
    macro = au_run.au_metrics["macro_f1"]
    print(f"AU macro F1 {macro:.3f}; all-positive {constant:.3f}")
    assert macro >= constant + 0.2, (macro, constant)


def test_per_au_f1_is_sklearns_on_the_pooled_predictions(au_run):
    y_true, y_pred = _pooled(au_run)
    names = au_run.folds[0].class_names
    occurs = y_true.any(0)
    oracle = f1_score(y_true, y_pred, average=None, zero_division=np.nan)
    for k, name in enumerate(names):
        mine = au_run.au_metrics["per_au_f1"][name]
        if np.isnan(oracle[k]):
            assert mine is None
        else:
            assert mine == pytest.approx(oracle[k])
    assert au_run.au_metrics["macro_f1"] == pytest.approx(oracle[occurs].mean())
    # counts pooled over folds, not a mean of folds' F1
    assert au_run.au_metrics["n"] == 24


def test_an_au_run_is_recorded_and_listed_with_its_target(au_run, store_path, tmp_path):
    (stored,) = [r for r in list_runs(store_path) if r.run_id == au_run.run_id]
    macro_f1 = au_run.au_metrics["macro_f1"]
    assert stored.target == "aus" and stored.training["aus"][0] == "AU1"
    assert stored.au_metrics["macro_f1"] == pytest.approx(au_run.au_metrics["macro_f1"])
    np.testing.assert_array_equal(_pooled(stored)[1], _pooled(au_run)[1])
    assert (
        stored.folds[0].info["au_positive_weights"] == au_run.folds[0].info["au_positive_weights"]
    )
    listing = CliRunner().invoke(main, ["runs", str(store_path)])
    assert listing.exit_code == 0, listing.output
    (line,) = [x for x in listing.output.splitlines() if x.split()[1:2] == [au_run.run_id]]
    assert " aus " in line
    assert f"AUS {au_run.run_id}: AU macro F1 {au_run.au_metrics['macro_f1']:.3f}" in (
        listing.output
    )
    shown = CliRunner().invoke(main, ["runs", str(store_path), "--run", au_run.run_id])
    assert shown.exit_code == 0, shown.output
    assert "AU macro F1" in shown.output and "AU12" in shown.output
    # the leaderboard ranks it in the AU table, by the macro F1 the record holds
    board = CliRunner().invoke(main, ["runs", str(store_path), "--leaderboard"])
    assert board.exit_code == 0, board.output
    assert "not in the leaderboard" not in board.output
    au_table = board.output.split("AU detection (target aus)", 1)[1]
    (au_line,) = [x for x in au_table.splitlines() if x.startswith("1 ")]
    assert f"  {macro_f1:.3f}  " in au_line and "1 seed" in au_line
    csv = CliRunner().invoke(main, ["runs", str(store_path), "--leaderboard", "--format", "csv"])
    (row,) = [r for r in csv.output.splitlines()[1:] if au_run.run_id in r]
    assert f"{macro_f1:.4f}" in row
    # the flow's artifact and the store's HTML report take an AU run (no confusion matrix)
    from flows.train import training_report

    report = training_report(stored)
    macro = f"{au_run.au_metrics['macro_f1']:.3f}"
    assert f"AU macro F1 {macro} over 6 AUs" in report
    f1 = au_run.au_metrics["per_au_f1"]["AU12"]
    assert f"| AU12 | {f1:.3f} | {au_run.au_metrics['support']['AU12']} |" in report
    page = tmp_path / "show.html"
    result = CliRunner().invoke(main, ["show", str(store_path), "--out", str(page)])
    assert result.exit_code == 0, result.output
    assert au_run.run_id in page.read_text()
    assert "AU detection (target aus)" in page.read_text()  # its leaderboard table


def test_the_epoch_is_chosen_on_the_validation_parts_macro_f1(store_path):
    record = train(
        store_path, "mbcc", **{**AU_RUN, "epochs": 2, "selection": "validation"}, save=False
    )
    assert record.training["validation_metric"] == "au_macro_f1"
    for fold in record.folds:
        assert fold.validation_metric == "au_macro_f1" and fold.selection == "validation"
        scores = [c.validation for c in fold.curves]
        assert all(v is not None for v in scores)
        assert fold.best_epoch == 1 + int(np.argmax(scores))  # the first best epoch


def test_leave_one_dataset_out_on_a_composite(tmp_path, synth_dataset):
    """The cross-dataset protocol's shape on the synthetic MEGC 2019 composite (SMIC, CASME II,
    SAMM; cross6's parts have no synthetic look-alikes): one fold per dataset, each fold's
    positive weights from the other datasets' clips alone, SMIC's fold (no AU coded) scoring
    nothing, the macro F1 over the AUs present in the pooled truth."""
    root, _ = synth_dataset(
        "megc2019", n_subjects=3, clips_per_subject=2, size=(240, 320), n_frames=12, seed=1
    )
    from mer_prep.evaluation.splits import build_split
    from mer_prep.pipeline.local import commit_version
    from mer_prep.store.splits import save_split

    path = tmp_path / "megc2019"
    parts = {"smic": root / "SMIC", "casme2": root / "CASME2", "samm": root / "SAMM"}
    commit_version("megc2019", parts, load_recipe("mbcc64"), path, labels="megc3")
    store = open_store(path)
    save_split(store, build_split(store.table, "lodo"))
    store = open_store(path)
    record = train(store, "mbcc", **{**AU_RUN, "epochs": 2, "split": "lodo"}, save=False)
    assert [f.name for f in record.folds] == ["casme2", "samm", "smic"]
    names = record.folds[0].class_names
    columns = [store.au_list.index(int(n[2:])) for n in names]
    aus, datasets = store.aus[:, columns], store.table["dataset"].to_numpy()
    for fold in record.folds:
        others = aus[datasets != fold.name]  # last_epoch: no validation part carved
        positives = dict(zip(names, others.sum(0).tolist(), strict=True))
        assert fold.info["au_fit_positives"] == positives
        assert fold.info["aus_without_positives"] == [n for n, p in positives.items() if not p]
    (smic,) = [f for f in record.folds if f.name == "smic"]
    assert not smic.y_true.any() and smic.metrics["macro_f1"] is None
    pooled = np.concatenate([f.y_true for f in record.folds]).any(0)
    assert record.au_metrics["averaged"] == [n for n, on in zip(names, pooled, strict=True) if on]


# --- every family, and the refusals ---------------------------------------------------------------


HALVES = {"upper": (8, 16, 32), "lower": (8, 16, 32)}
FLOW28 = {"flow": (2, 28, 28, 2), "strain": (2, 28, 28)}
MSRES3D_TINY = {
    "block": "basic",
    "width": 0.125,
    "depth": (1, 1, 1, 1),
    "strain": True,
    "head_dropout": 0.0,
}
# small configs and per-sample shapes of every family (as tests/test_models.py and
# tests/test_baselines.py build them)
FAMILIES = {
    "mbcc": ({"dropout": 0.0, "inputs": "onset_apex"}, {"frames": (2, 32, 32)}),
    "broadbent": ({"dropout": 0.0}, {"frames": (1, 32, 32)}),
    "dp3dnet": ({"head": "gap", "filters": 8, "dropout": 0.0}, HALVES),
    "ha3dnet": ({"head": "flatten", "filters": 4, "dense": 16, "dropout": 0.0}, HALVES),
    "mer3dcnn": (
        {"head": "flatten", "filters": 4, "dense": 16, "dropout": 0.0},
        {"frames": (8, 32, 32)},
    ),
    "msres3d": (MSRES3D_TINY, {"flow": (8, 32, 32, 2), "strain": (8, 32, 32)}),
    "ststnet": ({}, FLOW28),
    "offapexnet": ({"dropout": 0.0}, FLOW28),
    "htnet": ({}, FLOW28),
}


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_every_family_gets_a_multi_label_head(name):
    """Built for 12 AUs, each family gives 12 logits a row, and one step on the weighted BCE
    moves its weights (its feature extractor is the one it has for classes)."""
    from mer_prep.models import get_model

    config, shapes = FAMILIES[name]
    torch.manual_seed(0)
    spec = get_model(name)
    model = spec.build(config, 12, shapes)
    classes = spec.build(config, 3, shapes)

    def extractor(m):
        return sorted((k, tuple(v.shape)) for k, v in m.state_dict().items())

    differ = [a for a, b in zip(extractor(model), extractor(classes), strict=True) if a != b]
    assert differ and all(shape[0] in (12,) for _, shape in differ), differ  # the last layer
    inputs = {n: torch.rand(4, *s) for n, s in shapes.items()}
    targets = (torch.rand(4, 12) > 0.5).float()
    model.train()
    loss = multilabel_loss(model, inputs, targets, torch.full((12,), 2.0))
    loss.backward()
    assert torch.isfinite(loss) and any(
        p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters()
    )
    model.eval()
    with torch.no_grad():
        proba = au_probabilities(model, inputs)
    assert proba.shape == (4, 12) and bool(((proba >= 0) & (proba <= 1)).all())


def test_a_multi_head_family_trains_each_head_on_the_aus():
    """msres3d mixes four heads' softmax in ``forward``: its AU loss is the heads' BCE summed and
    its AU probability the mean of the heads' sigmoids."""
    from mer_prep.models import get_model

    torch.manual_seed(0)
    model = get_model("msres3d").build(MSRES3D_TINY, 5, FAMILIES["msres3d"][1]).eval()
    inputs = {n: torch.rand(2, *s) for n, s in FAMILIES["msres3d"][1].items()}
    targets = torch.tensor([[1, 0, 1, 0, 0], [0, 1, 0, 0, 1]], dtype=torch.float32)
    weight = torch.tensor([1.0, 2.0, 3.0, 1.0, 0.5])
    with torch.no_grad():
        heads = model.forward_heads(inputs)
        assert len(heads) == 4
        expected = sum(
            torch.nn.functional.binary_cross_entropy_with_logits(h, targets, pos_weight=weight)
            for h in heads
        )
        torch.testing.assert_close(multilabel_loss(model, inputs, targets, weight), expected)
        mean = torch.stack([torch.sigmoid(h) for h in heads]).mean(0)
        torch.testing.assert_close(au_probabilities(model, inputs), mean)


def test_target_aus_on_a_store_without_aus_is_one_line(tmp_path, synth_dataset):
    root, _ = synth_dataset(
        "smic", n_subjects=3, clips_per_subject=2, size=(240, 320), n_frames=12, seed=1
    )
    path = tmp_path / "smic"
    _commit("smic", root, path)
    store = open_store(path)
    assert not store.aus.any()  # SMIC codes no AU
    with pytest.raises(TrainSetupError) as refused:
        plan_run(store, "mbcc", **AU_RUN)
    message = str(refused.value)
    assert "\n" not in message and str(path) in message and "no `aus` array" in message
    result = CliRunner().invoke(
        main, ["train", str(path), "--model", "mbcc", "--target", "aus", "--epochs", "1"]
    )
    assert result.exit_code == 2, result.output
    assert "no `aus` array" in result.output and len(result.output.strip().splitlines()) == 1
    assert not list_runs(path)  # nothing trained, nothing recorded


def test_a_smote_variant_is_refused_for_au_targets(store_path):
    from mer_prep.models import get_model

    spec = get_model("mer3dcnn")
    smote = [name for name, preset in spec.variants.items() if preset.smote]
    assert smote
    with pytest.raises(TrainSetupError, match="SMOTE samples, which need emotion classes"):
        check_au_variant(spec.name, smote[0], spec.variants[smote[0]])
