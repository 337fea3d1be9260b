"""`mer-prep.toml` is checked when it loads: names, adapter options, recipes and store
locations (local paths relative to the file, S3 URLs as they are)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

import mer_prep.models  # noqa: F401  PyTorch and the models load at collection, not in a test
from mer_prep.cli import main
from mer_prep.config import load_config
from mer_prep.errors import ConfigError
from mer_prep.store.repo import StoreLocation


def _write(tmp_path, text: str):
    path = tmp_path / "conf" / "mer-prep.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    (tmp_path / "CASME2").mkdir(exist_ok=True)
    return path


def test_an_s3_store_template_stays_an_s3_url(tmp_path):
    path = _write(
        tmp_path,
        f'[defaults]\nstore = "s3://bucket/stores/{{dataset}}/{{recipe}}"\n'
        f'[datasets.casme2]\nroot = "{tmp_path / "CASME2"}"\n',
    )
    (spec,) = load_config(path).deployments()
    assert spec.parameters["store"] == "s3://bucket/stores/{dataset}/{recipe}"
    assert (
        StoreLocation.parse(spec.parameters["store"].format(dataset="casme2", recipe="ha3d")).url
        == "s3://bucket/stores/casme2/ha3d"
    )


def test_a_relative_store_is_under_the_files_directory(tmp_path):
    path = _write(tmp_path, '[datasets.casme2]\nroot = "../CASME2"\nstore = "out/{dataset}"\n')
    (spec,) = load_config(path).deployments()
    assert spec.parameters["store"] == str(tmp_path / "conf" / "out" / "{dataset}")
    assert spec.parameters["root"] == str(tmp_path / "conf" / ".." / "CASME2")


def test_a_misspelt_adapter_option_is_reported_with_its_place(tmp_path):
    path = _write(
        tmp_path,
        f'[datasets.casme2]\nroot = "{tmp_path / "CASME2"}"\noptions = {{ variantt = "raw" }}\n',
    )
    with pytest.raises(
        ConfigError,
        match=r"datasets\.casme2\.options: casme2 has no option "
        r"'variantt'; its options: variant",
    ):
        load_config(path)
    result = CliRunner().invoke(main, ["serve", "--check", "--config", str(path)])
    assert result.exit_code == 2 and "variantt" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_disallowed_option_value_and_an_unknown_recipe_fail_on_load(tmp_path):
    path = _write(
        tmp_path,
        f'[datasets.casme2]\nroot = "{tmp_path / "CASME2"}"\noptions = {{ variant = "raww" }}\n',
    )
    with pytest.raises(ConfigError, match="variant='raww' is not one of raw, cropped"):
        load_config(path)
    path = _write(
        tmp_path, f'[datasets.casme2]\nroot = "{tmp_path / "CASME2"}"\nrecipe = "nosuch"\n'
    )
    with pytest.raises(ConfigError, match="datasets.casme2.recipe: unknown recipe 'nosuch'"):
        load_config(path)


def test_serve_check_says_when_a_root_does_not_exist(tmp_path):
    path = _write(tmp_path, f'[datasets.casme2]\nroot = "{tmp_path / "missing"}"\n')
    result = CliRunner().invoke(main, ["serve", "--check", "--config", str(path)])
    assert result.exit_code == 2
    assert f"casme2 root {tmp_path / 'missing'} does not exist" in result.stderr
    ok = _write(tmp_path, f'[datasets.casme2]\nroot = "{tmp_path / "CASME2"}"\n')
    assert CliRunner().invoke(main, ["serve", "--check", "--config", str(ok)]).exit_code == 0


def test_store_locations_parse_once_to_one_value(tmp_path):
    assert StoreLocation.parse("s3://b/p/").url == "s3://b/p"
    assert StoreLocation.parse("rel/x", base=tmp_path) == StoreLocation.parse(tmp_path / "rel/x")
    assert not StoreLocation.parse(tmp_path).is_remote


def test_a_user_composite_declared_in_the_config_is_a_dataset(tmp_path):
    from mer_prep.datasets import dataset_names, unregister_composite

    (tmp_path / "CASME2").mkdir()
    (tmp_path / "SAMM").mkdir()
    path = _write(
        tmp_path,
        f'[composites.lab]\nparts = ["casme2", "samm"]\n'
        f'[datasets.lab]\nroot = {{ casme2 = "{tmp_path / "CASME2"}", '
        f'samm = "{tmp_path / "SAMM"}" }}\n',
    )
    try:
        (spec,) = load_config(path).deployments()
        assert spec.dataset == "lab" and "lab" in dataset_names()
        assert set(spec.parameters["root"]) == {"casme2", "samm"}
        bad = _write(
            tmp_path,
            '[composites.lab2]\nparts = ["casme2", "nosuch"]\n'
            f'[datasets.casme2]\nroot = "{tmp_path / "CASME2"}"\n',
        )
        with pytest.raises(ConfigError, match="composites.lab2"):
            load_config(bad)
    finally:
        unregister_composite("lab")


def test_serve_check_prints_each_store_as_runs_write_it(tmp_path):
    path = _write(
        tmp_path,
        f'[datasets.casme2]\nroot = "{tmp_path / "CASME2"}"\nrecipes = ["ha3d", "mbcc64"]\n',
    )
    result = CliRunner().invoke(main, ["serve", "--check", "--config", str(path)])
    assert result.exit_code == 0, result.output
    stores = tmp_path / "conf" / "stores" / "casme2"
    assert f"-> {stores / 'ha3d'}, schedule" in result.stdout
    assert f"-> {stores / 'mbcc64'}, schedule" in result.stdout
    assert "{" not in result.stdout  # no unexpanded {dataset}/{recipe} template


def test_serve_check_refuses_trainings_that_would_fail_at_every_run(tmp_path):
    """A model whose inputs the recipe does not store, and a config value the model refuses,
    are reported by `serve --check` with their place, as `mer-prep train --set` says them; a
    training that fits passes."""
    root = tmp_path / "CASME2"
    base = f'[datasets.casme2]\nroot = "{root}"\nrecipes = ["mbcc64"]\n'
    wrong_model = base + '[trainings.t]\ndataset = "casme2"\nmodel = "msres3d"\n'
    wrong_config = base + (
        '[trainings.t]\ndataset = "casme2"\nmodel = "mbcc"\nconfig = { inputs = "diff" }\n'
    )
    fits = base + (
        '[trainings.t]\ndataset = "casme2"\nmodel = "mbcc"\nconfig = { inputs = "difference" }\n'
    )
    for text, expected in (
        (
            wrong_model,
            r"trainings\.t \(model msres3d on recipe mbcc64\): "
            r"model msres3d needs",
        ),
        (
            wrong_config,
            r"trainings\.t \(model mbcc on recipe mbcc64\): "
            r"config: inputs: .*'apex'",
        ),
    ):
        path = _write(tmp_path, text)
        problems = load_config(path).problems()
        assert len(problems) == 1, problems
        assert __import__("re").search(expected, problems[0]), problems[0]
        result = CliRunner().invoke(main, ["serve", "--check", "--config", str(path)])
        assert result.exit_code == 2 and "trainings.t" in result.stderr
    assert load_config(_write(tmp_path, fits)).problems() == []


def test_a_long_video_dataset_gets_a_preprocess_deployment_and_its_runs_are_checked(tmp_path):
    path = _write(
        tmp_path,
        f'[datasets.samm-lv]\nroot = "{tmp_path / "CASME2"}"\nrecipes = ["lv128", "lv64"]\n'
        'store = "stores/{dataset}/{recipe}"\n',
    )
    config = load_config(path)
    first, second = config.deployments()
    assert (first.name, second.name) == ("samm-lv", "samm-lv-lv64")
    assert first.parameters["recipe"] == "lv128" and first.dataset == "samm-lv"
    stores = tmp_path / "conf" / "stores"
    assert first.store == str(stores / "samm-lv" / "lv128")
    run = {**first.parameters}
    config.check_run(run)  # what the deployment runs by default is allowed
    config.check_run({**run, "recipe": "lv64"})
    with pytest.raises(ConfigError, match=r"recipe"):
        config.check_run({**run, "recipe": "ha3d"})
    with pytest.raises(ConfigError, match=r"unknown dataset\(s\) \['samm-long'\]"):
        load_config(_write(tmp_path, '[datasets.samm-long]\nroot = "x"\nrecipe = "lv128"\n'))
    with pytest.raises(ConfigError, match=r"lv512"):
        load_config(_write(tmp_path, '[datasets.samm-lv]\nroot = "x"\nrecipe = "lv512"\n'))


def test_a_long_video_dataset_gets_a_spot_deployment_run_on_each_version(tmp_path):
    from flows.deployments import deployment_specs

    path = _write(
        tmp_path,
        f'[datasets.samm-lv]\nroot = "{tmp_path / "CASME2"}"\nrecipe = "lv128"\n'
        'spot_method = "threshold"\n'
        f'[datasets.casme2]\nroot = "{tmp_path / "CASME2"}"\n',
    )
    config = load_config(path)
    (spot,) = config.spot_deployments()  # casme2 holds clips: no spot deployment
    store = str(tmp_path / "conf" / "stores" / "samm-lv" / "lv128")
    assert spot.parameters == {"dataset": "samm-lv", "store": store, "method": "threshold"}
    assert spot.on_commit and spot.flow == "spot"
    config.check_run(spot.parameters, flow="spot")
    config.check_run({**spot.parameters, "seed": 0, "tune_on_test": False}, flow="spot")
    for bad, what in (
        ({"store": str(tmp_path / "elsewhere")}, "store"),
        ({"method": "oracle"}, "method"),
        ({"method": "mdmd"}, "method='mdmd'"),  # a known spotter, but not the configured one
        ({"tune_on_test": True}, "tune_on_test=True"),  # LEAKY: only where configured
        ({"preset": "quick"}, "preset='quick'"),
        ({"split": "random"}, "split"),
        ({"tune_on_test": "yes"}, "tune_on_test"),
        ({"dataset": "casme3-long"}, "dataset"),
    ):
        with pytest.raises(ConfigError, match=what):
            config.check_run({**spot.parameters, **bad}, flow="spot")
    with pytest.raises(ConfigError, match="unknown run parameter"):
        config.check_run({**spot.parameters, "dask_address": "tcp://x:1"}, flow="spot")
    (kwargs,) = [kw for flow, kw in deployment_specs(config) if flow.name == "spot"]
    assert kwargs["name"] == "samm-lv" and kwargs["parameters"] == spot.parameters
    (trigger,) = kwargs["triggers"]
    assert trigger.parameters == {"version": "{{ event.payload.version_id }}"}
    assert "spot/samm-lv" in trigger.name
    with pytest.raises(ConfigError, match="unknown spotting method 'best'"):
        load_config(_write(tmp_path, '[datasets.samm-lv]\nroot = "x"\nspot_method = "best"\n'))
