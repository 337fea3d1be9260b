"""Checks of what a user names before anything runs: the dataset, its roots and its adapter's
options (``--option key=value`` on the command line, ``options`` in ``mer-prep.toml``)."""

from __future__ import annotations

import inspect
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mer_prep.errors import (
    AnnotationError,
    DataRootError,
    InvalidArgumentError,
    UnknownDatasetError,
)

Roots = str | os.PathLike | Mapping[str, str | os.PathLike]


def check_dataset(name: str) -> None:
    """Raise ``UnknownDatasetError`` naming the known datasets unless ``name`` is one."""
    from mer_prep.datasets import dataset_names

    if name not in dataset_names():
        raise UnknownDatasetError(f"unknown dataset {name!r}; known: {', '.join(dataset_names())}")


def option_choices(name: str) -> dict[str, tuple[str, ...]]:
    """The adapter options of dataset ``name`` that take one of a fixed set of values."""
    from mer_prep.datasets import casme2, casme3, casme_sq, smic

    variants, modalities = tuple(casme2.FRAME_DIRS), tuple(smic.FPS)
    return {
        "casme2": {"variant": variants},
        "smic": {"modality": modalities},
        "casme-sq": {"kind": tuple(casme_sq.KINDS), "source": tuple(casme_sq.SOURCES)},
        "casme3": {"part": tuple(casme3.PARTS), "layout": tuple(casme3.LAYOUTS)},
        "megc2019": {"modality": modalities, "variant": variants},
    }.get(name, {})


def _generic_composite(name: str) -> bool:
    from mer_prep.datasets import ADAPTERS
    from mer_prep.labels import COMPOSITES

    return name in COMPOSITES and name not in ADAPTERS


def adapter_options(name: str) -> list[str]:
    """The keyword options the adapter of ``name`` accepts; for a composite other than
    megc2019, ``<part>.<option>`` for each option its parts leave open."""
    from mer_prep.datasets import _adapter

    check_dataset(name)
    if _generic_composite(name):
        from mer_prep.labels import composite

        found = composite(name)
        return [
            f"{part}.{option}"
            for part in found.parts
            for option in adapter_options(part)
            if option not in found.options.get(part, {})
        ]
    parameters = inspect.signature(_adapter(name).scan).parameters.values()
    return [p.name for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY]


def check_options(name: str, options: Mapping[str, Any]) -> None:
    """Raise ``InvalidArgumentError`` for an option the adapter does not take or a value it
    does not allow, naming the valid ones."""
    known = adapter_options(name)
    choices = option_choices(name)
    if _generic_composite(name):
        choices = {
            f"{part}.{option}": allowed
            for key in known
            for part, option in [key.split(".", 1)]
            for o, allowed in option_choices(part).items()
            if o == option
        }
    for key, value in options.items():
        if key not in known:
            raise InvalidArgumentError(
                f"{name} has no option {key!r}; its options: {', '.join(known) or 'none'}"
            )
        allowed = choices.get(key)
        if allowed is not None and value not in allowed:
            raise InvalidArgumentError(
                f"{name} option {key}={value!r} is not one of {', '.join(allowed)}"
            )


def check_roots(name: str, root: Roots) -> None:
    """Raise ``DataRootError`` when a root folder does not exist, or ``InvalidArgumentError``
    when a composite's parts are not given one root each (or a single dataset several)."""
    from mer_prep.labels import COMPOSITES

    parts = COMPOSITES.get(name)
    if (parts is not None) != isinstance(root, Mapping):
        raise InvalidArgumentError(
            f"{name} takes one root per part ({', '.join(parts)}) as part=PATH"
            if parts
            else f"{name} takes one root folder, not parts"
        )
    if parts is not None:
        missing = [part for part in parts if part not in root]
        unknown = sorted(set(root) - set(parts))
        if missing or unknown:
            raise InvalidArgumentError(
                f"{name} needs roots for {', '.join(parts)}"
                + (f"; missing {', '.join(missing)}" if missing else "")
                + (f"; unknown {', '.join(unknown)}" if unknown else "")
            )
    for part, folder in root.items() if isinstance(root, Mapping) else [(name, root)]:
        if not Path(folder).expanduser().is_dir():
            raise DataRootError(f"{part} root {folder} does not exist or is not a folder")


#: adapters that read an annotation file found under their root (unless their ``annotations``
#: option names one): the adapter module and its function that finds the file
_ANNOTATION_FINDERS = {
    "casme2": ("casme2", "find_sheet"),
    "samm": ("samm", "find_sheet"),
    "casme-sq": ("casme_sq", "find_sheet"),
    "4dme": ("fourd", "find_sheet"),
    "mmew": ("mmew", "find_sheet"),
    "dfme": ("dfme", "find_sheets"),
    "manifest": ("manifest", "find_manifest"),
}


def check_annotations(name: str, root: Roots, options: Mapping[str, Any] | None = None) -> None:
    """Raise ``AnnotationError`` (naming the file looked for) when the annotation file that a
    scan of ``name`` reads is not there: a glob before a run starts rather than a failed scan
    once a Prefect server and a cluster are up. Each part of a composite is checked. Call after
    :func:`check_roots`; whether the file reads is the scan's to say."""
    import importlib

    from mer_prep.labels import COMPOSITES

    options = dict(options or {})
    parts = (
        [(part, root[part], options.get(f"{part}.annotations")) for part in COMPOSITES[name]]
        if name in COMPOSITES
        else [(name, root, options.get("annotations"))]
    )
    for part, folder, named in parts:
        if named is not None:
            if not Path(named).expanduser().exists():
                raise AnnotationError(f"{part} annotations do not exist", file=str(named))
        elif part in _ANNOTATION_FINDERS:
            module, finder = _ANNOTATION_FINDERS[part]
            getattr(importlib.import_module(f"mer_prep.datasets.{module}"), finder)(
                Path(folder).expanduser()
            )
