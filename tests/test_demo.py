"""`mer-prep demo` as a user runs it: a real store, matching the generated dataset, idempotent;
by default it ends by training a light model that learns (UAR well above chance) beside a
shuffled-label control that does not."""

import os
import re
import subprocess
import sys

import numpy as np
import pytest

from mer_prep.store import open_store
from mer_prep.synth.ground_truth import load_manifest

pytestmark = pytest.mark.slow  # the whole product in a subprocess: synthesis, Prefect, Dask


def _demo(directory, *args):
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}  # its own ephemeral API
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mer_prep.cli",
            "demo",
            "--dir",
            str(directory),
            *(args or ("--subjects", "3", "--clips", "2", "--no-train")),
        ],
        capture_output=True,
        text=True,
        timeout=1200,
        env=env,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return result.stdout


def test_demo_builds_the_documented_store_and_a_rerun_does_no_work(tmp_path):
    first = _demo(tmp_path)
    version = re.search(r"version: (v-[0-9a-f]{16}) \(committed\)", first).group(1)
    store = open_store(tmp_path / "stores" / "casme2" / "ha3d")
    assert store.version_id == version

    truth = load_manifest(tmp_path / "CASME2")["clips"]
    table = store.table.set_index("sample_id").sort_index()
    assert sorted(truth) == list(table.index)  # every generated clip, nothing else
    for sample_id, clip in truth.items():
        row = table.loc[sample_id]
        assert (row.onset, row.offset) == (clip["onset_number"], clip["offset_number"])
        assert row.apex == clip["apex_number"]
        assert row.label_name == row.emotion == clip["emotion"]
        assert row.subject == clip["subject"]
    assert len(store.failures) == 0
    n = len(truth)
    assert store.array("frames").shape == (n, 16, 128, 128)
    assert store.array("upper").shape == store.array("lower").shape == (n, 16, 64, 128)
    assert store.array("landmarks").shape == (n, 68, 2)
    frames = store.array("frames", dtype="float32")
    assert 0.0 <= frames.min() and frames.max() <= 1.0 and frames.std() > 0.1
    np.testing.assert_array_equal(store.array("upper"), store.array("frames")[:, :, :64])
    assert store.xarray()["frames"].dims == ("sample", "frame", "y", "x")
    assert "version v-" in first and f"samples: {n} ok of {n}" in first
    assert "demo training" not in first  # --no-train

    second = _demo(tmp_path)
    assert "reusing the synthetic CASME II look-alike" in second
    assert f"version: {version} (up to date)" in second
    assert len(open_store(tmp_path / "stores" / "casme2" / "ha3d").versions()) == 1


def _score(text: str, what: str) -> tuple[float, float]:
    found = re.search(rf"{what}:\s+pooled UF1 ([0-9.]+)\s+UAR ([0-9.]+)", text)
    assert found, text
    return float(found.group(1)), float(found.group(2))


def test_the_default_demo_trains_a_model_that_learns_beside_a_control_at_chance(tmp_path):
    from mer_prep.train import list_runs

    first = _demo(tmp_path, "--recipe", "mbcc64")  # the cheapest preprocessing of the flow
    uf1, uar = _score(first, "model")
    control_uf1, control_uar = _score(first, "shuffled-label control")
    assert re.search(r"chance:\s+UAR 0\.333\s+\(1 / 3 classes\)", first), first
    # 8 subjects x 3 clips, one per class each: LOSO scores 24 clips
    assert uar >= 0.75 and uf1 >= 0.7, first
    assert control_uar <= 0.5, first
    runs = list_runs(tmp_path / "stores" / "casme2" / "mbcc64")
    assert len(runs) == 1 and runs[0].uar == pytest.approx(uar, abs=5e-4)
    assert runs[0].n_folds == 8 and runs[0].config["filters"] == [8, 16]

    second = _demo(tmp_path, "--recipe", "mbcc64")
    assert "reusing the demo training recorded as run" in second
    assert _score(second, "model") == (uf1, uar)
    assert len(list_runs(tmp_path / "stores" / "casme2" / "mbcc64")) == 1
