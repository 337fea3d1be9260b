"""Label schemes (``schemes.yaml``): map each sample's native emotion to a class, or drop it.

    apply_scheme(scan, "megc3") -> DatasetScan   # labels set, dropped classes removed,
                                                 # unknown emotions turned into Problems
    class_names("megc3", "casme2") -> ["negative", "positive", "surprise"]
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

from mer_prep.errors import InvalidArgumentError, UnknownLabelSchemeError
from mer_prep.sample import DatasetScan, Problem, Sample

SCHEMES_FILE = Path(__file__).with_name("schemes.yaml")
COMPOSITES: dict[str, tuple[str, ...]] = {"megc2019": ("smic", "casme2", "samm")}


@dataclass(frozen=True)
class DatasetRule:
    """How one scheme treats one dataset: key field, native -> class map, dropped natives."""

    mapping: dict[str, str]
    drop: frozenset[str]
    field: str = "emotion"


@dataclass(frozen=True)
class Scheme:
    name: str
    classes: tuple[str, ...]
    rules: dict[str, DatasetRule]
    description: str = ""


@lru_cache(maxsize=None)
def _load(path: str) -> dict[str, Scheme]:
    data = yaml.safe_load(Path(path).read_text())
    schemes = {}
    for name, body in data.items():
        rules = {
            dataset: DatasetRule(mapping={str(k).lower(): str(v) for k, v in (rule.get("map") or {}).items()},
                                 drop=frozenset(str(d).lower() for d in rule.get("drop") or ()),
                                 field=rule.get("field", "emotion"))
            for dataset, rule in body["datasets"].items()
        }
        declared = body.get("classes") or dict.fromkeys(v for r in rules.values() for v in r.mapping.values())
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
        raise UnknownLabelSchemeError(f"unknown label scheme {name!r}; known: {', '.join(sorted(known))}")
    return known[name]


def _rule(scheme: Scheme, dataset: str) -> DatasetRule:
    if dataset not in scheme.rules:
        raise InvalidArgumentError(f"label scheme {scheme.name!r} does not cover dataset {dataset!r}")
    return scheme.rules[dataset]


def class_names(scheme: str, dataset: str) -> list[str]:
    """The classes ``dataset`` (or composite) can take under ``scheme``, in the scheme's order."""
    found = get_scheme(scheme)
    parts = COMPOSITES.get(dataset, (dataset,))
    reachable = {v for part in parts for v in _rule(found, part).mapping.values()}
    return [c for c in found.classes if c in reachable]


def label_of(sample: Sample, scheme: Scheme) -> tuple[str | None, bool]:
    """(class, dropped) for one sample; (None, False) when its key is unknown to the scheme."""
    rule = _rule(scheme, sample.dataset)
    key = sample.emotion if rule.field == "emotion" else dict(sample.extra).get(rule.field, "")
    key = key.strip().lower()
    if key in rule.mapping:
        return rule.mapping[key], False
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
            problems.append(Problem(sample.sample_id, sample.source or sample.clip,
                                    f"unknown {field} label {value!r} for scheme {scheme!r}"))
    return DatasetScan(samples, problems)


__all__ = ["apply_scheme", "class_names", "get_scheme", "label_of", "schemes", "Scheme", "DatasetRule"]
