"""The layer contract of ``mer_prep/``, read from the source of every module.

A module may import modules of its own layer or lower ones, never a higher one; nothing under
``mer_prep/`` except the CLI imports Prefect or the ``flows`` package. Every import counts,
including those inside functions and under ``if TYPE_CHECKING:``.
"""

from __future__ import annotations

import pytest
from module_imports import Import, all_imports, imports_of

#: Layer of each subpackage / module, bottom (0) to top. A module not listed here has no layer
#: and fails the contract: a new subpackage gets its place in this table when it is added.
LAYERS: dict[str, int] = {
    "mer_prep": 0,                 # the package's own (empty) __init__
    "mer_prep.errors": 0,
    "mer_prep.sample": 0,
    "mer_prep.threads": 0,
    "mer_prep.version": 0,
    "mer_prep.records": 0,
    "mer_prep.model_catalogue": 0,  # names and presets of the models, importable without PyTorch
    "mer_prep.face": 1,            # stages over numpy arrays
    "mer_prep.motion": 1,
    "mer_prep.labels": 1,
    "mer_prep.recipes": 2,
    "mer_prep.datasets": 2,
    "mer_prep.evaluation": 2,
    "mer_prep.models": 2,
    "mer_prep.store": 3,
    "mer_prep.plot": 3,            # figures and reports of stores; FeatureStore.plot reaches it
    "mer_prep.pipeline": 4,
    "mer_prep.synth": 4,
    "mer_prep.train": 4,
    "mer_prep.config": 5,
    "mer_prep.cli": 6,
}

#: Top-level packages only the CLI may import: orchestration lives in ``flows/``.
ORCHESTRATION = ("prefect", "prefect_dask", "flows")
ORCHESTRATION_ALLOWED = ("mer_prep.cli",)


def layer(module: str) -> int | None:
    """The layer of a ``mer_prep`` module (the longest matching entry of ``LAYERS``)."""
    for key in sorted(LAYERS, key=len, reverse=True):
        if module == key or (key != "mer_prep" and module.startswith(key + ".")):
            return LAYERS[key]
    return None


def _top(name: str) -> str:
    return name.split(".")[0]


def upward_imports(imports: dict[str, list[Import]]) -> list[str]:
    """``importer:line imports target`` for every import of a higher layer (or of, or by, a
    ``mer_prep`` module that has no layer)."""
    problems = []
    for importer, found in sorted(imports.items()):
        own = layer(importer)
        if own is None:
            problems.append(f"{importer} has no layer in LAYERS")
            continue
        for imp in found:
            if _top(imp.module) != "mer_prep":
                continue
            target = layer(imp.module)
            if target is None:
                problems.append(f"{importer}:{imp.line} imports {imp.module}, which has no layer")
            elif target > own:
                problems.append(f"{importer}:{imp.line} (layer {own}) imports {imp.module} "
                                f"(layer {target})")
    return problems


def orchestration_imports(imports: dict[str, list[Import]]) -> list[str]:
    """``importer:line imports target`` for every Prefect / ``flows`` import outside the CLI."""
    return [f"{importer}:{imp.line} imports {imp.module}"
            for importer, found in sorted(imports.items())
            if not any(importer == m or importer.startswith(m + ".") for m in ORCHESTRATION_ALLOWED)
            for imp in found if _top(imp.module) in ORCHESTRATION]


@pytest.fixture(scope="module")
def imports():
    return all_imports()


def test_the_package_is_read(imports):
    assert len(imports) > 40 and "mer_prep.pipeline.process" in imports
    # imports inside functions are seen: the CLI reaches the flows from its commands only
    cli = [m for m in imports if m == "mer_prep.cli" or m.startswith("mer_prep.cli.")]
    assert any(_top(i.module) == "flows" for m in cli for i in imports[m])


def test_no_module_imports_a_higher_layer(imports):
    assert upward_imports(imports) == []


def test_only_the_cli_imports_prefect_or_flows(imports):
    assert orchestration_imports(imports) == []


# --- the checker fails when it should -----------------------------------------------------------

KNOWN = frozenset({"mer_prep.store", "mer_prep.store.writer", "mer_prep.face", "mer_prep.face.detect",
                   "mer_prep.pipeline", "mer_prep.pipeline.process"})


def _check(module: str, source: str, *, is_package: bool = False) -> list[str]:
    found = {module: imports_of(source, module, is_package=is_package, known=KNOWN)}
    return upward_imports(found) + orchestration_imports(found)


@pytest.mark.parametrize("source", [
    "from mer_prep.store import open_store\n",
    "import mer_prep.store.writer\n",
    "def f():\n    from mer_prep.store.writer import SampleWriter\n    return SampleWriter\n",
    "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from mer_prep.pipeline import process\n",
    "from ..store import writer\n",
    "from .. import pipeline\n",
    "import importlib\nw = importlib.import_module('mer_prep.store.writer')\n",
])
def test_an_upward_import_is_reported(source):
    problems = _check("mer_prep.face.detect", source)
    assert len(problems) == 1 and "mer_prep.face.detect" in problems[0], problems
    assert "(layer 1) imports mer_prep.store" in problems[0] or \
        "(layer 1) imports mer_prep.pipeline" in problems[0], problems


def test_same_and_lower_layers_are_allowed():
    assert _check("mer_prep.store.writer",
                  "from mer_prep.face.detect import FaceBox\nfrom . import table\n"
                  "from mer_prep.recipes import Recipe\nimport numpy\n") == []


@pytest.mark.parametrize("source", [
    "import prefect\n",
    "def run():\n    from prefect import flow\n    return flow\n",
    "from prefect_dask import DaskTaskRunner\n",
    "from flows.preprocess import run_preprocess\n",
    "import importlib\nimportlib.import_module('flows.runtime')\n",
])
def test_prefect_or_flows_below_the_cli_is_reported(source):
    problems = _check("mer_prep.pipeline.process", source)
    assert len(problems) == 1 and problems[0].startswith("mer_prep.pipeline.process:"), problems
    assert _check("mer_prep.cli", source) == []


def test_a_module_without_a_layer_is_reported():
    assert _check("mer_prep.newthing", "import numpy\n") == ["mer_prep.newthing has no layer in LAYERS"]
    problems = _check("mer_prep.cli", "from mer_prep.newthing import x\n")
    assert problems == ["mer_prep.cli:1 imports mer_prep.newthing, which has no layer"]
