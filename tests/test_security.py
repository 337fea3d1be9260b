"""Security properties: served runs obey the configuration, local clusters are closed, compose
publishes nothing beyond loopback and needs the API's auth string, and stores carry no path of
the machine that made them.

* A deployment run's parameters (Dask address, roots, store, recipe, labels, options, workers)
  must be ones ``mer-prep.toml`` allows: anyone who reaches the Prefect API can start a run, and
  a run connecting to their Dask scheduler would unpickle what it sends (code execution).
* The flow's local Dask cluster listens on 127.0.0.1 only, over TLS with credentials made for it.
* Failure records and error messages name files relative to the dataset root.
"""

from __future__ import annotations

import json
import operator
import os
import re
import socket
import subprocess
from pathlib import Path

import openpyxl
import pytest
import yaml
from serve_helpers import write_serve_config
from server_harness import serving
from store_contents import SMALL_CASME2, begin_version

from mer_prep.config import load_config
from mer_prep.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker" / "compose.yaml"


# ------------------------------------------------------ item 2: run parameters vs the config


def _config(tmp_path: Path, defaults: str = "", casme2: str = ""):
    (tmp_path / "CASME2").mkdir(exist_ok=True)
    path = tmp_path / "conf" / "mer-prep.toml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(f"""
[defaults]
recipe = "ha3d"
store = "stores/{{dataset}}/{{recipe}}"
n_workers = 2
dask_address = "tcp://scheduler:8786"
{defaults}

[datasets.casme2]
root = "{tmp_path / "CASME2"}"
recipes = ["ha3d", "mbcc64"]
labels = "megc3"
{casme2}

[datasets.samm]
root = "{tmp_path / "SAMM"}"
enabled = false

[datasets.megc2019]
recipe = "mbcc64"

[datasets.megc2019.root]
smic = "{tmp_path / "SMIC"}"
casme2 = "{tmp_path / "CASME2"}"
samm = "{tmp_path / "SAMM"}"
""")
    return load_config(path)


def _parameters(config, name: str = "casme2") -> dict:
    return dict(next(d for d in config.deployments() if d.name == name).parameters)


def test_the_configured_parameters_and_their_spellings_are_allowed(tmp_path, monkeypatch):
    config = _config(tmp_path)
    for deployment in config.deployments():
        config.check_run(deployment.parameters)
        config.check_run({**deployment.parameters, "progress": True})
    params = _parameters(config)
    conf = tmp_path / "conf"
    config.check_run({**params, "store": str(conf / "stores" / "casme2" / "ha3d")})  # formatted
    config.check_run(
        {**params, "recipe": "mbcc64", "store": str(conf / "stores" / "casme2" / "mbcc64")}
    )
    config.check_run({**params, "root": str(tmp_path / "CASME2") + "/"})
    config.check_run({**params, "root": str(tmp_path / "conf" / ".." / "CASME2")})
    config.check_run({**params, "n_workers": 1, "options": None})
    monkeypatch.chdir(conf)  # a relative store is where the run will write: the working directory
    config.check_run({**params, "store": "stores/{dataset}/{recipe}"})


BAD = {
    "dask_address": ["tcp://127.0.0.1:1", None, "tcp://scheduler:8786 ", 8786],
    "root": ["/etc", "{tmp}/CASME2/../../etc", "{tmp}/CASME2/sub01", {"casme2": "{tmp}/CASME2"}],
    "store": [
        "/tmp/elsewhere",
        "{tmp}/conf/stores/casme2/ha3d/../../../../x",
        "s3://evil/x",
        "{tmp}/conf/stores/{dataset.__class__}",
        "{0}",
        "{dataset:>999999999}",
        None,
    ],
    "recipe": ["broadbent64", "/etc/evil.yaml", "ha3d.yaml", None],
    "labels": ["native", None],
    "options": [{"variant": "cropped"}, "variant=raw"],
    "n_workers": [3, 0, -1, True, "2", 2.0],
    "progress": ["yes"],
    "dataset": ["samm", "smic", "nosuch", None],
    "evil": ["x"],
}


@pytest.mark.parametrize(
    "name,value", [(n, v) for n, values in BAD.items() for v in values], ids=lambda v: repr(v)[:40]
)
def test_a_parameter_the_config_does_not_allow_is_refused_by_name(tmp_path, name, value):
    config = _config(tmp_path)

    def fill(v):
        if isinstance(v, str):
            return v.replace("{tmp}", str(tmp_path))
        if isinstance(v, dict):
            return {k: fill(x) for k, x in v.items()}
        return v

    with pytest.raises(ConfigError) as refused:
        config.check_run({**_parameters(config), name: fill(value)})
    message = str(refused.value)
    assert str(config.path) in message and re.search(rf"\b{name}\b", message), message


def test_allow_lists_widen_what_a_run_may_use(tmp_path):
    config = _config(
        tmp_path,
        defaults='dask_addresses = ["tls://dask-2:8786"]\n'
        'store_roots = ["scratch", "s3://bucket/stores"]\n'
        'allowed_recipes = ["broadbent64"]\n',
    )
    params = _parameters(config)
    config.check_run({**params, "dask_address": "tls://dask-2:8786"})
    config.check_run({**params, "store": str(tmp_path / "conf" / "scratch" / "mine")})
    config.check_run({**params, "store": "s3://bucket/stores/casme2/{recipe}"})
    config.check_run({**params, "recipe": "broadbent64"})
    for store in (
        str(tmp_path / "conf" / "scratch"),
        str(tmp_path / "conf" / "scratch2" / "x"),
        "s3://bucket/storesX",
        "s3://bucket/stores/../x",
        "s3://other/stores/x",
    ):
        with pytest.raises(ConfigError, match="store"):
            config.check_run({**params, "store": store})
    with pytest.raises(ConfigError, match="dask_address"):
        config.check_run({**params, "dask_address": "tls://dask-3:8786"})
    # a dataset's own list replaces the defaults' one
    narrow = _config(
        tmp_path, defaults='dask_addresses = ["tls://dask-2:8786"]', casme2="dask_addresses = []"
    )
    with pytest.raises(ConfigError, match="dask_address"):
        narrow.check_run({**_parameters(narrow), "dask_address": "tls://dask-2:8786"})


def test_a_link_inside_a_store_root_cannot_lead_a_run_outside_the_roots(tmp_path):
    config = _config(tmp_path, defaults='store_roots = ["scratch"]\n')
    params = _parameters(config)
    scratch, outside = tmp_path / "conf" / "scratch", tmp_path / "elsewhere"
    scratch.mkdir()
    outside.mkdir()
    (scratch / "escape").symlink_to(outside)
    (scratch / "inner").symlink_to(scratch / "real", target_is_directory=True)
    with pytest.raises(ConfigError, match="store"):
        config.check_run({**params, "store": str(scratch / "escape" / "casme2")})
    config.check_run({**params, "store": str(scratch / "inner" / "casme2")})  # a link that stays


def test_a_composite_needs_every_configured_root(tmp_path):
    config = _config(tmp_path)
    params = _parameters(config, "megc2019")
    config.check_run(params)
    for root in (
        {**params["root"], "smic": "/etc"},
        {"smic": params["root"]["smic"]},
        {**params["root"], "extra": "/etc"},
        params["root"]["casme2"],
    ):
        with pytest.raises(ConfigError, match="root"):
            config.check_run({**params, "root": root})


def test_served_runs_are_checked_against_the_file_serve_names(tmp_path, monkeypatch):
    from flows.deployments import check_served_run
    from mer_prep.config import CONFIG_ENV

    config = _config(tmp_path)
    monkeypatch.setenv(CONFIG_ENV, str(config.path))
    check_served_run(_parameters(config))
    with pytest.raises(ConfigError, match=r"mer-prep\.toml: run parameter dask_address="):
        check_served_run({**_parameters(config), "dask_address": "tcp://127.0.0.1:1"})
    monkeypatch.setenv(CONFIG_ENV, str(tmp_path / "gone.toml"))
    with pytest.raises(ConfigError, match="no configuration file"):  # fails closed
        check_served_run(_parameters(config))


@pytest.fixture(scope="module")
def served(tmp_path_factory, synth_dataset):
    """A real `prefect server start` and `mer-prep serve` of one casme2 deployment."""
    base = tmp_path_factory.mktemp("security")
    root, _ = synth_dataset("casme2", **SMALL_CASME2)
    config = write_serve_config(base, root)
    with serving(base, config, "preprocess/casme2") as server:
        yield {"server": server, "env": server.client_env, "base": base, "config": config}


def _deployment_run(served, *params: str) -> subprocess.CompletedProcess:
    return served["server"].deployment_run(
        "preprocess/casme2", *params, watch_timeout=180, timeout=240
    )


@pytest.mark.slow  # a Prefect server, `mer-prep serve` and two refused runs
def test_a_served_run_with_a_foreign_dask_address_or_root_fails_before_connecting(served):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.setblocking(False)
        port = listener.getsockname()[1]
        run = _deployment_run(served, f"dask_address=tcp://127.0.0.1:{port}")
        assert run.returncode == 1, run.stdout + run.stderr
        with pytest.raises(BlockingIOError):  # nobody knocked
            listener.accept()
    etc = _deployment_run(served, "root=/etc")
    assert etc.returncode == 1, etc.stdout + etc.stderr
    log = (served["base"] / "serve.log").read_text()
    # a refused parameter is one line (the run's state message), no traceback: named with its value
    assert re.search(rf"dask_address.*127\.0\.0\.1:{port}.*may only use what this file", log)
    assert re.search(r"/etc.*\(root\).*may only use what this file", log)
    assert "Traceback" not in log
    assert str(served["config"]) in log
    assert not (served["base"] / "stores").exists()  # no store was touched


# ------------------------------------------------------------------ item 2: docker compose


def test_compose_publishes_on_loopback_only_and_requires_the_api_auth_string():
    from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_SERVER_API_AUTH_STRING

    services = yaml.safe_load(COMPOSE.read_text())["services"]
    published = [
        (name, str(port)) for name, svc in services.items() for port in svc.get("ports", [])
    ]
    assert {p.split(":")[-1] for _, p in published} >= {"4200", "8787"}
    for name, port in published:
        assert re.fullmatch(r"127\.0\.0\.1:\d+:\d+", port), f"{name} publishes {port}"

    def env(name: str) -> dict:
        return services[name].get("environment") or {}

    server_key, client_key = PREFECT_SERVER_API_AUTH_STRING.name, PREFECT_API_AUTH_STRING.name
    required = re.fullmatch(r"\$\{(\w+):\?[^}]+\}", str(env("prefect-server").get(server_key)))
    assert required, f"prefect-server: {server_key} must be a required variable"
    for name in services:
        if name != "prefect-server" and "PREFECT_API_URL" in env(name):
            assert env(name).get(client_key) == env("prefect-server")[server_key], name


# -------------------------------------------------------- item 5: the flow's local cluster


@pytest.mark.slow  # a local cluster of one worker process
def test_the_local_cluster_listens_on_loopback_over_tls_only():
    import psutil
    from distributed import Client

    from flows.preprocess import task_runner

    with task_runner(None, 1) as runner:
        client = runner.client
        address = client.cluster.scheduler_address
        assert address.startswith("tls://127.0.0.1:"), address
        assert client.submit(operator.add, 1, 2).result(timeout=60) == 3
        me = psutil.Process()
        listening = {
            c.laddr
            for proc in (me, *me.children(recursive=True))
            for c in proc.net_connections("inet")
            if c.status == psutil.CONN_LISTEN
        }
        dashboard = client.scheduler_info()["services"]["dashboard"]
        assert any(port == dashboard for _, port in listening)
        assert listening and {ip for ip, _ in listening} <= {"127.0.0.1", "::1"}, listening
        for plain in (address, address.replace("tls://", "tcp://")):
            with pytest.raises((OSError, TimeoutError, TypeError, ValueError)):
                with Client(plain, timeout="5s") as intruder:
                    intruder.submit(operator.add, 1, 2).result(timeout=5)


# ------------------------------------------------------------ item 9: no maker's path stored


def test_paths_under_a_root_become_relative_and_the_rest_stays():
    from mer_prep.sample import relative_to_root

    root = "/home/alice/data/CASME2"
    assert relative_to_root(f"{root}/sub01/EP01/img3.jpg", root) == "sub01/EP01/img3.jpg"
    assert (
        relative_to_root(f"{root}/CASME2-coding.xlsx:7 (sheet 'x')", root)
        == "CASME2-coding.xlsx:7 (sheet 'x')"
    )
    assert (
        relative_to_root(f"clip path {root}/sub02/../../etc leaves the dataset root {root}", root)
        == "clip path sub02/../../etc leaves the dataset root ."
    )
    assert relative_to_root(f"file {root}-old/x.jpg: gone", root) == f"file {root}-old/x.jpg: gone"
    assert relative_to_root(f"/mnt{root}/x", root) == f"/mnt{root}/x"  # not under the root
    roots = {"smic": "/d/SMIC", "casme2": "/d/SMIC/CASME2"}.values()  # nested: the longest wins
    assert relative_to_root("/d/SMIC/CASME2/sub01 and /d/SMIC/HS/s1", roots) == "sub01 and HS/s1"
    assert relative_to_root("no paths here", root) == "no paths here"
    assert relative_to_root("", root) == ""


def test_a_path_in_the_home_directory_outside_the_root_is_written_from_tilde(monkeypatch):
    from mer_prep.sample import relative_to_root

    monkeypatch.setenv("HOME", "/home/alice")
    assert (
        relative_to_root("sheet /home/alice/notes/fix.yaml:3 and /home/alicex/y", "/data/CASME2")
        == "sheet ~/notes/fix.yaml:3 and /home/alicex/y"
    )
    monkeypatch.setenv("HOME", "/")
    assert relative_to_root("/etc/x", "/data/CASME2") == "/etc/x"


def test_relative_roots_and_links_are_recognised(tmp_path, monkeypatch):
    from mer_prep.sample import relative_to_root

    real = tmp_path / "real"
    (real / "sub01").mkdir(parents=True)
    (tmp_path / "link").symlink_to(real)
    monkeypatch.chdir(tmp_path)
    assert relative_to_root(f"{real}/sub01/a.jpg", "link") == "sub01/a.jpg"
    assert relative_to_root(f"{tmp_path}/link/sub01/a.jpg", "link") == "sub01/a.jpg"
    assert relative_to_root("link/sub01/a.jpg", "link") == "sub01/a.jpg"


@pytest.mark.slow  # processes a small dataset in-process
def test_a_store_holds_no_absolute_path_of_its_maker(tmp_path, synth_dataset):
    from mer_prep.store import open_store

    root, written = synth_dataset("casme2", copy_to=tmp_path / "data", **SMALL_CASME2)
    clips = sorted(written, key=lambda w: w.sample_id)
    hole = Path(clips[0].frame_paths[len(clips[0].frame_paths) // 2])
    hole.unlink()  # a missing frame: a scan problem
    first = int(Path(clips[1].frame_paths[0]).stem.removeprefix("img"))
    truncated = Path(clips[1].frame_paths[clips[1].onset - first])
    truncated.write_bytes(truncated.read_bytes()[:300])  # a processing failure naming the file
    sheet_path = next(root.glob("CASME2-coding-*.xlsx"))
    book = openpyxl.load_workbook(sheet_path)
    book.active.append([1, "EP77_01", 10, 12, 20, "AU1", "happiness"])  # no such folder
    book.active.append([2, "../../etc", 1, 2, 3, "AU1", "happiness"])  # leaves the root
    book.active.append(["x", "EP01_01", 1, 2, 3, "AU1", "happiness"])  # a bad subject
    book.save(sheet_path)

    store_path = tmp_path / "store"
    _, finish = begin_version(root, store_path, "ha3d")
    finish()

    store = open_store(store_path)
    failures = {(row.stage, row.sample_id): row for row in store.failures.itertuples()}
    assert len(failures) >= 5, failures
    process = failures["process", clips[1].sample_id]
    assert process.file == str(truncated.relative_to(root)), process
    assert sheet_path.name in failures["scan", clips[0].sample_id].file
    text = json.dumps(store.attrs) + store.table_all.to_json()
    for maker in {str(tmp_path), str(tmp_path.resolve()), str(root)}:
        assert maker not in text
    assert not [row.file for row in store.failures.itertuples() if row.file.startswith("/")]
    assert "EP77_01" in text and "../../etc" in text


def test_stores_the_runs_lock_and_prefect_homes_are_private_under_a_loose_umask(
    tmp_path, monkeypatch
):
    """Issue: stores, the runs lock and prefect.db followed the umask (0755 / 0644): decoded
    faces of licensed data and run logs are private by default."""
    import stat

    from flows.runtime import isolated_environment, prefect_environment
    from mer_prep.store.repo import StoreLocation, open_repository
    from mer_prep.train.runs_store import LOCK_FILE, _commit_lock

    mode = lambda p: stat.S_IMODE(p.stat().st_mode)  # noqa: E731
    old = os.umask(0o022)
    try:
        open_repository(tmp_path / "stores" / "new", create=True)
        with _commit_lock(StoreLocation.parse(tmp_path / "stores" / "new")):
            pass
        isolated_environment(tmp_path / "served-home")
        monkeypatch.delenv("PREFECT_HOME", raising=False)
        prefect_environment(tmp_path / "home")
    finally:
        os.umask(old)
    assert mode(tmp_path / "stores" / "new") == 0o700
    assert mode(tmp_path / "stores" / "new" / LOCK_FILE) == 0o600
    assert mode(tmp_path / "served-home") == 0o700 and mode(tmp_path / "home") == 0o700
