"""Reading annotation spreadsheets: raw rows, header rows found by column names, cell parsing.

Row numbers are 1-based spreadsheet rows, as a person sees them in Excel, so a Problem or an
AnnotationError can point at the exact row.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mer_prep.errors import AnnotationError

HEADER_SEARCH_ROWS = 60


@dataclass(frozen=True)
class SheetRow:
    """One data row: its spreadsheet row number and its cells keyed by field name."""

    row: int
    values: dict[str, Any]


def _load(path: Path):
    import openpyxl  # local: reading a dataset is the only place it is needed

    try:
        # data_only: cells holding formulas (Duration = Offset - Onset) give their cached value
        return openpyxl.load_workbook(path, data_only=True)
    except Exception as exc:  # openpyxl raises many types for corrupt or non-xlsx files
        raise AnnotationError(f"cannot read spreadsheet ({type(exc).__name__}: {exc})", file=str(path)) from exc


def read_workbook(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """All sheets of an .xlsx file: sheet name -> rows of cell values (row 1 first)."""
    book = _load(path)
    try:
        return {ws.title: [tuple(r) for r in ws.iter_rows(values_only=True)] for ws in book.worksheets}
    finally:
        book.close()


def normalise_name(value: Any) -> str:
    """Column-name key: lower case, letters and digits only (``"Onset Frame"`` -> ``onsetframe``)."""
    return re.sub(r"[^a-z0-9]", "", str(value).lower()) if value is not None else ""


def _match_columns(cells: Sequence[Any], aliases: Mapping[str, Sequence[str]]) -> dict[str, int]:
    keys = [normalise_name(c) for c in cells]
    found: dict[str, int] = {}
    for field, names in aliases.items():
        wanted = [normalise_name(n) for n in names]
        for name in wanted:  # alias order is preference order
            if name in keys:
                found[field] = keys.index(name)
                break
    return found


def table_rows(
    rows: list[tuple[Any, ...]],
    required: Mapping[str, Sequence[str]],
    optional: Mapping[str, Sequence[str]],
    *,
    file: Path,
) -> list[SheetRow]:
    """Find the header row by its column names and return the non-blank data rows below it.

    ``required`` / ``optional`` map a field name to accepted column spellings. Raises
    AnnotationError (naming file and row) when no row holds all required columns.
    """
    best: tuple[int, dict[str, int]] | None = None
    for index, cells in enumerate(rows[:HEADER_SEARCH_ROWS]):
        found = _match_columns(cells, required)
        if len(found) == len(required):
            columns = {**_match_columns(cells, optional), **found}
            return _data_rows(rows, index, columns)
        if found and (best is None or len(found) > len(best[1])):
            best = (index, found)
    if best is not None and len(best[1]) >= 2:
        missing = sorted(set(required) - set(best[1]))
        raise AnnotationError(f"header row lacks required column(s) {missing}", file=str(file), row=best[0] + 1)
    names = [spellings[0] for spellings in required.values()]
    raise AnnotationError(f"no header row with columns {names} in the first {HEADER_SEARCH_ROWS} rows",
                          file=str(file))


def _data_rows(rows: list[tuple[Any, ...]], header: int, columns: dict[str, int]) -> list[SheetRow]:
    out: list[SheetRow] = []
    for index in range(header + 1, len(rows)):
        cells = rows[index]
        values = {f: (cells[i] if i < len(cells) else None) for f, i in columns.items()}
        if all(is_blank(v) for v in values.values()):
            continue
        out.append(SheetRow(row=index + 1, values=values))
    return out


def is_blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def as_text(value: Any) -> str:
    """Cell as stripped text; floats that are whole numbers lose their ``.0``."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


_MISSING_SPELLINGS = {"", "/", "-", "n/a", "na", "none", "nan"}


def as_frame(value: Any, *, field: str, missing: Sequence[int] = ()) -> int | None:
    """Parse a frame-number cell; None for blank, ``/``, ``n/a`` or a value in ``missing`` (-1).

    Raises ValueError with a readable message for anything else that is not a whole number.
    """
    if isinstance(value, bool):
        raise ValueError(f"{field} {value!r} is not a frame number")
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not value.is_integer():
            raise ValueError(f"{field} {value!r} is not a whole frame number")
        number = int(value)
    else:
        text = as_text(value)
        if text.lower() in _MISSING_SPELLINGS:
            return None
        if not re.fullmatch(r"-?\d+(\.0+)?", text):
            raise ValueError(f"{field} {text!r} is not a frame number")
        number = int(float(text))
    return None if number in missing else number
