"""Served spotting, end to end: a real Prefect server and `mer-prep serve` with a synthetic
long-video dataset, its `spot/<dataset>` deployment and a learned spotter's training
`train/<dataset>-softnet` (`mer_prep.config.spot_trainings`), each run once through the server
with `prefect deployment run ... --watch` and recorded on the store's runs branch; a run with a
parameter the file does not allow ends Failed with the one-line reason and records nothing.

Everything Prefect runs in subprocesses with their own environment (PREFECT_HOME and
PREFECT_API_URL under this test's tmp_path): nothing set here leaks into other tests.
"""

from __future__ import annotations

import re

import pytest
from server_harness import get_json, serving

from mer_prep.pipeline.long_sequence import make_long_version
from mer_prep.pipeline.sequence import InProcess
from mer_prep.spotting.records import list_spot_runs
from mer_prep.synth.long_video_layouts import write_long_layout
from mer_prep.synth.long_videos import plan_long_video

DATASET = "casme-sq-long"
SPOT, TRAIN = f"spot/{DATASET}", f"train/{DATASET}-softnet"


def _state(server, done) -> dict:
    """The Prefect state of the run a ``--watch`` command started (its id from the output)."""
    found = re.search(r"UUID: ([0-9a-f-]{36})", done.stdout)
    assert found, done.stdout + done.stderr
    return get_json(f"{server.api}/flow_runs/{found.group(1)}")


@pytest.mark.slow  # a Prefect server, `mer-prep serve`, a small store and four runs (~50 s)
def test_served_spotting_and_spotter_training_runs_are_recorded_and_checked(tmp_path):
    # five videos, two a subject: three subjects, as a learned spotter's LOSO fold needs two
    # training subjects (one fits, one validates)
    plans = [
        plan_long_video(s + 1, n_frames=90, n_me=1, n_mae=1, n_blinks=0, key="") for s in range(5)
    ]
    write_long_layout(DATASET, tmp_path / "data", plans, quirks=False)
    config = tmp_path / "mer-prep.toml"
    config.write_text(f"""
[defaults]
n_workers = 1
store = "stores/{{dataset}}/{{recipe}}"

[datasets.{DATASET}]
root = "{tmp_path / "data"}"
recipe = "lv64"

[trainings.{DATASET}-softnet]
dataset = "{DATASET}"
model = "softnet"
preset = "quick"
seed = 2
""")
    store = tmp_path / "stores" / DATASET / "lv64"  # the configured store of the first recipe
    made = make_long_version(DATASET, tmp_path / "data", "lv64", store, InProcess())
    assert made.summary.n_ok == 5
    with serving(tmp_path / "served", config, SPOT, TRAIN) as server:
        deployment = get_json(f"{server.api}/deployments/name/{TRAIN}")
        assert deployment["parameters"] == {
            "dataset": DATASET,
            "store": str(store),
            "method": "softnet",
            "seed": 2,
            "preset": "quick",
            "tune_on_test": False,
        }
        spotted = server.deployment_run(SPOT, watch_timeout=240, timeout=300)
        assert spotted.returncode == 0, spotted.stdout + spotted.stderr
        trained = server.deployment_run(TRAIN, watch_timeout=240, timeout=300)
        assert trained.returncode == 0, trained.stdout + trained.stderr
        for done in (spotted, trained):
            assert _state(server, done)["state_type"] == "COMPLETED"
        leaky = server.deployment_run(TRAIN, "tune_on_test=true", watch_timeout=120)
        elsewhere = server.deployment_run(SPOT, f"store={tmp_path / 'other'}", watch_timeout=120)
        refusals = {}
        for name, done in (("tune_on_test", leaky), ("store", elsewhere)):
            assert done.returncode == 1, done.stdout + done.stderr
            state = _state(server, done)["state"]
            assert state["type"] == "FAILED" and "\n" not in state["message"], state
            refusals[name] = state["message"]
        log = (tmp_path / "served" / "serve.log").read_text()
    where = config.resolve()  # the file the refusals name
    assert refusals["tune_on_test"].startswith(
        f"refused: {where}: run parameter tune_on_test=True is not allowed for "
        f"datasets.{DATASET} (allowed: False ({TRAIN}))"
    ), refusals
    assert refusals["store"].startswith(
        f"refused: {where}: run parameter store='{tmp_path / 'other'}' is not allowed"
    ), refusals
    assert "ConfigError" not in log  # refused in one line, no traceback

    by_method = {record.method: record for record in list_spot_runs(str(store))}
    assert sorted(by_method) == ["mdmd", "softnet"]  # the refused runs recorded nothing
    mdmd, softnet = by_method["mdmd"], by_method["softnet"]
    for record in (mdmd, softnet):
        assert record.leaky is False and record.leak_label == ""  # clean
        assert record.attrs["tune_on"] == "train" and record.attrs["split"] == "loso"
        assert record.attrs["store"]["version_id"] == made.summary.version_id
        assert record.attrs["n_subjects"] == 3
    assert mdmd.training is None
    assert softnet.training is not None
    assert softnet.training["seed"] == 2 and softnet.training["settings"]["name"] == "quick"
    assert all(fold["seed"] is not None and fold["epochs"] >= 1 for fold in softnet.folds)
