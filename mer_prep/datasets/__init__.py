"""Dataset adapters: read each micro-expression dataset exactly as its institution ships it.

    scan_dataset("casme2", "/data/CASME2", labels="megc3") -> DatasetScan

Every adapter turns the dataset into ``Sample`` records and ``Problem`` records (bad rows,
missing folders, unannotated folders, unknown labels) without aborting; only an annotation
file that cannot be read at all raises ``AnnotationError`` (as does a correction that no
longer matches its sheet, see ``corrections``). ``scan_dataset`` also parses every sample's
action units (``Sample.aus``, ``mer_prep.datasets.aus``).

Composites (``megc2019``, ``cross6``, and any registered with ``register_composite``) scan
several adapters, one root each; their samples keep their own dataset and dataset-qualified
subject.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from mer_prep.datasets.options import check_dataset, check_options
from mer_prep.errors import InvalidArgumentError
from mer_prep.labels import (
    COMPOSITES,
    Composite,
    CompositePart,
    apply_scheme,
    composite,
    define_composite,
)
from mer_prep.labels import register_composite as _register_composite
from mer_prep.labels import unregister_composite as _unregister_composite
from mer_prep.sample import DatasetScan

#: adapter name -> module under mer_prep.datasets
ADAPTERS: dict[str, str] = {
    "casme1": "casme1",
    "casme2": "casme2",
    "samm": "samm",
    "smic": "smic",
    "casme-sq": "casme_sq",
    "casme3": "casme3",
    "dfme": "dfme",
    "4dme": "fourd",
    "mmew": "mmew",
    "manifest": "manifest",
    "megc2019": "megc2019",
}
#: every dataset name scan_dataset accepts: the adapters, then the composites (rebound by
#: register_composite; call dataset_names() for the current list)
DATASETS: tuple[str, ...] = tuple(dict.fromkeys([*ADAPTERS, *COMPOSITES]))


def dataset_names() -> tuple[str, ...]:
    """The dataset names known now, registered composites included."""
    return DATASETS


class _CompositeAdapter:
    """Scans a composite of ``composites.yaml`` (or a registered one) part by part."""

    def __init__(self, name: str) -> None:
        self.name = name

    def scan(self, roots: Mapping[str, Path | str], **options: Any) -> DatasetScan:
        """options: ``<part>.<option>`` (``casme2.variant="cropped"``); the composite's own
        fixed options cannot be overridden."""
        found = composite(self.name)
        missing = [p for p in found.parts if p not in roots]
        if missing:
            raise InvalidArgumentError(
                f"{self.name} needs roots for {', '.join(found.parts)}; "
                f"missing {', '.join(missing)}"
            )
        per_part = {part: dict(found.options.get(part, {})) for part in found.parts}
        for key, value in options.items():
            part, _, option = key.partition(".")
            if option in found.options.get(part, {}):
                raise InvalidArgumentError(
                    f"{self.name} fixes {part} {option}="
                    f"{found.options[part][option]!r}; it cannot be changed"
                )
            per_part[part][option] = value
        scans = [_adapter(part).scan(roots[part], **per_part[part]) for part in found.parts]
        return DatasetScan(
            [s for p in scans for s in p.samples],
            [q for p in scans for q in p.problems],
            [c for p in scans for c in p.corrections],
        )


def _adapter(name: str):
    # imported lazily so that `import mer_prep.datasets` stays cheap
    if name in ADAPTERS:
        return importlib.import_module(f"mer_prep.datasets.{ADAPTERS[name]}")
    if name in COMPOSITES:
        return _CompositeAdapter(name)
    check_dataset(name)  # raises, naming the known ones
    raise AssertionError(name)  # pragma: no cover


def with_aus(scan: DatasetScan) -> DatasetScan:
    """The scan with every sample's ``aus`` parsed from its ``action_units`` (unparsable
    tokens noted in ``extra["aus_unparsed"]``, action descriptors in
    ``extra["au_descriptors"]``)."""
    from mer_prep.datasets.aus import parse_aus

    samples = []
    for sample in scan.samples:
        parsed = parse_aus(sample.action_units)
        extra = sample.extra
        if parsed.unparsed:
            extra += (("aus_unparsed", " ".join(parsed.unparsed)),)
        if parsed.descriptors:
            extra += (("au_descriptors", "+".join(parsed.descriptors)),)
        samples.append(replace(sample, aus=parsed.numbers, extra=extra))
    return DatasetScan(samples, list(scan.problems), list(scan.corrections))


def scan_dataset(
    name: str,
    root: Path | str | Mapping[str, Path | str],
    *,
    labels: str = "native",
    **options: Any,
) -> DatasetScan:
    """Scan dataset ``name`` under ``root`` and apply label scheme ``labels``.

    root: the dataset folder; for a composite (``megc2019``, ``cross6``, a registered one) a
    mapping ``part -> folder``.
    options: casme2 ``variant="raw"|"cropped"``; smic ``modality="HS"|"VIS"|"NIR"``; casme-sq
    ``kind="micro"|"macro"|"all"``, ``source="rawpic"|"rawvideo"``; casme3 ``part="A"|"C"``,
    ``layout="auto"|"takes"|"clips"``, ``max_duration_s=<seconds>``; 4dme, mmew ``fps=<rate>``;
    manifest ``prefix=<subject prefix>``;
    casme1 ``fixes=<yaml>``; every adapter but smic ``annotations=<file>`` (overrides the
    annotation file found under the root) and ``corrections=<file>`` (the user's corrections,
    ``mer_prep.datasets.corrections``). A composite other than megc2019 takes
    ``<part>.<option>=<value>``.
    """
    check_dataset(name)
    if (name in COMPOSITES) != isinstance(root, Mapping):
        raise InvalidArgumentError(
            f"{name} takes a mapping of roots, one per part"
            if name in COMPOSITES
            else f"{name} takes one root folder, not a mapping of roots"
        )
    check_options(name, options)
    scan = with_aus(_adapter(name).scan(root, **options))
    return apply_scheme(scan, labels)


def register_composite(
    name: str,
    parts: Sequence[CompositePart],
    *,
    description: str = "",
    expected: Mapping[str, int] | None = None,
    replace: bool = False,
) -> Composite:
    """Declare a composite of adapters (a user's, from ``mer-prep.toml``); returns it.

    parts: adapter names, or ``{name: {option: value}}`` to fix a part's options
    (``[{"casme3": {"part": "A"}}, "samm"]``). Each part must be an adapter (not a composite)
    and its fixed options valid for it; the name must not be an adapter's. Afterwards the name
    is a dataset like any other: ``scan_dataset(name, {part: root, ...})``, label schemes
    through its parts, and the ``lodo`` split over its datasets.
    """
    global DATASETS
    if name in ADAPTERS:
        raise InvalidArgumentError(f"{name!r} is an adapter; a composite needs a name of its own")
    if not name or "/" in name or "." in name:
        raise InvalidArgumentError(f"composite name {name!r} must be non-empty without '/' or '.'")
    for part in parts:
        part_name, fixed = (
            next(iter(part.items()))
            if isinstance(part, Mapping) and len(part) == 1
            else (part, None)
        )
        if isinstance(part_name, str) and part_name not in ADAPTERS:
            raise InvalidArgumentError(
                f"composite {name!r}: part {part_name!r} is not an adapter; "
                f"adapters: {', '.join(ADAPTERS)}"
            )
        if isinstance(part_name, str) and part_name == "megc2019":
            raise InvalidArgumentError(f"composite {name!r}: megc2019 is itself a composite")
        if fixed:
            check_options(part_name, dict(fixed))
    made = _register_composite(
        define_composite(name, parts, description=description, expected=expected),
        replace=replace,
    )
    if name not in DATASETS:
        DATASETS = (*DATASETS, name)
    return made


def unregister_composite(name: str) -> None:
    """Forget a composite registered at run time (a reloaded configuration; tests)."""
    global DATASETS
    _unregister_composite(name)
    DATASETS = tuple(d for d in DATASETS if d != name)


__all__ = [
    "ADAPTERS",
    "DATASETS",
    "dataset_names",
    "scan_dataset",
    "register_composite",
    "unregister_composite",
    "with_aus",
    "DatasetScan",
]
