"""The torch-free model catalogue: `mer-prep models` lists it without PyTorch, `mer-prep train`
checks model, variant and device names against it before PyTorch, Prefect or the store load,
and it says what ``mer_prep.models`` registers."""

from __future__ import annotations

import subprocess
import sys

import pytest

from mer_prep.errors import EXIT_BROKEN_PIPE, EXIT_USAGE
from mer_prep.model_catalogue import MODEL_CATALOGUE

# Runs the CLI with the heavy packages unimportable, as on an install without the extras: a
# command that reached for one would fail differently from what the tests expect.
BLOCKED_CLI = """
import sys

class Blocked:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "prefect", "distributed", "icechunk", "scipy"):
            raise ImportError(f"{name} is unimportable in this test")
        return None

sys.meta_path.insert(0, Blocked())
from mer_prep.cli import main
main(prog_name="mer-prep")
"""


def blocked_cli(*args: str, **options) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", BLOCKED_CLI, *args],
        capture_output=True,
        text=True,
        timeout=60,
        **options,
    )


def test_the_catalogue_is_what_the_registry_registers():
    pytest.importorskip("torch")
    from mer_prep.models import MODELS

    assert list(MODEL_CATALOGUE) == list(MODELS)
    for name, spec in MODELS.items():
        entry = MODEL_CATALOGUE[name]
        assert (entry.paper, entry.recipe, entry.default_variant) == (
            spec.paper,
            spec.recipe,
            spec.default_variant,
        ), name
        assert dict(entry.variants) == {
            variant: preset.recipe for variant, preset in spec.variants.items()
        }, name


def test_models_lists_every_family_without_pytorch():
    done = blocked_cli("models")
    assert done.returncode == 0, done.stderr
    rows = done.stdout.splitlines()[1:]
    assert [row.split()[0] for row in rows] == list(MODEL_CATALOGUE)
    mer3dcnn = rows[list(MODEL_CATALOGUE).index("mer3dcnn")]
    assert mer3dcnn.split()[1:3] == ["004", "DACWB-3DCNN"] and " dacwb3d " in mer3dcnn
    assert mer3dcnn.endswith("plain, da (dacwb3d_aug), scb, dacwb (dacwb3d_aug)")


@pytest.mark.parametrize(
    "args, line",
    [
        (
            ["--model", "mbccc"],
            "error: unknown model 'mbccc'; valid models: mbcc, broadbent, "
            "dp3dnet, ha3dnet, se3dnet, ha3dsenet, msres3d, mer3dcnn, ststnet, "
            "offapexnet, htnet",
        ),
        (
            ["--model", "mbcc", "--variant", "apexx"],
            "error: model mbcc has no variant 'apexx'; valid: apex, onset_apex, difference, frames",
        ),
        (
            ["--model", "mbcc", "--device", "gpu"],
            "error: unknown device 'gpu': use cpu, cuda or cuda:N",
        ),
        (
            ["--model", "mbcc", "--device", "cuda:x", "--workers", "2"],
            "error: unknown device 'cuda:x': use cpu, cuda or cuda:N",
        ),
    ],
)
def test_train_checks_names_before_anything_heavy_loads(tmp_path, args, line):
    done = blocked_cli("train", str(tmp_path / "no-store"), *args, cwd=tmp_path)
    assert (done.returncode, done.stderr.splitlines()) == (EXIT_USAGE, [line])
    assert list(tmp_path.iterdir()) == []  # no Prefect home, no store


def test_a_reader_that_stops_reading_ends_the_command_quietly():
    """`mer-prep models | head`: the reader is gone before the first line is written."""
    process = subprocess.Popen(
        [sys.executable, "-c", BLOCKED_CLI, "models"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    process.stdout.close()  # as `head` does once it has its lines
    _, stderr = process.communicate(timeout=60)
    assert (process.returncode, stderr.decode()) == (EXIT_BROKEN_PIPE, "")
