"""The leaderboard: one row per configuration, ranked by the mean over seeds (never a best seed),
mean +- sd and bootstrap intervals, LEAKY rows unranked and next to their clean rows, csv and
markdown that read back as written; and the whole path on a real store with trained runs."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner
from handmade_runs import make_run

from mer_prep.cli import main
from mer_prep.evaluation.leaderboard import COLUMNS, SHOWN, build_leaderboard, group_runs, read_csv
from mer_prep.evaluation.metrics import confusion_matrix, scores
from mer_prep.evaluation.run_view import run_view

SUBJECTS = [f"casme2/s{s}" for s in range(4)]
RIGHT = {s: ([0, 1, 2], [0, 1, 2]) for s in SUBJECTS}
ALL_ZERO = {s: ([0, 1, 2], [0, 0, 0]) for s in SUBJECTS}
ONE_WRONG = {**RIGHT, SUBJECTS[0]: ([0, 1, 2], [0, 0, 2])}
HALF = {**RIGHT, SUBJECTS[2]: ([0, 1, 2], [0, 0, 0]), SUBJECTS[3]: ([0, 1, 2], [0, 0, 0])}


def _uf1(record) -> float:
    y_true = np.concatenate([f.y_true for f in record.folds])
    y_pred = np.concatenate([f.y_pred for f in record.folds])
    return scores(confusion_matrix(y_true, y_pred, 3))["uf1"]


def _records():
    """alpha: 3 seeds, UF1 (1, 1/6, 1/6); its test-oracle twin on the same seeds: all right;
    beta: 1 seed, one clip wrong (UF1 0.915 < alpha's best seed 1.0, > alpha's mean 4/9);
    gamma: a leaky split, 1 seed, UF1 2/3, no clean twin."""
    alpha = [make_run(f"alpha{s}", [RIGHT, ALL_ZERO, ALL_ZERO][s], seed=s) for s in range(3)]
    oracle = [make_run(f"oracle{s}", RIGHT, seed=s, selection="test-oracle") for s in range(3)]
    beta = [make_run("beta0", ONE_WRONG, model="beta")]
    gamma = [make_run("gamma0", HALF, model="gamma", leaky=True, split="random")]
    return alpha, oracle, beta, gamma


def _board():
    alpha, oracle, beta, gamma = _records()
    views = [
        run_view(r)
        for r in (oracle[1], gamma[0], alpha[2], beta[0], alpha[0], oracle[0], alpha[1], oracle[2])
    ]
    return build_leaderboard(group_runs(views), n_resamples=1000)


def test_rows_are_ranked_by_the_mean_over_seeds_not_the_best_seed():
    alpha, oracle, beta, gamma = _records()
    assert [_uf1(r) for r in alpha] == pytest.approx([1.0, 1 / 6, 1 / 6], abs=1e-12)
    assert _uf1(beta[0]) == pytest.approx((8 / 9 + 6 / 7 + 1) / 3, abs=1e-12)
    board = _board()
    assert [(r.first.model, r.leakage, r.rank) for r in board.rows] == [
        ("beta", "clean", 1),
        ("gamma", "LEAKY split", None),
        ("mbcc", "clean", 2),
        ("mbcc", "LEAKY selection", None),
    ]
    beta_row, gamma_row, alpha_row, oracle_row = board.rows
    assert alpha_row.seeds == oracle_row.seeds == (0, 1, 2)
    assert alpha_row.stat("uf1") == pytest.approx(
        (4 / 9, np.std([1, 1 / 6, 1 / 6], ddof=1)), abs=1e-12
    )
    assert alpha_row.stat("uar")[0] == pytest.approx((1 + 1 / 3 + 1 / 3) / 3, abs=1e-12)
    assert beta_row.stat("uf1") == (pytest.approx(_uf1(beta[0]), abs=1e-12), None)
    assert gamma_row.stat("uf1")[0] == pytest.approx(2 / 3, abs=1e-12)
    # the leaky twin sits under its clean row with the difference: 1 - 4/9
    assert oracle_row.vs_clean_uf1 == pytest.approx(5 / 9, abs=1e-12)
    assert oracle_row.vs_clean_uar == pytest.approx(1 - 5 / 9, abs=1e-12)
    assert gamma_row.vs_clean_uf1 is None and alpha_row.vs_clean_uf1 is None
    # intervals: a perfect single seed cannot move; three seeds of 1 and 1/6 can
    assert oracle_row.uf1_ci == (1.0, 1.0)
    assert alpha_row.uf1_ci[0] < 4 / 9 < alpha_row.uf1_ci[1]
    assert alpha_row.uf1_ci[0] >= 1 / 6 - 1e-12 and alpha_row.uf1_ci[1] <= 1.0 + 1e-12


def test_cells_say_one_seed_and_mean_plus_minus_sd():
    cells = [r.cells() for r in _board().rows]
    assert cells[0]["seeds"] == "1 seed" and cells[0]["UF1 mean ± sd"] == "0.915"
    assert cells[2]["seeds"] == "3 seeds" and cells[2]["UF1 mean ± sd"] == "0.444 ± 0.481"
    assert cells[2]["rank"] == "2" and cells[3]["rank"] == "" and cells[1]["rank"] == ""
    assert cells[3]["vs clean"] == "+0.556 UF1, +0.444 UAR"
    assert cells[3]["leakage"] == "LEAKY selection" and cells[1]["leakage"] == "LEAKY split"
    text = _board().text().splitlines()
    assert text[0].split()[:3] == ["rank", "model", "split"] and len(text) == 5


def test_seeds_of_one_configuration_form_one_group_and_a_repeated_seed_keeps_the_later_run():
    alpha, oracle, beta, gamma = _records()
    again = make_run("alpha1-again", RIGHT, seed=1)
    groups = group_runs([run_view(r) for r in (*alpha, again, *beta)])
    assert [[v.run_id for v in g] for g in groups] == [
        ["alpha0", "alpha1-again", "alpha2"],
        ["beta0"],
    ]


def test_csv_reads_back_as_written():
    board = _board()
    back = read_csv(board.csv())
    assert list(back.columns) == list(COLUMNS)
    expected = board.frame()
    text_columns = [c for c in COLUMNS if isinstance(expected[c][0], str)]
    assert text_columns == "model variant settings split target version leakage seeds runs".split()
    for column in text_columns:
        assert back[column].tolist() == expected[column].tolist(), column
    assert back["seeds"].tolist() == ["0", "0", "0 1 2", "0 1 2"]
    assert back["runs"].tolist()[2] == "alpha0 alpha1 alpha2"
    numbers = [c for c in COLUMNS if c not in text_columns]
    assert {"rank", "n_seeds", "uf1_mean", "uar_ci_high", "vs_clean_uar"} < set(numbers)
    for column in numbers:
        np.testing.assert_allclose(
            back[column].to_numpy(float),
            expected[column].to_numpy(float),
            atol=5e-5,
            err_msg=column,
        )
    assert np.isnan(back["rank"][1]) and back["rank"][2] == 2


def test_markdown_reads_back_as_the_cells():
    board = _board()
    lines = board.markdown().splitlines()

    def parse(line):
        return [cell.strip() for cell in line.strip()[1:-1].split(" | ")]

    assert parse(lines[0]) == list(SHOWN) and set(lines[1]) == {"|", "-"}
    assert [parse(line) for line in lines[2:]] == [
        [r.cells()[c] for c in SHOWN] for r in board.rows
    ]


@pytest.mark.slow  # two trainings: about 40 s on the two shared cores
def test_the_leaderboard_of_trained_runs_on_a_real_store(tmp_path, monkeypatch):
    """Two seeds of one mbcc configuration trained on a tiny store: one row, 2 seeds, the mean
    of the records' pooled UF1; `compare` of the two seeds and of a seed with itself."""
    from test_run_records import QUICK_MBCC, _tiny_store

    from mer_prep.train import train

    path = _tiny_store(tmp_path / "s", monkeypatch)
    runs = [train(path, "mbcc", seed=seed, **QUICK_MBCC) for seed in (0, 1)]
    result = CliRunner().invoke(main, ["runs", str(path), "--leaderboard", "--format", "csv"])
    assert result.exit_code == 0, result.output
    (row,) = read_csv(result.output).to_dict("records")
    assert (row["model"], row["n_seeds"], row["seeds"], row["leakage"], row["rank"]) == (
        "mbcc",
        2,
        "0 1",
        "clean",
        1,
    )
    assert row["uf1_mean"] == pytest.approx(np.mean([r.uf1 for r in runs]), abs=5e-5)
    assert row["uf1_sd"] == pytest.approx(np.std([r.uf1 for r in runs], ddof=1), abs=5e-5)
    assert row["uf1_ci_low"] <= row["uf1_mean"] <= row["uf1_ci_high"]
    table = CliRunner().invoke(main, ["runs", str(path), "--leaderboard"])
    assert table.exit_code == 0 and "2 seeds" in table.output, table.output

    a, b = (r.run_id for r in runs)
    compared = CliRunner().invoke(main, ["compare", str(path), a, b, "--resamples", "500"])
    assert compared.exit_code == 0, compared.output
    uf1 = next(line for line in compared.output.splitlines() if line.startswith("UF1")).split()
    assert uf1[1:4] == [
        f"{runs[0].uf1:.3f}",
        f"{runs[1].uf1:.3f}",
        f"{runs[0].uf1 - runs[1].uf1:+.3f}",
    ]
    itself = CliRunner().invoke(main, ["compare", str(path), a, a])
    assert "+0.000  [+0.000, +0.000]" in itself.output, itself.output


def test_a_run_that_cannot_be_scored_is_left_out_on_stderr_and_the_csv_stays_clean(tmp_path):
    """A record whose clips are not in its store version's table (here: made-up sample ids)."""
    from test_compare import _store_with_runs

    from mer_prep.store import open_store
    from mer_prep.train.runs_store import save_run

    path = _store_with_runs(tmp_path)
    store = open_store(path)
    two_classes = {s: ([0, 1], [0, 1]) for s in SUBJECTS}
    save_run(
        path,
        make_run(
            "stray",
            two_classes,
            classes=tuple(store.class_names),
            version=store.version_id,
            snapshot=store.session.snapshot_id,
        ),
    )
    result = CliRunner().invoke(main, ["runs", str(path), "--leaderboard", "--format", "csv"])
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == [
        "not in the leaderboard: run stray: 8 scored clip(s) are not in the store version's "
        "sample table (first 'casme2/s0/c0')"
    ]
    back = read_csv(result.stdout)
    assert back["runs"].tolist() == ["good", "other-version", "bad"]


def _au_macro_f1(record) -> float:
    """Oracle: sklearn's per-AU F1 on the pooled (n, K) 0/1 arrays, averaged over the AUs that
    occur in the truth."""
    from sklearn.metrics import f1_score

    y_true = np.concatenate([f.y_true for f in record.folds])
    y_pred = np.concatenate([f.y_pred for f in record.folds])
    per_au = f1_score(y_true, y_pred, average=None, zero_division=0.0)
    return float(per_au[y_true.sum(0) > 0].mean())


def test_au_runs_are_ranked_apart_by_their_macro_f1_with_leaky_rows_beside_clean_ones():
    alpha, _, beta, _ = _records()
    au = [
        make_run(f"au{s}", [RIGHT, ONE_WRONG, HALF][s], seed=s, target="aus", model="au")
        for s in range(3)
    ]
    au_oracle = [
        make_run(f"au-oracle{s}", RIGHT, seed=s, target="aus", model="au", selection="test-oracle")
        for s in range(3)
    ]
    views = [run_view(r, multilabel=True) for r in (*au_oracle, *alpha, *au, *beta)]
    board = build_leaderboard(group_runs(views), n_resamples=1000)
    assert [r.first.model for r in board.emotion_rows] == ["beta", "mbcc"]
    au_row, au_leaky = board.au_rows
    assert [au_row.rank, au_leaky.rank] == [1, None]  # ranked among the AU rows alone
    expected = [_au_macro_f1(r) for r in au]
    assert len(set(expected)) == 3 and expected[0] == 1.0
    assert au_row.stat("au_macro_f1") == pytest.approx(
        (np.mean(expected), np.std(expected, ddof=1))
    )
    assert (
        au_row.intervals["au_macro_f1"][0]
        <= np.mean(expected)
        <= au_row.intervals["au_macro_f1"][1]
    )
    assert au_leaky.leakage == "LEAKY selection"
    assert au_leaky.vs_clean == {"au_macro_f1": pytest.approx(1.0 - np.mean(expected))}
    text = board.text()
    assert "AU detection (target aus)" in text and "AU macro F1 mean ± sd" in text
    assert f"{np.mean(expected):.3f} ± {np.std(expected, ddof=1):.3f}" in text
    back = read_csv(board.csv()).set_index("runs")
    au_line = back.loc["au0 au1 au2"]
    assert au_line["au_macro_f1_mean"] == pytest.approx(np.mean(expected), abs=5e-5)
    assert np.isnan(au_line["uf1_mean"]) and au_line["target"] == "aus"
    assert np.isnan(back.loc["beta0"]["au_macro_f1_mean"])
    assert "AU detection" in board.markdown()


def test_a_board_without_au_runs_prints_one_table_as_before():
    text = _board().text()
    assert "AU" not in text and text.splitlines()[0].split()[:3] == list(SHOWN[:3])
