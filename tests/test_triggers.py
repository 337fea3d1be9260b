"""Retraining on new store versions, end to end: a real Prefect server, `mer-prep serve` with a
dataset and a training of its store, and `prefect deployment run ... --watch`.

A preprocessing run that commits a version emits ``mer-prep.store.committed``; the training's
deployment trigger starts ``train/casme2-mbcc`` on exactly that version, which records the run
on the store. An up-to-date run commits and triggers nothing. Served training runs are checked
against the config, and ``--watch`` exits 1 when one fails. Also: the trigger each training
deployment gets, and the standing Dask cluster ``serve`` keeps (loopback, TLS, private
credential files).

Everything Prefect runs in subprocesses with their own environment (their own PREFECT_HOME and
PREFECT_API_URL): nothing set here leaks into the other tests' ephemeral server.
"""

from __future__ import annotations

import operator
import os
import re
import stat
import subprocess
import sys
import time

import pytest
import store_contents
from server_harness import BIN, get_json, post_json, serving, wait_for

from flows.events import COMMITTED, store_resource_id
from mer_prep.config import load_config
from mer_prep.store import open_store
from mer_prep.store.repo import open_repository

SMALL_CASME2 = {**store_contents.SMALL_CASME2, "n_subjects": 3}
TRAINING = """
[trainings.quick]
dataset = "casme2"
model = "mbcc"
variant = "difference"
epochs = 1
batch_size = 4
config = { filters = [8, 16], dense = 32 }
"""


def _config_text(root, training: str = TRAINING) -> str:
    return f"""
[defaults]
recipe = "mbcc64"
n_workers = 2

[datasets.casme2]
root = "{root}"
{training}
"""


# ------------------------------------------------------------------------------ fast checks


def test_each_training_of_a_store_gets_a_trigger_on_its_new_versions(tmp_path):
    from flows.deployments import build_deployments

    (tmp_path / "CASME2").mkdir()
    path = tmp_path / "mer-prep.toml"
    path.write_text(
        _config_text(
            tmp_path / "CASME2",
            TRAINING
            + """
[trainings.nightly]
dataset = "casme2"
model = "mbcc"
name = "casme2-mbcc-nightly"
cron = "0 4 * * *"
on_commit = false
""",
        )
    )
    deployments = {d.name: d for d in build_deployments(load_config(path))}
    assert set(deployments) == {"casme2", "casme2-mbcc", "casme2-mbcc-nightly"}
    store = tmp_path / "stores" / "casme2" / "mbcc64"
    (trigger,) = deployments["casme2-mbcc"].triggers
    assert trigger.expect == {COMMITTED}
    assert trigger.match.model_dump(mode="json") == {
        "prefect.resource.id": f"mer-prep.store.{store}"
    }
    assert trigger.parameters == {"version": "{{ event.payload.version_id }}"}
    assert deployments["casme2-mbcc"].parameters["store"] == str(store)
    assert deployments["casme2-mbcc-nightly"].triggers == []
    assert [s.schedule.cron for s in deployments["casme2-mbcc-nightly"].schedules] == ["0 4 * * *"]
    assert deployments["casme2-mbcc"].entrypoint == "flows.train.train"


def test_a_store_is_one_resource_however_its_path_is_spelt(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert store_resource_id("stores/x/../casme2") == f"mer-prep.store.{tmp_path}/stores/casme2"
    assert (
        store_resource_id("s3://bucket/stores/casme2/")
        == "mer-prep.store.s3://bucket/stores/casme2"
    )


@pytest.mark.slow  # a local cluster of one worker process
def test_the_standing_cluster_is_on_loopback_with_credentials_only_its_user_reads(
    tmp_path, monkeypatch
):
    from distributed import Client

    from flows.cluster import (
        STANDING_ENV,
        StandingCluster,
        dashboard_servable,
        dask_task_runner,
        standing_cluster,
    )

    monkeypatch.delenv(STANDING_ENV, raising=False)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    killed = tmp_path / "home" / f"standing-dask-{dead.pid}-abc123"  # a serve killed -9
    alive = tmp_path / "home" / f"standing-dask-{os.getppid()}-def456"  # a live serve's
    for folder in (killed, alive):
        folder.mkdir(parents=True)
        (folder / "key.pem").write_text("-----BEGIN PRIVATE KEY-----")
    with StandingCluster(1, tmp_path / "home", {"GPU": 1}) as cluster:
        assert not killed.exists() and (alive / "key.pem").exists()
        assert cluster.address.startswith("tls://127.0.0.1:")
        info = standing_cluster()
        assert info.address == cluster.address and info.has({"GPU": 1})
        assert not info.has({"GPU": 2}) and info.has(None)
        directory = cluster.directory
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
        for path in directory.iterdir():
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        with Client(info.address, security=info.security(), timeout="20s") as client:
            assert client.submit(operator.add, 1, 2).result(timeout=60) == 3
        with pytest.raises((OSError, TimeoutError, TypeError, ValueError)):
            with Client(cluster.address.replace("tls://", "tcp://"), timeout="5s") as intruder:
                intruder.submit(operator.add, 1, 2).result(timeout=5)
        assert dask_task_runner(None, 2).address == cluster.address  # a run uses it
        assert dask_task_runner(None, 2, {"GPU": 1}).address == cluster.address
        assert dask_task_runner(None, 2, {"TPU": 1}).address is None  # not there: its own
        assert dask_task_runner("tcp://elsewhere:8786", 2).address == "tcp://elsewhere:8786"
        assert (cluster.dashboard() is None) == (not dashboard_servable())
    assert STANDING_ENV not in os.environ and not directory.exists()


# -------------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def served(tmp_path_factory, synth_dataset):
    """A real `prefect server start` and `mer-prep serve` of preprocess/casme2 and
    train/casme2-mbcc (the training of the dataset's store)."""
    base = tmp_path_factory.mktemp("triggers")
    root, _ = synth_dataset("casme2", **SMALL_CASME2)
    config = base / "mer-prep.toml"
    config.write_text(_config_text(root))
    with serving(base, config, "preprocess/casme2", "train/casme2-mbcc") as server:
        yield {
            "env": server.client_env,
            "api": server.api,
            "base": base,
            "server": server,
            "store": base / "stores" / "casme2" / "mbcc64",
        }


def _deployment_run(served, name: str, *params: str) -> subprocess.CompletedProcess:
    return served["server"].deployment_run(name, *params, watch_timeout=240, timeout=300)


def _runs_of(served, deployment: str) -> list[dict]:
    """The top-level flow runs of ``deployment``, oldest first."""
    deployment_id = get_json(f"{served['api']}/deployments/name/{deployment}")["id"]
    return post_json(
        f"{served['api']}/flow_runs/filter",
        {
            "sort": "EXPECTED_START_TIME_ASC",
            "flow_runs": {
                "deployment_id": {"any_": [deployment_id]},
                "parent_task_run_id": {"is_null_": True},
            },
        },
    )


@pytest.mark.slow  # a Prefect server, `mer-prep serve`, three preprocessing and a training run
def test_a_committed_version_is_trained_once_and_an_up_to_date_run_triggers_nothing(served):
    store = served["store"]
    first = _deployment_run(served, "preprocess/casme2")
    assert first.returncode == 0, first.stdout + first.stderr
    version = open_store(store).version_id
    (preprocessed,) = _runs_of(served, "preprocess/casme2")
    assert preprocessed["name"] == "casme2-mbcc64"

    def trained() -> list[dict]:
        runs = _runs_of(served, "train/casme2-mbcc")
        assert all(r["state_type"] not in ("FAILED", "CRASHED") for r in runs), runs
        return [r for r in runs if r["state_type"] == "COMPLETED"]

    wait_for("the triggered training run", trained, 240, served["server"].procs)
    (run,) = _runs_of(served, "train/casme2-mbcc")
    assert run["name"] == "casme2-mbcc-loso" and run["parameters"]["version"] == version
    from mer_prep.train import list_runs

    (record,) = list_runs(store)
    assert record.version_id == version
    assert record.snapshot_id == open_repository(store).lookup_tag(version)
    report = get_json(f"{served['api']}/artifacts/train-casme2-mbcc-loso/latest")["data"]
    assert version in report and record.run_id in report and "## per class" in report
    listed = subprocess.run(
        [str(BIN / "mer-prep"), "runs", str(store)], capture_output=True, text=True, timeout=120
    )
    assert listed.returncode == 0 and record.run_id in listed.stdout, listed.stderr

    again = _deployment_run(served, "preprocess/casme2")  # up to date: no version, no event
    assert again.returncode == 0, again.stdout + again.stderr
    assert (
        "up to date"
        in get_json(f"{served['api']}/artifacts/preprocess-casme2-mbcc64/latest")["data"]
    )
    time.sleep(10)  # what a trigger would need to start a run (it took ~1.5 s above)
    assert len(_runs_of(served, "train/casme2-mbcc")) == 1
    assert len(list_runs(store)) == 1
    events = post_json(
        f"{served['api']}/events/filter",
        {
            "filter": {
                "event": {"name": [COMMITTED]},
                "any_resource": {"id": [store_resource_id(store)]},
            }
        },
    )
    assert [e["payload"]["version_id"] for e in events["events"]] == [version]


@pytest.mark.slow  # a Prefect server, `mer-prep serve` and three training runs
def test_a_served_training_run_is_checked_and_watch_exits_1_when_it_fails(served):
    preprocessed = _deployment_run(served, "preprocess/casme2")  # the store exists
    assert preprocessed.returncode == 0, preprocessed.stdout + preprocessed.stderr
    from mer_prep.train import list_runs

    before = len(list_runs(served["store"]))
    ok = _deployment_run(served, "train/casme2-mbcc")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert len(list_runs(served["store"])) == before + 1
    missing = _deployment_run(served, "train/casme2-mbcc", "version=v-00000000deadbeef")
    assert missing.returncode == 1, missing.stdout + missing.stderr
    assert "Failed" in missing.stdout + missing.stderr
    refused = _deployment_run(served, "train/casme2-mbcc", "epochs=50")
    assert refused.returncode == 1, refused.stdout + refused.stderr
    log = (served["base"] / "serve.log").read_text()
    # the reason is the run's state message, one line; no traceback in serve's log
    run_id = re.search(r"UUID: ([0-9a-f-]{36})", refused.stdout).group(1)
    state = get_json(f"{served['api']}/flow_runs/{run_id}")["state"]
    assert state["type"] == "FAILED" and "\n" not in state["message"]
    assert re.match(r"refused: \S*mer-prep\.toml: run parameter epochs=50 ", state["message"])
    assert "ConfigError" not in log
    assert re.search(
        r"mer-prep\.run\.refused \* refused: \S*mer-prep\.toml: run parameter "
        r"epochs=50 ",
        " ".join(refused.stdout.split()),
    ), refused.stdout  # --watch
    assert re.search(r"no version 'v-00000000deadbeef'", log)
    assert len(list_runs(served["store"])) == before + 1
