"""Trainings of learned spotters in `mer-prep.toml` (`mer_prep.config.spot_trainings`): a
`[trainings.*]` of `softnet` / `mtsn` on a long-video dataset is a `train/<name>` deployment of
the `spot` flow (one trigger and one cron schedule per seed), a served spot run must keep the
settings of one configured spotting, and a table that mixes a recognition model's and a
spotter's settings is refused on load in one line naming the file, the table and the key."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from mer_prep.cli import main
from mer_prep.config import load_config
from mer_prep.errors import ConfigError
from mer_prep.spotting.methods import LEARNED_METHODS

DATASET = "casme-sq-long"
SPOTTERS = f"""
[trainings.{DATASET}-softnet]
dataset = "{DATASET}"
model = "softnet"
preset = "quick"
seed = 3
seeds = 2
cron = "0 7 * * *"

[trainings.leaky]
dataset = "{DATASET}"
model = "mtsn"
name = "{DATASET}-mtsn-leaky"
tune_on_test = true
on_commit = false
"""


def _write(tmp_path, tables: str = SPOTTERS, dataset: str = ""):
    """``conf/mer-prep.toml``: the long-video dataset (spotted with ``threshold``), casme2 with
    one recognition training, and ``tables``."""
    (tmp_path / "data").mkdir(exist_ok=True)
    path = tmp_path / "conf" / "mer-prep.toml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(f"""
[defaults]
n_workers = 1

[datasets.{DATASET}]
root = "{tmp_path / "data"}"
recipes = ["lv64", "lv128"]
spot_method = "threshold"
{dataset}

[datasets.casme2]
root = "{tmp_path / "data"}"
recipe = "mbcc64"

[trainings.casme2-mbcc]
dataset = "casme2"
model = "mbcc"
{tables}
""")
    return path


def _store(tmp_path, recipe: str = "lv64") -> str:
    return str(tmp_path / "conf" / "stores" / DATASET / recipe)


def test_a_spotter_training_is_a_train_deployment_of_the_spot_flow(tmp_path):
    config = load_config(_write(tmp_path))
    softnet, leaky = config.spot_training_deployments()
    assert (softnet.name, leaky.name) == (f"{DATASET}-softnet", f"{DATASET}-mtsn-leaky")
    assert softnet.parameters == {
        "dataset": DATASET,
        "store": _store(tmp_path),  # the first recipe's store, as spot/<dataset> spots
        "method": "softnet",
        "seed": 3,
        "preset": "quick",
        "tune_on_test": False,
    }
    assert softnet.seeds == [3, 4] and softnet.cron == "0 7 * * *" and softnet.on_commit
    assert softnet.flow == "spot" and softnet.store == _store(tmp_path)
    assert leaky.parameters["method"] == "mtsn" and leaky.parameters["preset"] is None
    assert leaky.parameters["tune_on_test"] is True and leaky.seeds == [0]
    assert not leaky.on_commit and leaky.cron is None
    # the recognition training stays the train flow's; spot/<dataset> is unchanged
    assert [d.name for d in config.training_deployments()] == ["casme2-mbcc"]
    (spot,) = config.spot_deployments()
    assert spot.parameters == {"dataset": DATASET, "store": _store(tmp_path), "method": "threshold"}

    other = load_config(
        _write(
            tmp_path, f'[trainings.s]\ndataset = "{DATASET}"\nmodel = "softnet"\nrecipe = "lv128"\n'
        )
    )
    (on_lv128,) = other.spot_training_deployments()
    assert on_lv128.name == f"{DATASET}-softnet" and on_lv128.store == _store(tmp_path, "lv128")
    assert on_lv128.parameters["store"] == _store(tmp_path, "lv128")


def test_each_seed_of_a_spotter_training_is_a_run_of_its_own(tmp_path):
    from flows.deployments import build_deployments, deployment_specs
    from flows.events import store_resource_id

    config = load_config(_write(tmp_path))
    specs = {(flow.name, kw["name"]): kw for flow, kw in deployment_specs(config)}
    assert set(specs) == {
        ("preprocess", DATASET),
        ("preprocess", f"{DATASET}-lv128"),
        ("preprocess", "casme2"),
        ("train", "casme2-mbcc"),
        ("spot", DATASET),
        ("train", f"{DATASET}-softnet"),
        ("train", f"{DATASET}-mtsn-leaky"),
    }
    softnet = specs[("train", f"{DATASET}-softnet")]
    assert [(s.cron, s.parameters) for s in softnet["schedules"]] == [
        ("0 7 * * *", {"seed": 3}),
        ("0 7 * * *", {"seed": 4}),
    ]
    triggers = softnet["triggers"]
    # each seed's run opens the version whose commit started it
    committed = "{{ event.payload.version_id }}"
    assert [t.parameters for t in triggers] == [
        {"version": committed, "seed": 3},
        {"version": committed, "seed": 4},
    ]
    (spot_trigger,) = specs[("spot", DATASET)]["triggers"]
    assert spot_trigger.parameters == {"version": committed}
    for trigger in triggers:  # each on the store of the first recipe
        assert trigger.match.root == {"prefect.resource.id": store_resource_id(_store(tmp_path))}
    assert [t.name.split(" on ")[0] for t in triggers] == [
        f"train/{DATASET}-softnet seed 3",
        f"train/{DATASET}-softnet seed 4",
    ]
    leaky = specs[("train", f"{DATASET}-mtsn-leaky")]
    assert leaky["triggers"] is None and leaky["schedules"] is None
    assert "LEAKY" in leaky["description"] and "train" in leaky["tags"]
    deployed = {(d.flow_name, d.name): d for d in build_deployments(config)}
    trained = deployed[("train", f"{DATASET}-softnet")]
    assert trained.entrypoint == "flows.spot.spot"  # the spot flow's code, named train/
    assert trained.parameters["method"] == "softnet" and trained.parameters["seed"] == 3
    assert [s.parameters for s in trained.schedules] == [{"seed": 3}, {"seed": 4}]


def _refusal(config, parameters) -> str:
    with pytest.raises(ConfigError) as refused:
        config.check_run(parameters, flow="spot")
    message = str(refused.value)
    assert "\n" not in message and message.startswith(f"{config.path}: run parameter ")
    return message


def test_a_served_spot_run_keeps_the_settings_of_one_configured_spotting(tmp_path):
    config = load_config(_write(tmp_path))
    softnet, leaky = config.spot_training_deployments()
    (spot,) = config.spot_deployments()
    full = {"split": "loso", "tune_on_test": False, "seed": 0, "preset": None}
    for parameters in (
        spot.parameters,
        {**full, **spot.parameters},
        softnet.parameters,
        {**softnet.parameters, "seed": 4},  # the second of its seeds
        {**softnet.parameters, "store": _store(tmp_path, "lv128")},  # a recipe of the dataset
        leaky.parameters,
        {**softnet.parameters, "version": "v-0123456789abcdef"},  # a trigger's committed tag
    ):
        config.check_run(parameters, flow="spot")
    for asked, name, allowed in (
        ({**softnet.parameters, "seed": 5}, "seed=5", f"3, 4 (train/{DATASET}-softnet)"),
        ({**softnet.parameters, "seed": True}, "seed=True", "3, 4"),
        ({**softnet.parameters, "preset": "softnet"}, "preset='softnet'", "'quick'"),
        ({**softnet.parameters, "tune_on_test": True}, "tune_on_test=True", "False"),
        ({**leaky.parameters, "tune_on_test": False}, "tune_on_test=False", "True"),
        ({**spot.parameters, "tune_on_test": True}, "tune_on_test=True", f"False (spot/{DATASET})"),
        ({**spot.parameters, "method": "mdmd"}, "method='mdmd'", "threshold, softnet, mtsn"),
        ({**spot.parameters, "seed": 1}, "seed=1", f"0 (spot/{DATASET})"),
        ({**softnet.parameters, "store": str(tmp_path / "other")}, "store=", "'/"),
        ({**softnet.parameters, "split": "random"}, "split='random'", "loso"),
        ({**spot.parameters, "version": "../main"}, "version='../main'", "a version tag v-<hex>"),
    ):
        message = _refusal(config, asked)
        assert f"run parameter {name}" in message and f"(allowed: {allowed}" in message, message
    # a clip dataset has no spotting configured at all
    casme2_store = str(tmp_path / "conf" / "stores" / "casme2" / "mbcc64")
    message = _refusal(config, {**softnet.parameters, "dataset": "casme2", "store": casme2_store})
    assert "none: no spotting of it is configured" in message, message
    # a disabled training allows nothing: its seeds and preset are refused again
    disabled = load_config(
        _write(tmp_path, SPOTTERS.replace("seeds = 2", "seeds = 2\nenabled = false"))
    )
    assert [d.name for d in disabled.spot_training_deployments()] == [f"{DATASET}-mtsn-leaky"]
    assert "method='softnet'" in _refusal(disabled, softnet.parameters)


@pytest.mark.parametrize(
    "table,key,why",
    [
        (f'dataset = "{DATASET}"\nmodel = "ha3dnet"', "model", "'ha3dnet' is a recognition model"),
        ('dataset = "casme2"\nmodel = "softnet"', "model", "softnet is a learned spotter and"),
        (f'dataset = "{DATASET}"\nmodel = "mdmd"', "model", "mdmd is a training-free spotter"),
        (f'dataset = "{DATASET}"\nmodel = "softnet"\ntarget = "aus"', "target", "has no target"),
        (
            f'dataset = "{DATASET}"\nmodel = "mtsn"\nselection = "test_oracle"',
            "selection",
            "a learned spotter (mtsn) has no selection",
        ),
        (f'dataset = "{DATASET}"\nmodel = "softnet"\nepochs = 2', "epochs", "has no epochs"),
        (f'dataset = "{DATASET}"\nmodel = "softnet"\ndevice = "cpu"', "device", "has no device"),
        (
            f'dataset = "{DATASET}"\nmodel = "softnet"\ndask_address = "tls://x:1"',
            "dask_address",
            "has no dask_address",
        ),
        (f'dataset = "{DATASET}"\nmodel = "softnet"\nsplit = "kfold"', "split", "'kfold'"),
        (
            f'dataset = "{DATASET}"\nmodel = "softnet"\npreset = "quick-mtsn"',
            "preset",
            "preset quick-mtsn is multi-k; method softnet needs one k",
        ),
        (f'dataset = "{DATASET}"\nmodel = "mtsn"\npreset = "fast"', "preset", "unknown preset"),
        (
            'dataset = "casme2"\nmodel = "mbcc"\nname = "b"\npreset = "quick"',
            "preset",
            "only a learned spot",
        ),
        (
            'dataset = "casme2"\nmodel = "mbcc"\nname = "c"\ntune_on_test = true',
            "tune_on_test",
            "test_oracle",
        ),
    ],
)
def test_settings_that_do_not_fit_the_model_are_refused_in_one_line(tmp_path, table, key, why):
    path = _write(tmp_path, f"[trainings.odd]\n{table}\n")
    with pytest.raises(ConfigError) as refused:
        load_config(path)
    message = str(refused.value)
    assert "\n" not in message and message.startswith(f"{path}: trainings.odd.{key}: "), message
    assert why in message, message
    result = CliRunner().invoke(main, ["serve", "--check", "--config", str(path)])
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert f"trainings.odd.{key}: " in result.stderr


def test_the_spotters_are_taken_from_the_spotting_package():
    from mer_prep.config.spot_trainings import is_spotter
    from mer_prep.config.trainings import TrainingConfig

    for method in LEARNED_METHODS:
        assert is_spotter(TrainingConfig(model=method, dataset=DATASET))
    assert not is_spotter(TrainingConfig(model="mbcc", dataset="casme2"))


def test_serve_check_lists_the_spotting_deployments(tmp_path):
    path = _write(tmp_path)
    result = CliRunner().invoke(main, ["serve", "--check", "--config", str(path)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert f"spot/{DATASET}: threshold loso on {_store(tmp_path)}, on each new version" in lines
    softnet = next(line for line in lines if line.startswith(f"train/{DATASET}-softnet:"))
    assert "spotter softnet (preset quick, seeds 3, 4)" in softnet and "0 7 * * *" in softnet
    leaky = next(line for line in lines if line.startswith(f"train/{DATASET}-mtsn-leaky:"))
    assert "LEAKY" in leaky and "spotter mtsn (preset its own, seeds 0)" in leaky
