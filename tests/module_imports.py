"""What a module imports, read from its source with ``ast`` (no import is executed).

Every import counts: top-level, inside functions, under ``if TYPE_CHECKING:``, in ``try`` blocks,
and ``importlib.import_module("...")`` / ``__import__("...")`` calls with a literal name.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "mer_prep"


@dataclass(frozen=True)
class Import:
    """One imported module name, where it appears (line) in the importing module."""

    module: str
    line: int


def module_name(path: Path, root: Path = REPO) -> str:
    """``mer_prep/face/detect.py`` -> ``mer_prep.face.detect``; ``.../__init__.py`` -> the
    package."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_modules(package: Path = PACKAGE, root: Path = REPO) -> dict[str, Path]:
    """Every module of ``package`` (recursively): dotted name -> file."""
    return {
        module_name(path, root): path
        for path in sorted(package.rglob("*.py"))
        if "__pycache__" not in path.parts
    }


def _resolve_relative(module: str, is_package: bool, level: int, target: str | None) -> str:
    base = module.split(".") if is_package else module.split(".")[:-1]
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join([*base, *([target] if target else [])])


def imports_of(
    source: str,
    module: str,
    *,
    is_package: bool = False,
    known: set[str] | frozenset[str] = frozenset(),
) -> list[Import]:
    """The modules ``source`` (the code of ``module``) imports.

    ``from pkg import name`` counts as importing ``pkg.name`` when that is a module in ``known``
    (a submodule), else as importing ``pkg``. Relative imports are resolved against ``module``.
    """
    found: list[Import] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.extend(Import(alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = (
                (node.module or "")
                if node.level == 0
                else _resolve_relative(module, is_package, node.level, node.module)
            )
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.append(Import(candidate if candidate in known else base, node.lineno))
        elif (
            isinstance(node, ast.Call)
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if name in ("import_module", "__import__"):
                found.append(Import(node.args[0].value, node.lineno))
    return found


def all_imports(package: Path = PACKAGE, root: Path = REPO) -> dict[str, list[Import]]:
    """Every module of ``package`` -> what it imports."""
    modules = package_modules(package, root)
    known = set(modules)
    return {
        name: imports_of(
            path.read_text(encoding="utf-8"),
            name,
            is_package=path.name == "__init__.py",
            known=known,
        )
        for name, path in modules.items()
    }
