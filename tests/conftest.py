"""Test-wide settings: Prefect keeps its state in a throwaway home and never phones home;
synthetic datasets are generated once per session (``synth_dataset``)."""

import dataclasses
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from flows.runtime import prefect_environment  # imports no Prefect

# Set before any test module imports prefect (directly or through flows/).
os.environ.pop("PREFECT_HOME", None)
os.environ.pop("PREFECT_API_URL", None)
prefect_environment(tempfile.mkdtemp(prefix="mer-prep-prefect-"), logging_level="WARNING")
# The decoded-array cache of training reads: a throwaway folder, never the user's ~/.cache.
os.environ["MER_PREP_CACHE"] = tempfile.mkdtemp(prefix="mer-prep-cache-")


@pytest.fixture(scope="session")
def prefect_server():
    """One ephemeral Prefect API for the flow tests (its URL is exported for Dask workers)."""
    from flows.runtime import prefect_api

    with prefect_api() as url:
        yield url


# --- synthetic datasets, generated once per session ---------------------------------------------

_FOLDERS = {
    "casme1": "CASME",
    "casme2": "CASME2",
    "samm": "SAMM",
    "smic": "SMIC",
    "casme-sq": "CASME_SQ",
    "megc2019": "MEGC2019",
}


def _frozen(value):
    if isinstance(value, dict):
        return tuple(sorted((key, _frozen(item)) for key, item in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_frozen(item) for item in value)
    return value


@pytest.fixture(scope="session")
def synth_dataset(tmp_path_factory):
    """``make(dataset, copy_to=None, **params) -> (root, written)``: the synthetic ``dataset``
    that ``generate_dataset(dataset, root, **params)`` writes, generated once per session for
    each distinct parameter set; equal parameters return the same root.

    The dataset is shared: read it, never modify it. A test that edits files passes
    ``copy_to=<its own folder>`` and gets a private copy (``copy_to/<DATASET>`` and the ground
    truth beside it; ``written`` names the copy's frames, while the ground truth's own
    ``frame_paths`` still name the shared original's).
    """
    from mer_prep.synth.generate import generate_dataset

    made: dict = {}

    def make(dataset: str, *, copy_to: Path | None = None, **params):
        key = (dataset, _frozen(params))
        if key not in made:
            root = tmp_path_factory.mktemp(f"synth-{dataset}") / _FOLDERS.get(dataset, dataset)
            made[key] = (root, tuple(generate_dataset(dataset, root, **params)))
        root, written = made[key]
        if copy_to is None:
            return root, list(written)
        base, target = root.parent, Path(copy_to)
        shutil.copytree(base, target, dirs_exist_ok=True)

        def moved(path: str) -> str:
            return str(target / Path(path).relative_to(base))

        return target / root.name, [
            dataclasses.replace(w, frame_paths=tuple(map(moved, w.frame_paths))) for w in written
        ]

    return make
