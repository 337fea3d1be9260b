"""Package attributes imported on first use (PEP 562's module ``__getattr__``).

A package whose public names live in heavy modules (matplotlib, PyTorch, the storage runtime)
names, per public name, the submodule that defines it; ``__getattr__ = lazy_getattr(__name__,
where)`` then imports that submodule only when the name is first asked for, so that importing
the package, or a light module of it, costs none of them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any


def lazy_getattr(package: str, where: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package``: ``name`` in ``where`` is the attribute of the
    same name of submodule ``package.<where[name]>`` (imported then); any other name raises
    ``AttributeError``, as a module without the attribute does."""

    def __getattr__(name: str) -> Any:
        if name in where:
            return getattr(import_module(f"{package}.{where[name]}"), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
