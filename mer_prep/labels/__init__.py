"""Label schemes (``schemes.yaml``): map each sample's native emotion to a class, or drop it.

    apply_scheme(scan, "megc3") -> DatasetScan   # labels set, dropped classes removed,
                                                 # unknown emotions turned into Problems
    class_names("megc3", "casme2") -> ["negative", "positive", "surprise"]

Composites (``composites.yaml``: several datasets scanned together, ``megc2019``, ``cross6``) and
action-unit sets (``au_sets.yaml``: ``cross12``) are data here too; ``register_composite`` adds
a composite at run time (a user's, declared in ``mer-prep.toml``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from mer_prep.errors import InvalidArgumentError, UnknownLabelSchemeError, UnknownNameError
from mer_prep.sample import DatasetScan, Problem, Sample

SCHEMES_FILE = Path(__file__).with_name("schemes.yaml")
COMPOSITES_FILE = Path(__file__).with_name("composites.yaml")
AU_SETS_FILE = Path(__file__).with_name("au_sets.yaml")
#: one part of a composite: an adapter name, or ``{name: {option: value}}`` fixing its options
CompositePart = str | Mapping[str, Mapping[str, Any] | None]


@dataclass(frozen=True)
class Composite:
    """A composite dataset: its parts (adapter names, in order), the adapter options each part
    is scanned with (``{"casme3": {"part": "A"}}``), and the published per-part sample counts."""

    name: str
    parts: tuple[str, ...]
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    description: str = ""
    expected: dict[str, int] = field(default_factory=dict)


def define_composite(
    name: str,
    parts: Sequence[CompositePart],
    *,
    description: str = "",
    expected: Mapping[str, int] | None = None,
) -> Composite:
    """Composite ``name`` made of ``parts`` (dataset names, or ``{name: {option: value}}`` to fix
    a part's adapter options), checked: each part once, at least one, ``expected`` counts only
    for parts."""
    names: list[str] = []
    options: dict[str, dict[str, Any]] = {}
    for part in parts:
        if isinstance(part, Mapping):
            if len(part) != 1:
                raise InvalidArgumentError(
                    f"composite {name!r}: a part is a dataset name or "
                    f"{{name: {{option: value}}}}, got {dict(part)!r}"
                )
            ((part_name, fixed),) = part.items()
            options[str(part_name)] = dict(fixed or {})
            part_name = str(part_name)
        else:
            part_name = str(part)
        if part_name in names:
            raise InvalidArgumentError(f"composite {name!r} names part {part_name!r} twice")
        names.append(part_name)
    if not names:
        raise InvalidArgumentError(f"composite {name!r} has no parts")
    unknown = sorted(set(expected or {}) - set(names))
    if unknown:
        raise InvalidArgumentError(
            f"composite {name!r}: expected counts for {unknown}, which are not parts"
        )
    return Composite(
        name,
        tuple(names),
        options,
        description,
        {str(k): int(v) for k, v in (expected or {}).items()},
    )


def _load_composites(path: Path) -> dict[str, Composite]:
    data = yaml.safe_load(path.read_text()) or {}
    return {
        name: define_composite(
            name,
            body["parts"],
            description=body.get("description", ""),
            expected=body.get("expected"),
        )
        for name, body in data.items()
    }


_COMPOSITES: dict[str, Composite] = _load_composites(COMPOSITES_FILE)
#: composite name -> its parts; the same dict object for the whole run (register_composite
#: adds to it), so modules holding it see registered composites too.
COMPOSITES: dict[str, tuple[str, ...]] = {name: c.parts for name, c in _COMPOSITES.items()}


def composite(name: str) -> Composite:
    """The composite ``name``; UnknownNameError listing the known ones."""
    if name not in _COMPOSITES:
        raise UnknownNameError(
            f"unknown composite {name!r}; known: {', '.join(sorted(_COMPOSITES))}"
        )
    return _COMPOSITES[name]


def register_composite(made: Composite, *, replace: bool = False) -> Composite:
    """Declare the composite ``made`` (``define_composite``'s). Refuses to redefine an existing
    composite differently unless ``replace``; registering the same definition twice is
    harmless. Part names are checked against the adapters by
    ``mer_prep.datasets.register_composite``, which is what callers use."""
    name = made.name
    old = _COMPOSITES.get(name)
    if old is not None and not replace and (old.parts, old.options) != (made.parts, made.options):
        raise InvalidArgumentError(
            f"composite {name!r} already exists with parts {', '.join(old.parts)}"
        )
    _COMPOSITES[name] = made
    COMPOSITES[name] = made.parts
    return made


def unregister_composite(name: str) -> None:
    """Forget a composite registered at run time (those of composites.yaml stay)."""
    if name in _load_composites(COMPOSITES_FILE):
        raise InvalidArgumentError(f"{name!r} is a built-in composite")
    _COMPOSITES.pop(name, None)
    COMPOSITES.pop(name, None)


@cache
def _au_sets(path: str) -> dict[str, tuple[int, ...]]:
    data = yaml.safe_load(Path(path).read_text()) or {}
    return {name: tuple(int(a) for a in body["aus"]) for name, body in data.items()}


def au_set(name: str, path: Path | str = AU_SETS_FILE) -> tuple[int, ...]:
    """The AU numbers of AU set ``name`` (``cross12``), in column order."""
    known = _au_sets(str(path))
    if name not in known:
        raise UnknownNameError(f"unknown AU set {name!r}; known: {', '.join(sorted(known))}")
    return known[name]


def au_sets(path: Path | str = AU_SETS_FILE) -> dict[str, tuple[int, ...]]:
    """Every AU set, by name."""
    return dict(_au_sets(str(path)))


@dataclass(frozen=True)
class DatasetRule:
    """How one scheme treats one dataset: key field, native -> class map, dropped natives."""

    mapping: dict[str, str]
    drop: frozenset[str]
    field: str = "emotion"
    identity: bool = False  # every label is its own class, lower-cased (a lab's manifest)


@dataclass(frozen=True)
class Scheme:
    name: str
    classes: tuple[str, ...]
    rules: dict[str, DatasetRule]
    description: str = ""


@cache
def _load(path: str) -> dict[str, Scheme]:
    data = yaml.safe_load(Path(path).read_text())
    schemes = {}
    for name, body in data.items():
        rules = {
            dataset: DatasetRule(
                mapping={str(k).lower(): str(v) for k, v in (rule.get("map") or {}).items()},
                drop=frozenset(str(d).lower() for d in rule.get("drop") or ()),
                field=rule.get("field", "emotion"),
                identity=bool(rule.get("identity", False)),
            )
            for dataset, rule in body["datasets"].items()
        }
        declared = body.get("classes") or dict.fromkeys(
            v for r in rules.values() for v in r.mapping.values()
        )
        classes = tuple(declared)
        schemes[name] = Scheme(name, classes, rules, body.get("description", ""))
    return schemes


def schemes(path: Path | str = SCHEMES_FILE) -> dict[str, Scheme]:
    """Every scheme of a schemes YAML, by name."""
    return _load(str(path))


def get_scheme(name: str, path: Path | str = SCHEMES_FILE) -> Scheme:
    """One scheme by name; KeyError listing the known names."""
    known = schemes(path)
    if name not in known:
        raise UnknownLabelSchemeError(
            f"unknown label scheme {name!r}; known: {', '.join(sorted(known))}"
        )
    return known[name]


def _rule(scheme: Scheme, dataset: str) -> DatasetRule:
    if dataset not in scheme.rules:
        raise InvalidArgumentError(
            f"label scheme {scheme.name!r} does not cover dataset {dataset!r}"
        )
    return scheme.rules[dataset]


def class_names(scheme: str, dataset: str) -> list[str]:
    """The classes ``dataset`` (or composite) can take under ``scheme``, in the scheme's order;
    [] when a part takes its labels as classes (``identity``: a manifest), whose classes are
    then the labels present."""
    found = get_scheme(scheme)
    parts = COMPOSITES.get(dataset, (dataset,))
    if any(_rule(found, part).identity for part in parts):
        return []
    reachable = {v for part in parts for v in _rule(found, part).mapping.values()}
    return [c for c in found.classes if c in reachable]


def classes_of(scheme: str, dataset: str, samples: Iterable[Sample]) -> list[str]:
    """The classes of ``samples`` of ``dataset`` labelled under ``scheme``: ``class_names``, or
    where that is [] (a part taking its labels as classes) the labels present, sorted."""
    return class_names(scheme, dataset) or sorted({s.label for s in samples if s.label})


def label_of(sample: Sample, scheme: Scheme) -> tuple[str | None, bool]:
    """(class, dropped) for one sample; (None, False) when its key is unknown to the scheme."""
    rule = _rule(scheme, sample.dataset)
    key = sample.emotion if rule.field == "emotion" else dict(sample.extra).get(rule.field, "")
    key = key.strip().lower()
    if key in rule.mapping:
        return rule.mapping[key], False
    if rule.identity and key and key not in rule.drop:
        return key, False
    return None, key in rule.drop


def apply_scheme(scan: DatasetScan, scheme: str) -> DatasetScan:
    """A new scan whose samples carry their class under ``scheme``.

    Dropped classes leave silently; an unknown emotion becomes a Problem naming the sample's
    source (file and row) and the sample is left out. Existing problems are kept.
    """
    found = get_scheme(scheme)
    samples: list[Sample] = []
    problems = list(scan.problems)
    for sample in scan.samples:
        label, dropped = label_of(sample, found)
        if label is not None:
            samples.append(sample.with_label(label))
        elif not dropped:
            field = _rule(found, sample.dataset).field
            value = sample.emotion if field == "emotion" else dict(sample.extra).get(field, "")
            problems.append(
                Problem(
                    sample.sample_id,
                    sample.source or sample.clip,
                    f"unknown {field} label {value!r} for scheme {scheme!r}",
                )
            )
    return DatasetScan(samples, problems, list(scan.corrections))


__all__ = [
    "apply_scheme",
    "class_names",
    "classes_of",
    "get_scheme",
    "label_of",
    "schemes",
    "Scheme",
    "DatasetRule",
    "COMPOSITES",
    "Composite",
    "CompositePart",
    "composite",
    "define_composite",
    "register_composite",
    "unregister_composite",
    "au_set",
    "au_sets",
]
