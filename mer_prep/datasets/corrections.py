"""Annotation corrections as data: a file per dataset, applied on scan, reported, and refused
when the sheet no longer holds what the correction expects.

A correction names a sample by its id (never by a row number), one field of its annotation
row, the value the sheet holds (``old``), the value to use (``new``) and why::

    # <dataset>_corrections.yaml
    corrections:
      - {sample: casme1/sub09/EP01_2, field: onset, old: 34, new: 31, reason: "digits swapped"}

or the same as CSV with the header ``sample,field,old,new,reason``. Fields: ``onset``, ``apex``,
``offset``, ``emotion``, ``aus`` (the action-unit cell) and ``fps`` (where a sheet has one). An
empty ``old``/``new`` stands for a blank cell. A sample id without its dataset prefix gets it.

On scan, for the sample's row:

- the cell holds ``old``: it is replaced by ``new`` before the row is read (so a fixed onset
  also selects the right frames), noted on the sample (``Sample.extra`` ``"fix"``) and listed
  in ``DatasetScan.corrections`` as ``applied``;
- the cell already holds ``new`` (a corrected re-release of the sheet): left alone, listed as
  ``already``;
- anything else: ``AnnotationError`` naming the corrections file, its entry, the sample and the
  field. A new sheet version can therefore never make a fix land on the wrong value.

A correction whose sample no row produced is listed as ``unused`` (a partial copy of the
dataset, or a row that became a problem before it could be corrected).

The packaged file ``<module>_corrections.yaml`` next to an adapter is applied first; a user's
file (adapter option ``corrections=<file>``) after it, and may correct the same cells only if
the packaged file does not (one correction per sample and field in all).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from mer_prep.datasets._sheets import as_text, is_blank
from mer_prep.errors import AnnotationError

FIELDS: tuple[str, ...] = ("onset", "apex", "offset", "emotion", "aus", "fps")
STATUSES: tuple[str, ...] = ("applied", "already", "unused")
_HERE = Path(__file__).parent


@dataclass(frozen=True)
class _Stated:
    """What a correction states: the ``sample``'s ``field`` goes from ``old`` to ``new`` for
    ``reason``, as the corrections ``file`` says."""

    sample: str
    field: str
    old: Any
    new: Any
    reason: str
    file: str


@dataclass(frozen=True)
class Correction(_Stated):
    """One correction as its file states it; ``entry``: 1-based line of the entry in the file."""

    entry: int = 0


@dataclass(frozen=True)
class CorrectionRecord(_Stated):
    """What became of a correction in a scan: ``applied``, ``already`` (the sheet holds the new
    value) or ``unused`` (no row produced the sample); ``where``: the sheet row it met."""

    status: str
    where: str = ""

    def __str__(self) -> str:
        at = f" at {self.where}" if self.where else ""
        return (
            f"{self.sample} {self.field}: {_shown(self.old)} -> {_shown(self.new)} "
            f"[{self.status}]{at} ({self.reason or 'no reason given'}; {Path(self.file).name})"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            k: (v if isinstance(v, (int, float, str)) or v is None else str(v))
            for k, v in asdict(self).items()
        }


def _shown(value: Any) -> str:
    return "blank" if is_blank(value) else repr(value)


def same_value(cell: Any, expected: Any) -> bool:
    """True when a sheet ``cell`` holds ``expected``: blank equals blank, numbers compare as
    numbers (``12`` = ``12.0`` = ``"12"``), text compares exactly after stripping."""
    if is_blank(cell) or is_blank(expected):
        return is_blank(cell) and is_blank(expected)
    a, b = as_text(cell), as_text(expected)
    if a == b:
        return True
    number = re.compile(r"^-?\d+(?:\.\d+)?$")
    if number.match(a) and number.match(b):
        return float(a) == float(b)
    return False


def load_corrections(path: Path | str, *, dataset: str = "") -> list[Correction]:
    """The corrections of a YAML (``corrections:`` list) or CSV file; AnnotationError naming the
    file and entry for anything malformed (an unknown field, a missing sample, a duplicate)."""
    path = Path(path)
    if not path.is_file():
        raise AnnotationError("corrections file does not exist", file=str(path))
    entries = _csv_entries(path) if path.suffix.lower() == ".csv" else _yaml_entries(path)
    out: list[Correction] = []
    seen: dict[tuple[str, str], int] = {}
    for line, entry in entries:
        if not isinstance(entry, Mapping):
            raise AnnotationError(
                f"correction is not a mapping: {entry!r}", file=str(path), row=line
            )
        unknown = sorted(set(entry) - {"sample", "field", "old", "new", "reason"})
        if unknown:
            raise AnnotationError(
                f"correction has unknown key(s) {unknown}; keys: sample, field, old, new, reason",
                file=str(path),
                row=line,
            )
        sample = as_text(entry.get("sample"))
        field = as_text(entry.get("field")).lower()
        if not sample:
            raise AnnotationError("correction names no sample", file=str(path), row=line)
        if field not in FIELDS:
            raise AnnotationError(
                f"correction of {sample} names field {field or None!r}; fields: "
                f"{', '.join(FIELDS)}",
                file=str(path),
                row=line,
            )
        if "old" not in entry or "new" not in entry:
            raise AnnotationError(
                f"correction of {sample} {field} needs both old and new (empty for a blank cell)",
                file=str(path),
                row=line,
            )
        if dataset and not sample.startswith(f"{dataset}/"):
            sample = f"{dataset}/{sample}"
        key = (sample, field)
        if key in seen:
            raise AnnotationError(
                f"second correction of {sample} {field} (first at entry line {seen[key]})",
                file=str(path),
                row=line,
            )
        seen[key] = line
        out.append(
            Correction(
                sample,
                field,
                entry.get("old"),
                entry.get("new"),
                as_text(entry.get("reason")),
                str(path),
                line,
            )
        )
    return out


def _yaml_entries(path: Path) -> list[tuple[int, Any]]:
    text = path.read_text(encoding="utf-8")
    try:
        data = yaml.safe_load(text)
        node = yaml.compose(text)
    except yaml.YAMLError as exc:
        raise AnnotationError(f"corrections file is not YAML ({exc})", file=str(path)) from exc
    if data is None:
        return []
    items = data.get("corrections") if isinstance(data, Mapping) else data
    if items is None:
        return []
    if not isinstance(items, list):
        raise AnnotationError("`corrections` must be a list of entries", file=str(path))
    lines = [index + 1 for index in range(len(items))]
    if isinstance(node, yaml.MappingNode):  # line of each entry, for the errors
        for key, value in node.value:
            if key.value == "corrections" and isinstance(value, yaml.SequenceNode):
                lines = [item.start_mark.line + 1 for item in value.value]
    elif isinstance(node, yaml.SequenceNode):
        lines = [item.start_mark.line + 1 for item in node.value]
    return list(zip(lines, items, strict=True))


def _csv_entries(path: Path) -> list[tuple[int, dict[str, Any]]]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        rows = list(csv.reader(handle))
    content = [
        (i + 1, r)
        for i, r in enumerate(rows)
        if any(c.strip() for c in r) and not r[0].lstrip().startswith("#")
    ]
    if not content:
        return []
    (_, header), body = content[0], content[1:]
    names = [h.strip().lower() for h in header]
    if "sample" not in names or "field" not in names:
        raise AnnotationError(
            "corrections CSV needs a header sample,field,old,new,reason",
            file=str(path),
            row=content[0][0],
        )
    for line, cells in body:
        # a cell past the header is most often a value cut at an unquoted comma: refused, not
        # dropped (blank trailing cells, as spreadsheets export them, are fine)
        extra = [c for c in cells[len(names) :] if c.strip()]
        if extra:
            raise AnnotationError(
                f"correction row has {len(names) + len(extra)} cells but the header names "
                f"{len(names)} ({', '.join(names)}); quote a value that holds a comma",
                file=str(path),
                row=line,
            )
    # a short row leaves its last fields out (then missing)
    return [
        (line, {n: (c if c.strip() else None) for n, c in zip(names, cells, strict=False)})
        for line, cells in body
    ]


def packaged_file(module: str) -> Path:
    """``<module>_corrections.yaml`` beside the adapters (``casme3`` -> casme3_corrections.yaml)."""
    return _HERE / f"{module}_corrections.yaml"


class Corrector:
    """Applies one dataset's corrections to annotation rows and keeps what became of each."""

    def __init__(self, dataset: str, corrections: Iterable[Correction] = ()) -> None:
        self.dataset = dataset
        self._by_sample: dict[str, list[Correction]] = {}
        self._records: dict[tuple[str, str], CorrectionRecord] = {}
        for c in corrections:
            key = (c.sample, c.field)
            if key in self._records:
                first = self._records[key]
                raise AnnotationError(
                    f"{c.sample} {c.field} is corrected twice (also in {first.file})",
                    file=c.file,
                    row=c.entry,
                )
            self._by_sample.setdefault(c.sample, []).append(c)
            self._records[key] = CorrectionRecord(
                c.sample, c.field, c.old, c.new, c.reason, c.file, "unused"
            )

    @classmethod
    def for_dataset(
        cls,
        dataset: str,
        module: str | None = None,
        user: Path | str | Iterable[Path | str] | None = None,
    ) -> Corrector:
        """The packaged corrections of ``dataset`` (file named after ``module``, default the
        dataset) plus the user's file(s)."""
        files: list[Path] = []
        packaged = packaged_file(module or dataset)
        if packaged.is_file():
            files.append(packaged)
        if user is not None:
            files += [Path(user)] if isinstance(user, (str, Path)) else [Path(u) for u in user]
        return cls(dataset, [c for f in files for c in load_corrections(f, dataset=dataset)])

    def __bool__(self) -> bool:
        return bool(self._by_sample)

    def fields(self, sample_id: str) -> set[str]:
        return {c.field for c in self._by_sample.get(sample_id, ())}

    def apply(
        self, sample_id: str, values: Mapping[str, Any], where: str
    ) -> tuple[dict[str, Any], tuple[str, ...]]:
        """(``values`` with this sample's corrections applied, notes for ``Sample.extra``).

        ``values``: the row's cells by field name. AnnotationError when a cell holds neither the
        correction's old nor its new value.
        """
        out = dict(values)
        notes: list[str] = []
        for c in self._by_sample.get(sample_id, ()):
            cell = out.get(c.field)
            if same_value(cell, c.old):
                out[c.field] = c.new
                status = "applied"
                notes.append(
                    f"{c.field} {_shown(cell)} -> {_shown(c.new)} (correction: "
                    f"{c.reason or 'listed'}; {Path(c.file).name})"
                )
            elif same_value(cell, c.new):
                status = "already"
            else:
                raise AnnotationError(
                    f"correction of sample {sample_id} field {c.field} expects the old value "
                    f"{_shown(c.old)} but {where} holds {_shown(cell)}: the sheet is not the "
                    f"version this correction was written for; check the row and update or remove "
                    f"the correction",
                    file=c.file,
                    row=c.entry,
                )
            self._records[(c.sample, c.field)] = replace(
                self._records[(c.sample, c.field)], status=status, where=where
            )
        return out, tuple(notes)

    def records(self) -> list[CorrectionRecord]:
        """Every correction with what became of it, in file order."""
        return list(self._records.values())


def no_corrections(dataset: str) -> Corrector:
    return Corrector(dataset)


__all__ = [
    "FIELDS",
    "Correction",
    "CorrectionRecord",
    "Corrector",
    "load_corrections",
    "packaged_file",
    "same_value",
]
