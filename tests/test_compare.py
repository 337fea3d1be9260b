"""Paired comparison of runs: exact differences from known predictions, a bootstrap over
subjects checked against a plain loop, intervals that contain 0 for a run against itself and
exclude it for a clearly better run, refusals of runs that are not on the same folds, and the
`mer-prep compare` command on a real store."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner
from handmade_runs import make_run, table_of

from mer_prep.cli import main
from mer_prep.evaluation import bootstrap
from mer_prep.evaluation.compare import RunsNotComparable, compare_per_dataset, compare_runs
from mer_prep.evaluation.metrics import confusion_matrix, scores
from mer_prep.evaluation.run_view import RunViewError, run_view

PERFECT = {"smic/s1": ([0, 1, 2], [0, 1, 2]), "smic/s2": ([0, 1], [0, 1])}
ONE_WRONG = {"smic/s1": ([0, 1, 2], [0, 0, 2]), "smic/s2": ([0, 1], [0, 1])}


def _pooled(record) -> dict:
    """The record's pooled scores from metrics.scores on all its clips (an oracle)."""
    y_true = np.concatenate([f.y_true for f in record.folds])
    y_pred = np.concatenate([f.y_pred for f in record.folds])
    return scores(confusion_matrix(y_true, y_pred, 3))


def _noisy(rng, n_subjects: int, right: float) -> dict:
    """Subjects of three clips (one per class), each predicted right with probability
    ``right`` and otherwise as the next class."""
    clips = {}
    for s in range(n_subjects):
        y = np.array([0, 1, 2])
        wrong = rng.random(3) > right
        clips[f"casme2/sub{s:02d}"] = (y.tolist(), np.where(wrong, (y + 1) % 3, y).tolist())
    return clips


def test_the_difference_is_exact_on_known_predictions():
    """B misses one of 5 clips: F1 (0.8, 2/3, 1) -> UF1 37/45, recall (1, 1/2, 1) -> UAR 5/6,
    against A's perfect 1 and 1."""
    a, b = make_run("A", PERFECT), make_run("B", ONE_WRONG, model="other")
    result = compare_runs(run_view(a), run_view(b), n_resamples=500)
    assert result.a.uf1_mean == 1.0 and result.b.uf1_mean == pytest.approx(37 / 45, abs=1e-12)
    assert result.uf1_diff == pytest.approx(8 / 45, abs=1e-12)
    assert result.uar_diff == pytest.approx(1 / 6, abs=1e-12)
    assert result.b.uar_mean == pytest.approx(b.uar, abs=1e-12)  # as the record pooled it
    assert result.resampling.n_subjects == 2 and result.resampling.over == "subjects"
    # a resample without smic/s1 scores both perfectly: the interval reaches 0
    assert result.uf1_ci[0] == 0.0 and result.uf1_ci[1] > 8 / 45


def test_a_run_against_itself_differs_by_exactly_zero_within_its_interval():
    record = make_run("A", _noisy(np.random.default_rng(3), 12, 0.6))
    view = run_view(record)
    result = compare_runs(view, view, n_resamples=2000, seed=5)
    assert result.uf1_diff == 0.0 and result.uar_diff == 0.0
    assert result.uf1_ci == (0.0, 0.0) and result.uar_ci == (0.0, 0.0)
    assert result.a.uf1_mean == pytest.approx(_pooled(record)["uf1"], abs=1e-12)
    assert 0.3 < result.a.uf1_mean < 0.9  # a noisy run: resamples do move its own score


def test_a_clearly_better_run_has_an_interval_above_zero_and_a_worse_one_below():
    rng = np.random.default_rng(0)
    good, bad = (
        make_run("good", _noisy(rng, 20, 0.95)),
        make_run("bad", _noisy(rng, 20, 0.4), model="other"),
    )
    result = compare_runs(run_view(good), run_view(bad))
    assert result.uf1_diff == pytest.approx(_pooled(good)["uf1"] - _pooled(bad)["uf1"], abs=1e-12)
    assert result.uf1_diff > 0.3 and result.uf1_ci[0] > 0.1 and result.uar_ci[0] > 0.1
    assert result.uf1_ci[0] < result.uf1_diff < result.uf1_ci[1]
    reverse = compare_runs(run_view(bad), run_view(good))
    assert reverse.uf1_diff == -result.uf1_diff and reverse.uf1_ci[1] < -0.1
    again = compare_runs(run_view(good), run_view(bad))
    assert again.uf1_ci == result.uf1_ci  # seeded: the same interval twice
    assert compare_runs(run_view(good), run_view(bad), seed=1).uf1_ci != result.uf1_ci


def test_the_vectorised_bootstrap_matches_a_loop_over_resamples():
    """Each resample's UF1 / UAR, recomputed by repeating the drawn subjects' clips and scoring
    them with metrics.scores."""
    rng = np.random.default_rng(1)
    views = [run_view(make_run(f"r{s}", _noisy(rng, 7, 0.6), seed=s)) for s in range(3)]
    subjects = bootstrap.tested_subjects(views)
    confusions = bootstrap.subject_confusions(views, subjects)
    weights = bootstrap.subject_weights(len(subjects), 40, rng)
    picks = bootstrap.seed_picks(3, 40, rng)
    uf1, uar = bootstrap.group_scores(confusions, weights, picks)
    assert (weights.sum(axis=1) == 7).all()
    for r in range(40):
        per_seed = []
        for v in picks[r]:
            view = views[v]
            keep = np.concatenate(
                [
                    np.flatnonzero(view.subjects == s).repeat(weights[r, i])
                    for i, s in enumerate(subjects)
                ]
            )
            per_seed.append(scores(confusion_matrix(view.y_true[keep], view.y_pred[keep], 3)))
        assert uf1[r] == pytest.approx(np.mean([s["uf1"] for s in per_seed]), abs=1e-12)
        assert uar[r] == pytest.approx(np.mean([s["uar"] for s in per_seed]), abs=1e-12)


def test_seed_groups_compare_their_means_and_resample_the_seeds():
    rng = np.random.default_rng(2)
    clips = [_noisy(rng, 10, p) for p in (0.9, 0.8, 0.85, 0.5, 0.45)]
    a = [make_run(f"a{s}", clips[s], seed=s) for s in range(3)]
    b = [make_run(f"b{s}", clips[3 + s], seed=s, model="other") for s in range(2)]
    result = compare_runs([run_view(r) for r in a], [run_view(r) for r in b])
    assert result.resampling.over == "subjects and seeds" and result.a.seeds == [0, 1, 2]
    assert result.uf1_diff == pytest.approx(
        np.mean([_pooled(r)["uf1"] for r in a]) - np.mean([_pooled(r)["uf1"] for r in b]), abs=1e-12
    )
    assert result.a.uf1_sd == pytest.approx(np.std([_pooled(r)["uf1"] for r in a], ddof=1))
    assert result.b.seeds_text() == "2 seeds (0, 1)"
    assert result.uf1_ci[0] > 0


@pytest.mark.parametrize(
    "change, says",
    [
        ({"split": "megc2019"}, "split loso vs megc2019"),
        ({"version": "v2"}, "store version v1 vs v2"),
        ({"classes": ("negative", "positive", "other")}, "classes negative,positive,surprise vs"),
        ({"clips": {"smic/s1": ([0, 1, 2], [0, 1, 2])}}, "folds differ (2 vs 1 folds"),
        (
            {"clips": {"smic/s1": ([0, 1, 2], [0, 1, 2]), "smic/s2": ([0], [0])}},
            "folds differ (1 fold(s) score other clips, first smic/s2)",
        ),
    ],
)
def test_runs_not_on_the_same_folds_version_split_or_target_are_refused(change, says):
    a = make_run("run-a", PERFECT)
    b = make_run("run-b", change.pop("clips", PERFECT), **change)
    with pytest.raises(RunsNotComparable) as caught:
        compare_runs(run_view(a), run_view(b))
    message = str(caught.value)
    assert "\n" not in message and says in message, message
    assert "runs run-a and run-b cannot be compared" in message


def test_an_action_unit_run_is_refused_before_any_uf1_uar_comparison():
    """UF1/UAR are class scores; an AU run's per-AU 0/1 targets have none to compare."""
    aus = make_run("run-aus", PERFECT, target="aus", classes=("AU1", "AU2", "AU4"))
    assert aus.header.target == "aus" and aus.folds[0].y_true.shape == (3, 3)
    with pytest.raises(RunViewError, match=r"^run run-aus: target 'aus' is multi-label; UF1/UAR"):
        run_view(aus)
    run_view(make_run("run-emotion", PERFECT))  # the same clips as classes are viewed


def test_a_side_must_hold_seeds_of_one_configuration():
    a0, a1 = make_run("a0", PERFECT, seed=0), make_run("a1", PERFECT, seed=1, epochs=5)
    with pytest.raises(RunsNotComparable, match="runs a0 and a1 are not seeds of one config"):
        compare_runs([run_view(a0), run_view(a1)], run_view(a0))
    twice = make_run("a0bis", PERFECT, seed=0)
    with pytest.raises(RunsNotComparable, match="runs a0 and a0bis have the same seed 0"):
        compare_runs([run_view(a0), run_view(twice)], run_view(a0))


def test_each_dataset_of_a_composite_is_compared_on_its_own_subjects():
    a = make_run("A", {"smic/s1": ([0, 1, 2], [0, 1, 2]), "samm/006": ([0, 2], [0, 2])})
    b = make_run(
        "B", {"smic/s1": ([0, 1, 2], [0, 0, 2]), "samm/006": ([0, 2], [0, 2])}, model="other"
    )
    table = table_of(a, b)
    parts = compare_per_dataset([run_view(a, table)], [run_view(b, table)], n_resamples=200)
    assert sorted(parts) == ["samm", "smic"]
    assert parts["samm"].uf1_diff == 0.0 and parts["samm"].uf1_ci == (0.0, 0.0)
    # smic alone: B's F1 (2/3, 0, 1) -> 5/9 against 1
    assert parts["smic"].uf1_diff == pytest.approx(4 / 9, abs=1e-12)
    assert parts["smic"].resampling.n_subjects == 1


# --- the command on a real store ------------------------------------------------------------


def _store_with_runs(tmp_path):
    """A 6-clip CASME II store (3 subjects) and hand-made records of its clips: ``good``
    (all right), ``bad`` (class 0 always) and ``other-version`` (naming another version)."""
    from test_store import make_plan, write_version

    from mer_prep.store import open_store
    from mer_prep.train.runs_store import save_run

    path = tmp_path / "s"
    write_version(make_plan(path, n=6))
    store = open_store(path)
    table = store.table
    label = {n: k for k, n in enumerate(store.class_names)}
    clips, ids = {}, {}
    for subject, part in table.groupby("subject", sort=True):
        y = [label[x] for x in part["label_name"]]
        clips[subject], ids[subject] = (y, y), part["sample_id"].tolist()
    common = {
        "classes": tuple(store.class_names),
        "version": store.version_id,
        "snapshot": store.session.snapshot_id,
        "sample_ids": ids,
    }
    save_run(path, make_run("good", clips, config={"filters": [8, 16]}, **common))
    save_run(
        path,
        make_run(
            "bad", {s: (y, [0] * len(y)) for s, (y, _) in clips.items()}, model="other", **common
        ),
    )
    save_run(path, make_run("other-version", clips, **{**common, "version": "elsewhere"}))
    return path


def test_the_compare_command_says_what_each_number_came_from(tmp_path):
    path = _store_with_runs(tmp_path)
    result = CliRunner().invoke(main, ["compare", str(path), "good", "bad", "--resamples", "500"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "A: good: 1 seed (0)"
    assert (
        lines[1]
        .strip()
        .startswith(
            "mbcc/difference; overrides filters=[8, 16]; 2 epochs; "
            "split loso; selection last_epoch; target emotion"
        )
    )
    assert lines[2] == "B: bad: 1 seed (0)"
    assert lines[3].strip().startswith("other/difference; overrides none;")
    assert "3 test subjects" in lines[4] and "6 clips" in lines[4]
    # bad predicts class 0 everywhere: F1 (2/3, 0) -> UF1 1/3, UAR 1/2
    uf1 = next(line for line in lines if line.startswith("UF1")).split()
    assert uf1[1:4] == ["1.000", "0.333", "+0.667"], uf1
    uar = next(line for line in lines if line.startswith("UAR")).split()
    assert uar[1:4] == ["1.000", "0.500", "+0.500"], uar
    assert "LEAKY" not in result.output and "per source dataset" not in result.output

    itself = CliRunner().invoke(main, ["compare", str(path), "good", "good"])
    assert itself.exit_code == 0, itself.output
    assert "+0.000  [+0.000, +0.000]" in itself.output

    refused = CliRunner().invoke(main, ["compare", str(path), "good", "other-version"])
    assert refused.exit_code == 2 and refused.output.count("\n") == 1, refused.output
    assert refused.output.startswith(
        "error: runs good and other-version cannot be compared: store version "
    )


def test_leaky_selection_is_labelled_in_compare_and_placed_under_its_clean_row(tmp_path):
    """A test-oracle twin of ``good`` (same folds, seeds and model): compared, and listed
    unranked right under ``good`` with the difference, never above it."""
    from mer_prep.store import open_store
    from mer_prep.train.runs_store import list_runs, load_run, save_run

    path = _store_with_runs(tmp_path)
    good = load_run(path, "good")
    store = open_store(path)
    wrong_once = {
        f.name: (f.y_true.tolist(), [1 - f.y_true[0], *f.y_true[1:].tolist()]) for f in good.folds
    }
    save_run(
        path,
        make_run(
            "oracle",
            wrong_once,
            selection="test-oracle",
            config={"filters": [8, 16]},
            classes=tuple(store.class_names),
            version=store.version_id,
            snapshot=store.session.snapshot_id,
            sample_ids={f.name: f.sample_ids.tolist() for f in good.folds},
        ),
    )
    result = CliRunner().invoke(main, ["compare", str(path), "oracle", "good"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[1].endswith("LEAKY (test-subject epoch selection)")
    assert lines[-1].startswith(
        "A is LEAKY (test-subject epoch selection): its scores are not subject-independent"
    )
    board = CliRunner().invoke(main, ["runs", str(path), "--leaderboard"])
    assert board.exit_code == 0, board.output
    rows = board.output.splitlines()
    # ranked: good (1.000) and other-version (1.000), then bad; the oracle (lower: one clip
    # wrong per subject) stands under good, unranked, with its (negative) difference
    assert [r.split()[0] for r in rows[1:5]] == ["1", "mbcc/difference", "2", "3"], rows
    assert "LEAKY selection" in rows[2] and "2 epochs; test-oracle)" in rows[2]
    oracle_uf1 = next(r for r in list_runs(path) if r.run_id == "oracle").uf1
    assert f"{oracle_uf1 - 1.0:+.3f} UF1" in rows[2]
    assert rows[-1].startswith("LEAKY rows are not ranked")


def test_the_command_default_is_the_library_default_and_loads_nothing_heavy_at_start():
    import subprocess
    import sys

    from mer_prep.cli.compare import DEFAULT_RESAMPLES

    assert DEFAULT_RESAMPLES == bootstrap.DEFAULT_RESAMPLES
    # pandas comes with run_view: a command's start (mer-prep --help, a refused name) skips it
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, mer_prep.cli; print('mer_prep.evaluation.run_view' in sys.modules)",
        ],
        capture_output=True,
        text=True,
    )
    assert loaded.stdout.strip() == "False", loaded.stderr
