"""Issue 24 item 4: the spotting leaderboard: methods x datasets, ME / MaE / overall F1 and
STRS, mean +- sd over seeds, clean rows ranked per dataset, LEAKY rows unranked beside their
clean twins; and the whole path through `mer-prep spot` and `mer-prep runs --leaderboard
--spotting` on a store."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from mer_prep.cli import main
from mer_prep.spotting.board import COLUMNS, SHOWN, spot_leaderboard
from mer_prep.spotting.records import SpotRunRecord, list_spot_runs


def _run(
    run_id,
    method,
    overall,
    *,
    me=0.2,
    mae=0.6,
    dataset="samm-lv",
    seed=None,
    leaky=False,
    strs=None,
):
    attrs = {
        "run_id": run_id,
        "created": f"2026-12-06T00:00:{len(run_id):02d}",
        "method": method,
        "split": "loso",
        "tune_on": "test" if leaky else "train",
        "leaky": leaky,
        "store": {"dataset": dataset, "version_id": "v-1"},
        "grid": {"p": [0.1, 0.2]},
        "regions": ["brows"],
        "metrics": {"me": {"f1": me}, "mae": {"f1": mae}, "overall": {"f1": overall}},
    }
    if seed is not None:  # a learned run: its seed and timings are not its configuration
        attrs["training"] = {"settings": {"epochs": 10}, "seed": seed, "timings_s": {"fit": seed}}
    if strs is not None:
        attrs["strs"] = {"strs": strs}
    return SpotRunRecord(attrs=attrs, arrays={})


def _records():
    return [
        _run("mdmd-a", "mdmd", 0.30),
        _run("thr-a", "threshold", 0.40),
        _run("thr-leak", "threshold", 0.55, leaky=True),
        *(
            _run(f"soft{s}", "softnet", f, seed=s, strs=f / 2)
            for s, f in enumerate((0.3, 0.5, 0.5))
        ),
        _run("mdmd-c", "mdmd", 0.10, dataset="casme-sq-long"),
        _run("orphan-leak", "threshold", 0.90, dataset="casme-sq-long", leaky=True, me=0.0),
        _run("mdmd-a-again", "mdmd", 0.32),  # a rerun of mdmd-a's configuration: replaces it
    ]


def test_rows_are_ranked_per_dataset_by_the_mean_never_a_best_seed():
    board = spot_leaderboard(_records())
    rows = [(r.dataset, r.rank, r.first.method, r.leakage) for r in board.rows]
    assert rows == [
        ("casme-sq-long", None, "threshold", "LEAKY tuned on test"),  # no clean twin: by its mean
        ("casme-sq-long", 1, "mdmd", "clean"),
        ("samm-lv", 1, "softnet", "clean"),  # mean 0.433 > 0.40 although its seed 0 scored 0.3
        ("samm-lv", 2, "threshold", "clean"),
        ("samm-lv", None, "threshold", "LEAKY tuned on test"),
        ("samm-lv", 3, "mdmd", "clean"),
    ]
    soft = board.rows[2]
    assert soft.stat("overall_f1") == pytest.approx((1.3 / 3, np.std([0.3, 0.5, 0.5], ddof=1)))
    assert soft.stat("strs")[0] == pytest.approx(1.3 / 6)
    assert [r.run_id for r in board.rows[5].runs] == ["mdmd-a-again"]
    leak = board.rows[4]
    assert leak.vs_clean["overall_f1"] == pytest.approx(0.15)
    cells = leak.cells()
    assert cells["rank"] == "" and cells["vs clean"] == "+0.150 overall F1"  # no STRS: not shown
    assert soft.cells()["overall F1"] == f"0.433 ± {np.std([0.3, 0.5, 0.5], ddof=1):.3f}"
    assert soft.cells()["seeds"] == "3 seeds" and board.rows[5].cells()["seeds"] == "1 seed"
    assert board.rows[5].cells()["STRS"] == "-" and board.rows[3].cells()["STRS"] == "-"


def test_csv_and_markdown_carry_every_row():
    board = spot_leaderboard(_records())
    back = pd.read_csv(__import__("io").StringIO(board.csv()), dtype={"seeds": str})
    assert list(back.columns) == list(COLUMNS)
    assert back["overall_f1_mean"].tolist() == pytest.approx(
        [0.9, 0.1, 1.3 / 3, 0.4, 0.55, 0.32], abs=5e-5
    )
    assert back["seeds"].tolist()[2] == "0 1 2" and back["leakage"].tolist()[0].startswith("LEAKY")
    markdown = board.markdown().splitlines()
    assert markdown[0] == "| " + " | ".join(SHOWN) + " |" and len(markdown) == 2 + 6


def test_the_command_prints_the_spotting_board_of_a_store(tmp_path):
    store = str(tmp_path / "synthetic")
    runner = CliRunner()
    for extra in ([], ["--tune-on-test"]):
        done = runner.invoke(
            main, ["spot", store, "--method", "threshold", "--synthetic", "--subjects", "3", *extra]
        )
        assert done.exit_code == 0, done.output
    clean, leaky = sorted(list_spot_runs(store), key=lambda r: r.leaky)
    printed = runner.invoke(main, ["runs", store, "--leaderboard", "--spotting"])
    assert printed.exit_code == 0, printed.output
    lines = printed.output.splitlines()
    assert lines[0].split()[:3] == ["rank", "method", "dataset"]
    first, second = lines[1], lines[2]
    assert first.startswith("1 ") and f"{clean.metrics['overall']['f1']:.3f}" in first
    assert "LEAKY tuned on test" in second and f"{leaky.metrics['overall']['f1']:.3f}" in second
    diff = leaky.metrics["overall"]["f1"] - clean.metrics["overall"]["f1"]
    assert f"{diff:+.3f} overall F1" in second
    assert "LEAKY rows are not ranked" in lines[-1]
    lone = runner.invoke(main, ["runs", store, "--spotting"])
    assert lone.exit_code == 2 and lone.output.count("\n") == 1
    empty = runner.invoke(main, ["runs", str(tmp_path / "none"), "--leaderboard", "--spotting"])
    assert empty.exit_code != 0 and empty.output.count("\n") == 1
