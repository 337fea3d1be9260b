"""``TrainRequest``: every training parameter and its default in one place, and bad settings
refused when the request is built, in one line naming the parameter, by every entry point
(library, flow, ``[trainings.*]``), before a store, a worker or a Prefect server is touched."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from mer_prep.config import load_config
from mer_prep.errors import ConfigError, InvalidArgumentError
from mer_prep.train.request import MAX_SEED, TrainRequest, TrainRequestError, TrainSettings

BAD = {  # value -> the one line that refuses it
    "epochs": (0, "epochs must be >= 1, got 0"),
    "batch_size": (-4, "batch_size must be >= 1, got -4"),
    "n_workers": (0, "n_workers must be >= 1, got 0"),
    "folds_per_task": (0, "folds_per_task must be >= 1, got 0"),
    "seed": (MAX_SEED + 1, f"seed must be <= {MAX_SEED}, got {MAX_SEED + 1}"),
    "lr": (math.nan, "lr must be a finite number > 0, got nan"),
    "device": ("meta", "unknown device 'meta': use cpu, cuda or cuda:N"),
    "selection": ("best", "selection='best'"),
    "split": ("", "split=''"),
    "epoch": (3, "epoch is not a training parameter"),
}


def test_defaults_are_the_flows_and_a_request_round_trips_through_its_parameters():
    request = TrainRequest.of(store="stores/s")
    assert (
        request.model,
        request.split,
        request.device,
        request.seed,
        request.n_workers,
        request.folds_per_task,
    ) == ("mbcc", "loso", "cpu", 0, 2, 1)
    assert (
        request.epochs,
        request.batch_size,
        request.lr,
        request.selection,
        request.config,
        request.version,
        request.dask_address,
        request.resources,
    ) == (None,) * 8
    asked = TrainRequest.of(
        store="s3://b/s",
        model="ha3dnet",
        epochs=3,
        lr=1e-3,
        config={"filters": (8, 16)},
        resources={"GPU": 1},
    )
    again = TrainRequest.of(**asked.parameters())
    assert again.parameters() == asked.parameters()
    assert asked.parameters()["config"] == {"filters": [8, 16]}
    assert asked.resources == {"GPU": 1.0} and asked.settings() == TrainSettings(
        model="ha3dnet", epochs=3, lr=1e-3, config={"filters": (8, 16)}, resources={"GPU": 1}
    )
    with pytest.raises(ValidationError, match="frozen"):
        asked.epochs = 4


@pytest.mark.parametrize("name", list(BAD))
def test_a_bad_setting_is_refused_in_one_line_naming_it(name):
    value, message = BAD[name]
    with pytest.raises(TrainRequestError) as refused:
        TrainRequest.of(store="s", **{name: value})
    assert isinstance(refused.value, InvalidArgumentError)  # exit 2 at the CLI
    assert message in str(refused.value) and "\n" not in str(refused.value)


@pytest.mark.parametrize(
    "name, value",
    [
        ("seed", True),
        ("epochs", "2"),
        ("lr", "0.1"),
        ("epochs", 2.0),
        ("keep_checkpoints", 1),
        ("version", 7),
    ],
)
def test_values_are_strict(name, value):
    """A served run's parameters come from anyone who can reach the API: True is no seed."""
    with pytest.raises(TrainRequestError, match=rf"^{name}="):
        TrainRequest.of(store="s", **{name: value})


def test_the_store_is_required_and_every_problem_is_named():
    with pytest.raises(TrainRequestError, match="^store is required$"):
        TrainRequest.of()
    with pytest.raises(TrainRequestError) as refused:
        TrainRequest.of(store="s", epochs=0, lr=-1.0)
    assert str(refused.value) == (
        "epochs must be >= 1, got 0; lr must be a finite number > 0, got -1.0"
    )


def test_the_library_refuses_a_bad_setting_before_opening_the_store(tmp_path):
    """No store at that path: the refusal is the setting's, not a missing store's."""
    pytest.importorskip("torch")
    from mer_prep.train import plan_run, train

    for call in (train, plan_run):
        with pytest.raises(TrainRequestError, match="^epochs must be >= 1, got 0$"):
            call(tmp_path / "none", "mbcc", epochs=0)
        with pytest.raises(TrainRequestError, match="^nosuch is not a training parameter$"):
            call(tmp_path / "none", "mbcc", nosuch=1)


def test_the_flow_refuses_a_bad_setting_before_any_cluster_or_prefect_server(monkeypatch):
    """``PREFECT_API_URL`` points at a port nothing listens on: had the run reached Prefect or
    Dask, it would fail on the connection, not on the setting."""
    pytest.importorskip("prefect_dask")
    from flows.train import run_train

    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")
    with pytest.raises(TrainRequestError, match="^lr must be a finite number > 0, got inf$"):
        run_train("stores/none", "mbcc", lr=math.inf, dask_address="tcp://127.0.0.1:9")


@pytest.mark.parametrize(
    "line, message",
    [
        ("lr = nan", r"trainings\.x\.lr: lr must be a finite number > 0, got nan"),
        ("seed = true", r"trainings\.x\.seed: "),
        ("folds_per_task = 0", r"trainings\.x\.folds_per_task: "),
        ('device = "cuda:x"', r"trainings\.x\.device: unknown device 'cuda:x'"),
    ],
)
def test_a_training_entry_is_checked_as_a_request(tmp_path, line, message):
    (tmp_path / "CASME2").mkdir()
    path = tmp_path / "mer-prep.toml"
    path.write_text(
        f'[datasets.casme2]\nroot = "{tmp_path / "CASME2"}"\nrecipe = "mbcc64"\n'
        f'[trainings.x]\ndataset = "casme2"\nmodel = "mbcc"\n{line}\n'
    )
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_a_configured_training_is_the_deployments_request(tmp_path):
    (tmp_path / "CASME2").mkdir()
    path = tmp_path / "mer-prep.toml"
    path.write_text(
        f'[datasets.casme2]\nroot = "{tmp_path / "CASME2"}"\nrecipe = "mbcc64"\n'
        f'[trainings.x]\ndataset = "casme2"\nmodel = "mbcc"\nepochs = 2\n'
        f"lr = 1\nconfig = {{ filters = [8, 16] }}\n"
    )
    (spec,) = load_config(path).training_deployments()
    request = TrainRequest.of(**spec.parameters)
    assert (request.store, request.dataset, request.epochs, request.lr, request.config) == (
        str(tmp_path / "stores" / "casme2" / "mbcc64"),
        "casme2",
        2,
        1.0,
        {"filters": [8, 16]},
    )
    assert isinstance(spec.parameters["lr"], float)
