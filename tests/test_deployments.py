"""The production path end to end: a real Prefect server, `mer-prep serve`, and
`prefect deployment run preprocess/casme2 --watch` — first version, up to date, a one-sample
refresh that shares the other samples' chunks, and a failing run that fails the command.

Everything runs in subprocesses with their own environment (their own PREFECT_HOME and
PREFECT_API_URL): nothing set here leaks into the other tests' ephemeral server.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import prefect.states  # noqa: F401
import pytest
from serve_helpers import write_serve_config
from server_harness import get_json, serving
from store_contents import SMALL_CASME2

import flows.deployments  # noqa: F401  these three (PyTorch with the models) load at collection
import mer_prep.models  # noqa: F401
from mer_prep.store import open_store
from mer_prep.store.repo import open_repository

# The small CASME II look-alike both tests edit a copy of: store_contents.SMALL_CASME2.


@pytest.fixture(scope="module")
def served(tmp_path_factory, synth_dataset):
    """A real `prefect server start` and `mer-prep serve` against it; yields (env, paths).
    The dataset is a private copy: the test edits a frame."""
    base = tmp_path_factory.mktemp("deployments")
    root, written = synth_dataset("casme2", copy_to=base, **SMALL_CASME2)
    config = write_serve_config(
        base,
        root,
        # the runs below write <base>/store (check_run allows it)
        defaults=f'store_roots = ["{base}"]',
        casme2='cron = "0 3 * * *"',
        tables=f'[datasets.samm]\nroot = "{base / "SAMM"}"\nenabled = false',
    )
    with serving(base, config, "preprocess/casme2") as server:
        yield {
            "server": server,
            "env": server.client_env,
            "api": server.api,
            "root": root,
            "base": base,
            "written": {w.sample_id: w for w in written},
        }


def _deployment_run(served, *params: str) -> subprocess.CompletedProcess:
    return served["server"].deployment_run(
        "preprocess/casme2", *params, watch_timeout=240, timeout=300
    )


def _artifact(served, key: str) -> str:
    return get_json(f"{served['api']}/artifacts/{key}/latest")["data"]


@pytest.mark.slow  # a Prefect server, `mer-prep serve` and four flow runs
def test_deployment_runs_refresh_only_changed_samples_and_fail_loudly(served):
    deployment = get_json(f"{served['api']}/deployments/name/preprocess/casme2")
    assert deployment["parameters"]["recipe"] == "mbcc64"
    assert [s["schedule"]["cron"] for s in deployment["schedules"]] == ["0 3 * * *"]
    assert get_json(f"{served['api']}/deployments/name/preprocess/samm") is None  # disabled

    root, store_path = served["root"], served["base"] / "store"
    run = lambda: _deployment_run(served, f"root={root}", f"store={store_path}")  # noqa: E731

    first = run()
    assert first.returncode == 0, first.stdout + first.stderr
    store = open_store(store_path)
    assert store.version_id in open_repository(store_path).list_tags()
    assert len(store.table) == 4 and store.attrs["reuse"]["n_recomputed"] == 4
    report = _artifact(served, "preprocess-casme2-mbcc64")
    assert store.version_id in report and "recomputed: 4" in report
    # class balance and contact sheet as images (tests/test_show.py: the Prefect UI shows them)
    assert report.count("](data:image/png;base64,") == 2, report[-300:]

    def ancestry() -> list:
        return list(open_repository(store_path).ancestry(branch="main"))

    before = len(ancestry())
    again = run()
    assert again.returncode == 0, again.stdout + again.stderr
    assert len(ancestry()) == before  # up to date: no snapshot added
    assert "up to date" in _artifact(served, "preprocess-casme2-mbcc64")

    # the apex frame of one clip now shows its onset: only that sample is recomputed
    edited = served["written"][store.table["sample_id"].iloc[1]]
    first_number = int(Path(edited.frame_paths[0]).stem[3:])
    apex_file = Path(edited.frame_paths[edited.apex - first_number])
    apex_file.write_bytes(Path(edited.frame_paths[edited.onset - first_number]).read_bytes())
    chunk_dir = store_path / "chunks"
    chunks_before = set(os.listdir(chunk_dir))
    changed = run()
    assert changed.returncode == 0, changed.stdout + changed.stderr
    latest = open_store(store_path)
    assert latest.version_id != store.version_id
    assert latest.attrs["reuse"] == {
        "from_version": store.version_id,
        "n_reused": 3,
        "n_recomputed": 1,
        "n_rows_reused": 3,
    }
    assert "recomputed: 1, reused (skipped): 3" in _artifact(served, "preprocess-casme2-mbcc64")
    old, new = store.array("frames"), latest.array("frames")
    unchanged = [i for i in range(4) if i != 1]
    np.testing.assert_array_equal(old[unchanged], new[unchanged])
    assert not np.array_equal(old[1], new[1])
    # storage sharing: the new version wrote chunks for one sample only (frames and
    # landmarks, or fewer where Icechunk inlines small chunks), not for four
    assert len(set(os.listdir(chunk_dir)) - chunks_before) <= 2
    assert list(latest.versions()["version_id"]) == [latest.version_id, store.version_id]
    published = len(ancestry())

    bad = _deployment_run(
        served, f"root={served['base'] / 'nowhere'}", f"store={served['base'] / 'bad-store'}"
    )
    assert bad.returncode != 0, bad.stdout + bad.stderr
    assert "Failed" in bad.stdout + bad.stderr
    assert len(ancestry()) == published and open_store(store_path).version_id == latest.version_id


def _commit(root, store_path, recipe):
    """One version written in-process through the library (what the flow wires up)."""
    from mer_prep.pipeline.local import commit_version

    _, writer = commit_version("casme2", root, recipe, store_path)
    return None if writer is None else writer.reuse_summary()


def test_writer_reuses_unchanged_rows_and_drops_splits(tmp_path, synth_dataset):
    """The refresh path without Prefect: a split is dropped, a changed sample rewritten, a
    sample that now fails loses its old chunks, the others keep theirs."""
    from mer_prep.evaluation.splits import build_split
    from mer_prep.recipes import load_recipe
    from mer_prep.store.splits import save_split

    recipe = load_recipe("mbcc64")
    store_path = tmp_path / "store"
    root, written = synth_dataset("casme2", copy_to=tmp_path / "data", **SMALL_CASME2)
    assert _commit(root, store_path, recipe)["n_recomputed"] == 4
    first = open_store(store_path)
    save_split(first, build_split(first.table, "group_kfold", n_splits=2))
    assert open_store(store_path).split_names == ["group_kfold"]
    assert _commit(root, store_path, recipe) is None  # unchanged: up to date
    ids = list(first.table["sample_id"])
    edited, broken = (next(w for w in written if w.sample_id == ids[i]) for i in (0, 3))
    number = int(Path(edited.frame_paths[0]).stem[3:])
    Path(edited.frame_paths[edited.apex - number]).write_bytes(
        Path(edited.frame_paths[edited.onset - number]).read_bytes()
    )
    Path(broken.frame_paths[broken.apex - int(Path(broken.frame_paths[0]).stem[3:])]).write_bytes(
        b"not a jpeg"
    )
    summary = _commit(root, store_path, recipe)
    assert summary == {
        "from_version": first.version_id,
        "n_reused": 2,
        "n_recomputed": 2,
        "n_rows_reused": 2,
    }
    latest = open_store(store_path)
    assert list(latest.table_all["status"]) == ["ok", "ok", "ok", "failed"]
    assert not latest.split_names  # the split indexed the previous version's rows
    np.testing.assert_array_equal(first.array("frames")[1:3], latest.array("frames")[1:3])
    assert not np.array_equal(first.array("frames")[0], latest.array("frames")[0])
    assert not latest.group["frames"][3].any()  # the now-failing sample's old chunk is gone


def test_a_refused_parameter_ends_the_run_failed_with_its_reason(tmp_path, monkeypatch):
    """What `prefect deployment run --watch` shows of a refused run: a Failed state whose
    message is the one-line reason (parameter, value, file), not a traceback in serve's log."""
    from flows.deployments import refused_run
    from mer_prep.config import CONFIG_ENV, load_config

    (tmp_path / "CASME2").mkdir()
    path = tmp_path / "mer-prep.toml"
    path.write_text(
        f'[datasets.casme2]\nroot = "{tmp_path / "CASME2"}"\nrecipe = "mbcc64"\n'
        f'[trainings.quick]\ndataset = "casme2"\nmodel = "mbcc"\nepochs = 2\n'
    )
    monkeypatch.setenv(CONFIG_ENV, str(path))
    (spec,) = load_config(path).training_deployments()
    assert refused_run(spec.parameters, flow="train") is None
    state = refused_run({**spec.parameters, "epochs": 50}, flow="train")
    assert state.is_failed() and "\n" not in state.message
    assert state.message.startswith(f"refused: {path}: run parameter epochs=50 ")
    state = refused_run({"dataset": "casme2", "root": "/etc", "recipe": "mbcc64"})
    assert state.is_failed() and "root" in state.message and "\n" not in state.message
