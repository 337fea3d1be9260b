"""Seeds and the test oracle (issue 22 items 2 and 4): ``--seeds N`` gives N records of one run
group whose mean +- sd is the records' own; ``--selection test-oracle`` is asked for by name,
recorded and shown LEAKY, placed beside the clean run of the same seeds and folds, and scores at
least as high as it on every fold (it keeps the best test epoch of the same trajectory)."""

from __future__ import annotations

import re
import shlex

import numpy as np
import pytest
from click.testing import CliRunner
from handmade_runs import make_run

from mer_prep.cli import main
from mer_prep.evaluation.leaderboard import build_leaderboard, group_runs, read_csv
from mer_prep.evaluation.run_view import run_view
from mer_prep.train.oracle import clean_twin, twin_text
from mer_prep.train.request import TrainRequest, TrainRequestError
from mer_prep.train.seeds import SeedGroup, groups_of, seed_requests

SUBJECTS = [f"casme2/s{s}" for s in range(4)]
RIGHT = {s: ([0, 1, 2], [0, 1, 2]) for s in SUBJECTS}
ONE_WRONG = {**RIGHT, SUBJECTS[0]: ([0, 1, 2], [0, 0, 2])}
TWO_WRONG = {**ONE_WRONG, SUBJECTS[1]: ([0, 1, 2], [1, 1, 2])}
ALL_ZERO = {s: ([0, 1, 2], [0, 0, 0]) for s in SUBJECTS}


def _group(prefix: str, outcomes, *, group_id: str | None, selection: str = "last_epoch"):
    return [
        make_run(f"{prefix}{seed}", clips, seed=seed, selection=selection).with_header(
            group_id=group_id
        )
        for seed, clips in enumerate(outcomes)
    ]


# --- seeds --------------------------------------------------------------------------------------


def test_seed_requests_are_consecutive_single_seed_runs_of_the_same_settings():
    request = TrainRequest.of(store="s", seed=7, seeds=3, epochs=2)
    made = seed_requests(request)
    assert [(r.seed, r.seeds, r.epochs) for r in made] == [(7, 1, 2), (8, 1, 2), (9, 1, 2)]
    with pytest.raises(TrainRequestError, match="seeds must be >= 1, got 0"):
        TrainRequest.of(store="s", seeds=0)
    with pytest.raises(TrainRequestError, match="passes 4294967295"):
        TrainRequest.of(store="s", seed=2**32 - 2, seeds=3)


def test_a_group_is_its_records_mean_and_sample_sd_and_one_seed_says_so():
    records = _group("a", [RIGHT, ONE_WRONG, TWO_WRONG], group_id="group-a")
    (group,) = groups_of(reversed(records))
    assert group.seeds == (0, 1, 2) and group.group_id == "group-a"
    uf1 = [r.uf1 for r in records]
    assert len(set(uf1)) == 3  # three different scores: the sd is not 0 by accident
    assert group.stat("uf1") == pytest.approx((np.mean(uf1), np.std(uf1, ddof=1)))
    assert f"{np.mean(uf1):.3f} ± {np.std(uf1, ddof=1):.3f}" in group.text()
    assert "3 seeds" in group.text()
    single = SeedGroup(None, (records[0],))
    assert single.stat("uf1") == (1.0, None) and single.seeds_text == "1 seed"
    assert "1 seed" in single.text() and "±" not in single.text()


def test_records_without_a_group_stand_alone_and_groups_do_not_merge():
    grouped = _group("a", [RIGHT, ONE_WRONG], group_id="group-a")
    alone = make_run("b0", TWO_WRONG, seed=5)
    groups = groups_of([grouped[0], alone, grouped[1]])
    assert [(g.group_id, g.seeds) for g in groups] == [("group-a", (0, 1)), (None, (5,))]


def test_the_leaderboard_groups_by_the_recorded_group_and_ranks_by_the_mean():
    """Two groups of one configuration (two `--seeds 2` runs): two rows, not one of 4 seeds;
    the group with the best single seed but the lower mean ranks second."""
    best_seed = _group("a", [RIGHT, ALL_ZERO], group_id="group-a")
    steady = [
        make_run(f"b{seed}", ONE_WRONG, seed=seed).with_header(group_id="group-b")
        for seed in (0, 1)
    ]
    board = build_leaderboard(
        group_runs([run_view(r) for r in best_seed + steady]), n_resamples=200
    )
    assert [(r.rank, r.first.group_id, len(r.views)) for r in board.rows] == [
        (1, "group-b", 2),
        (2, "group-a", 2),
    ]
    assert max(best_seed[0].uf1, best_seed[1].uf1) > steady[0].uf1  # a best seed would flip it


# --- the test oracle ----------------------------------------------------------------------------


def test_an_oracle_group_is_shown_beside_its_clean_twin_with_the_difference():
    oracle = SeedGroup(
        "group-o", tuple(_group("o", [RIGHT, RIGHT], group_id="group-o", selection="test_oracle"))
    )
    assert all(r.leak_label == "LEAKY (test-subject epoch selection)" for r in oracle.records)
    other_seeds = _group("c", [ONE_WRONG], group_id=None)
    assert clean_twin(oracle, other_seeds) is None
    text = twin_text(oracle, None, "mer-prep train s --model mbcc --selection last_epoch")
    assert text.splitlines()[0].startswith("LEAKY (test-subject epoch selection)")
    assert "no clean run of the same model, settings, folds and seeds (0 1)" in text
    assert text.endswith("make one with: mer-prep train s --model mbcc --selection last_epoch")

    clean = _group("c", [ONE_WRONG, TWO_WRONG], group_id="group-c")
    validation = _group("v", [RIGHT, RIGHT], group_id="group-v", selection="validation")
    twin = clean_twin(oracle, [*validation, *clean, *oracle.records])
    assert twin is not None and twin.group_id == "group-c"  # last_epoch: the same trajectory
    diff = np.mean([1.0, 1.0]) - np.mean([clean[0].uf1, clean[1].uf1])
    text = twin_text(oracle, twin, "unused")
    assert f"UF1 {diff:+.3f}" in text and "clean (last_epoch)" in text and "unused" not in text


def test_wrong_use_is_one_line():
    runner = CliRunner()
    for selection in ("oracle", "test_oracle"):  # only the spelt-out name selects it
        result = runner.invoke(main, ["train", "s", "--model", "mbcc", "--selection", selection])
        assert result.exit_code == 2, result.output
        assert "Invalid value for '--selection'" in result.output
    with pytest.raises(TrainRequestError) as caught:
        TrainRequest.of(store="s", selection="oracle")
    assert "\n" not in str(caught.value) and "test_oracle" in str(caught.value)


# --- trained on a tiny store --------------------------------------------------------------------


def _scores_of(output: str, label: str) -> list[str]:
    line = next(x for x in output.splitlines() if label in x)
    return re.findall(r"UF1 (\S+(?: ± \S+)?)", line)


@pytest.mark.slow  # three trainings on a tiny store: about 30 s on the two shared cores
def test_seeds_3_gives_three_records_of_one_group_and_their_mean_and_sd(tmp_path, monkeypatch):
    from test_run_records import _tiny_store, _train_cli

    from mer_prep.train.runs_store import list_runs

    path = _tiny_store(tmp_path / "s", monkeypatch)
    result = _train_cli(path, "--seed", "4", "--seeds", "3")
    assert result.exit_code == 0, result.output
    records = list_runs(path)
    assert sorted(r.seed for r in records) == [4, 5, 6]
    (group_id,) = {r.group_id for r in records}
    assert group_id is not None and group_id.startswith("group-")
    uf1 = np.array([r.uf1 for r in records])
    mean, sd = np.mean(uf1), np.std(uf1, ddof=1)
    assert _scores_of(result.output, "mean ± sd over 3 seeds") == [f"{mean:.3f} ± {sd:.3f}"]

    listed = CliRunner().invoke(main, ["runs", str(path)])
    assert listed.exit_code == 0, listed.output
    row = next(x for x in listed.output.splitlines() if x.startswith(group_id))
    assert "3 seeds" in row and f"{mean:.3f} ± {sd:.3f}" in row

    board = CliRunner().invoke(main, ["runs", str(path), "--leaderboard", "--format", "csv"])
    (line,) = read_csv(board.output).to_dict("records")
    assert (line["n_seeds"], line["seeds"], line["rank"]) == (3, "4 5 6", 1)
    assert line["uf1_mean"] == pytest.approx(mean, abs=5e-5)

    # `compare` takes the group's id for all its seeds; the group against itself differs by 0,
    # within an interval that resamples subjects and seeds
    itself = CliRunner().invoke(main, ["compare", str(path), group_id, group_id])
    assert itself.exit_code == 0, itself.output
    assert f"A: {' '.join(r.run_id for r in sorted(records, key=lambda r: r.seed))}: " in (
        itself.output
    )
    uf1 = next(x for x in itself.output.splitlines() if x.startswith("UF1")).split()
    low, high = (float(v.strip("[],")) for v in uf1[4:6])
    assert uf1[1:4] == [f"{mean:.3f}", f"{mean:.3f}", "+0.000"] and low <= 0 <= high
    missing = CliRunner().invoke(main, ["compare", str(path), "group-x", group_id])
    assert missing.exit_code == 2
    assert missing.output == f"error: store {path} records no run of group group-x\n"

    one = _train_cli(path, "--seed", "9")
    assert one.exit_code == 0 and "1 seed" in one.output, one.output


@pytest.mark.slow  # three trainings of 4 epochs on a tiny store: about 35 s
def test_the_test_oracle_is_leaky_and_beats_its_clean_twin_on_every_fold(tmp_path, monkeypatch):
    from test_run_records import _tiny_store, _train_cli

    from mer_prep.train.runs_store import list_runs

    path = _tiny_store(tmp_path / "s", monkeypatch)
    oracle_args = ("--epochs", "4", "--selection", "test-oracle")
    first = _train_cli(path, *oracle_args)
    assert first.exit_code == 0, first.output
    header = next(x for x in first.output.splitlines() if x.startswith("run "))
    assert header.endswith("LEAKY (test-subject epoch selection)"), header
    assert "no clean run of the same model, settings, folds and seeds (0)" in first.output
    command = first.output.rstrip().splitlines()[-1].split("make one with: ")[1]
    assert command == (
        f"mer-prep train {path} --model mbcc --variant difference --split loso --epochs 4 "
        f"--batch-size 4 --seed 0 --seeds 1 --set dense=32 --set 'filters=[8, 16]' "
        f"--selection last_epoch"
    )
    clean = CliRunner().invoke(main, [*shlex.split(command)[1:], "--quiet"])  # as printed
    assert clean.exit_code == 0 and "LEAKY" not in clean.output, clean.output
    again = _train_cli(path, *oracle_args)
    assert again.exit_code == 0, again.output

    runs = {r.run_id: r for r in list_runs(path)}
    oracles = [r for r in runs.values() if r.leaky_selection]
    (twin,) = [r for r in runs.values() if not r.leaky_selection]
    assert len(oracles) == 2 and all(r.leak_label for r in oracles)
    for oracle in oracles:
        assert oracle.training["selection"] == "test_oracle"
        for mine, theirs in zip(oracle.folds, twin.folds, strict=True):
            # the same trajectory: the oracle's last-epoch test score is the clean fold's score
            assert mine.curves[-1].validation == pytest.approx(theirs.metrics["uf1"])
            assert mine.metrics["uf1"] >= theirs.metrics["uf1"]
            assert mine.metrics["uf1"] == pytest.approx(max(c.validation for c in mine.curves))
    diff = oracles[-1].uf1 - twin.uf1
    assert f"oracle - clean: UF1 {diff:+.3f}" in again.output
    assert twin.run_id in again.output

    listed = CliRunner().invoke(main, ["runs", str(path)]).output
    for oracle in oracles:
        row = next(x for x in listed.splitlines() if f" {oracle.run_id} " in x)
        assert "LEAKY" in row
    board = CliRunner().invoke(main, ["runs", str(path), "--leaderboard", "--format", "csv"])
    leakage = read_csv(board.output)["leakage"].tolist()
    # the two oracle runs of one configuration and seed are one row (the later run kept)
    assert leakage == ["clean", "LEAKY selection"]

    # the `show` report's runs section and the train flow's leaderboard artifact say the same
    from mer_prep.plot.report import write_report
    from mer_prep.store import open_store
    from mer_prep.train.store_board import leaderboard_markdown

    page = write_report(open_store(path), tmp_path / "r.html", runs=list_runs(path)).path
    section = page.read_text()[page.read_text().index('id="runs"') :]
    assert "leaderboard of seed groups" in section
    assert section.count("<span class=leaky>LEAKY selection</span>") == 1
    assert section.count("LEAKY (test-subject epoch selection)") == 2  # each oracle run's row
    markdown = leaderboard_markdown(str(path))
    rows = [x for x in markdown.splitlines() if x.startswith("| ") and "mbcc" in x]
    assert len(rows) == 2 and "LEAKY selection" in rows[1] and "| 1 |" in rows[0]
    assert f"{oracles[-1].uf1 - twin.uf1:+.3f} UF1" in rows[1]


def test_a_served_run_uses_the_oracle_or_seeds_only_where_its_training_sets_them(tmp_path):
    from test_train_flow import GOOD, _config

    from mer_prep.errors import ConfigError

    config = _config(tmp_path, GOOD)
    quick = config.training_deployments()[0].parameters
    for name, value in (("selection", "test_oracle"), ("seeds", 3)):
        with pytest.raises(ConfigError, match=rf"\b{name}\b"):
            config.check_run({**quick, name: value}, flow="train")
    oracle = GOOD.replace("epochs = 2\n", 'epochs = 2\nselection = "test_oracle"\nseeds = 3\n', 1)
    (tmp_path / "o").mkdir()
    configured = _config(tmp_path / "o", oracle)
    params = configured.training_deployments()[0].parameters
    assert (params["selection"], params["seeds"]) == ("test_oracle", 3)
    configured.check_run(params, flow="train")
    with pytest.raises(ConfigError, match=r"\bselection\b"):
        configured.check_run({**params, "selection": "last_epoch"}, flow="train")


@pytest.mark.slow  # the train flow on a local Dask cluster of one worker, two seeds
def test_the_train_flow_trains_each_seed_into_one_group(tmp_path, monkeypatch, prefect_server):
    from server_harness import get_json
    from test_run_records import QUICK_MBCC, _tiny_store

    from flows.train import leaderboard_key, run_train
    from mer_prep.train.runs_store import list_runs
    from mer_prep.train.store_board import leaderboard_markdown

    path = _tiny_store(tmp_path / "s", monkeypatch)
    last = run_train(str(path), "mbcc", n_workers=1, seed=3, seeds=2, dataset="seeds", **QUICK_MBCC)
    records = list_runs(path)
    assert sorted(r.seed for r in records) == [3, 4] and last.seed == 4
    assert {r.group_id for r in records} == {last.group_id} and last.group_id is not None
    # the store's leaderboard is the flow's artifact: one row of 2 seeds
    board = get_json(f"{prefect_server}/artifacts/{leaderboard_key('seeds')}/latest")["data"]
    assert board == leaderboard_markdown(str(path))
    (row,) = [x for x in board.splitlines() if x.startswith("| 1 |")]
    assert "2 seeds" in row and "mbcc/difference" in row


def test_a_preset_cannot_select_on_the_test_subject_only_a_run_that_names_it(tmp_path, monkeypatch):
    """A model whose preset said test_oracle is refused in one line; the same run asking for
    it by name plans, and a fold only hands its test rows to training under that name."""
    import dataclasses

    from test_run_records import QUICK_MBCC, _tiny_store

    from mer_prep.models.registry import MODELS
    from mer_prep.train.engine import read_test_rows_for_oracle
    from mer_prep.train.errors import LeakError, TrainSetupError
    from mer_prep.train.plan import plan_run

    path = _tiny_store(tmp_path / "s", monkeypatch)
    spec = MODELS["mbcc"]
    leaky = dataclasses.replace(
        spec, training=dataclasses.replace(spec.training, selection="test_oracle")
    )
    import mer_prep.models

    # the registry is read-only: the plan's look-up answers the altered preset instead
    monkeypatch.setattr(mer_prep.models, "get_model", lambda name: {"mbcc": leaky}[name])
    settings = {k: v for k, v in QUICK_MBCC.items() if k != "selection"}
    with pytest.raises(TrainSetupError) as refused:
        plan_run(path, "mbcc", **settings)
    assert str(refused.value) == "selection must be 'validation' or 'last_epoch', not 'test_oracle'"
    plan = plan_run(path, "mbcc", selection="test_oracle", **settings)
    assert plan.preset.selection == "test_oracle" and plan.preset.validation_metric == "uf1"
    assert plan.header.leak_label == "LEAKY (test-subject epoch selection)"
    fold = next(plan.folds())
    assert fold.validation is None  # trained on every training subject, as the oracle is
    assert read_test_rows_for_oracle(fold, plan.preset) is fold.test
    with pytest.raises(LeakError, match="only 'test_oracle' may"):
        read_test_rows_for_oracle(fold, dataclasses.replace(plan.preset, selection="last_epoch"))
