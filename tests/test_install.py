"""Reproducible installs: the README's two set-up commands and CI install through
``constraints.txt``, whose pins satisfy ``pyproject.toml`` and hold the versions CI tested."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
# The pins the project depends on being exact (upstream breaking changes bit us at each of them).
MUST_PIN = {
    "prefect": "3.8.8",
    "prefect-dask": "0.3.7",
    "dask": "2026.8.0",
    "distributed": "2026.8.0",
    "zarr": "3.1.6",
    "icechunk": "1.1.21",
}


def pins() -> dict[str, Version]:
    found: dict[str, Version] = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, version = line.partition("==")
        assert sep and ";" not in line and "@" not in line, (
            f"constraints.txt: not a plain pin: {line}"
        )
        key = canonicalize_name(name)
        assert key not in found, f"constraints.txt pins {name} twice"
        found[key] = Version(version)
    return found


def project_requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    return [
        Requirement(spec)
        for spec in (
            *project["dependencies"],
            *extras["test"],
            *extras["train"],
            *extras["cluster"],
        )
    ]


def test_every_pin_satisfies_pyproject_and_every_requirement_is_pinned():
    pinned = pins()
    for requirement in project_requirements():
        key = canonicalize_name(requirement.name)
        assert key in pinned, (
            f"constraints.txt lacks {requirement.name}: run tools/update-constraints"
        )
        assert requirement.specifier.contains(pinned[key], prereleases=True), (
            f"constraints.txt pins {requirement.name}=={pinned[key]} outside pyproject's "
            f"{requirement.specifier}: run tools/update-constraints"
        )
    assert "mer-prep" not in pinned  # the editable checkout itself is never pinned


def test_the_pins_that_must_hold():
    pinned = pins()
    for name, version in MUST_PIN.items():
        assert pinned[name] == Version(version), name
    assert pinned["fastapi"] < Version("0.151") and pinned["sqlalchemy"] < Version("2.1")
    assert pinned["setuptools"] < Version("82")
    # the CPU build that lies on disk: a plain 2.13.0 would fetch a CUDA build of several GB
    assert pinned["torch"] == Version("2.13.0+cpu")
    # two OpenCV wheels install over each other's cv2 package
    assert [n for n in pinned if n.startswith("opencv")] == ["opencv-contrib-python-headless"]


def test_readme_and_ci_install_through_the_constraints():
    readme = (ROOT / "README.md").read_text()
    commands = re.findall(r"^python3\.11 -m venv \.venv && .*$", readme, flags=re.M)
    assert len(commands) == 2, commands
    assert all("/pip install -q -c constraints.txt -e " in c for c in commands), commands
    ci = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if "pip install" in line]
    test_command = next(c for c in commands if c.endswith("tools/check"))
    assert ci == [test_command]  # CI runs exactly the README's test command


# Modules whose installed metadata does not name them (dlib-bin ships a bare extension module).
IMPORT_DISTRIBUTIONS = {"dlib": "dlib-bin"}


def _third_party_imports() -> dict[str, set[str]]:
    """Top-level module -> files importing it, over the installed packages' sources."""
    import ast
    import sys

    found: dict[str, set[str]] = {}
    for package in ("mer_prep", "flows", "storage_schemas"):
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    top = name.split(".")[0]
                    if top not in sys.stdlib_module_names and top not in (
                        "mer_prep",
                        "flows",
                        "storage_schemas",
                    ):
                        found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


def test_every_imported_package_is_declared():
    """Before: ``google_crc32c`` (and PIL, numcodecs) were imported but arrived only as other
    packages' dependencies; a change upstream would have broken a plain install."""
    from importlib.metadata import packages_distributions

    declared = {canonicalize_name(r.name) for r in project_requirements()}
    distributions = packages_distributions()
    imports = _third_party_imports()
    assert {"google_crc32c", "numpy", "zarr", "torch"} <= set(imports)  # the scan sees imports
    undeclared = {}
    for module, files in imports.items():
        names = {canonicalize_name(d) for d in distributions.get(module, ())}
        names |= {IMPORT_DISTRIBUTIONS[module]} if module in IMPORT_DISTRIBUTIONS else set()
        if not names & declared:
            undeclared[module] = sorted(files)[:3]
    assert undeclared == {}, f"imported but not declared in pyproject.toml: {undeclared}"


def test_every_package_data_pattern_matches_a_file():
    """Before: ``py.typed`` was declared in package-data but missing, so type checkers of an
    installed mer-prep ignored its annotations."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    for package, patterns in config["package-data"].items():
        for pattern in patterns:
            assert list((ROOT / package).glob(pattern)), f"package-data {package}/{pattern}"
    assert (ROOT / "mer_prep" / "py.typed").is_file()


def test_one_extra_installs_torch():
    """``torch`` and ``train`` were two identical extras; ``train`` is the one the README and
    the trainer image name."""
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    assert set(extras) == {"train", "test", "cluster"}
    assert set(extras["cluster"]) <= set(extras["test"])  # CI checks the cluster specs
    assert extras["train"] == ["torch==2.13.0"]
    texts = [(ROOT / "README.md").read_text(), (ROOT / "docker" / "trainer.Dockerfile").read_text()]
    assert all(".[torch]" not in text for text in texts)
    assert all(".[train]" in text for text in texts)
