"""Reading annotation spreadsheets: raw rows, header rows found by column names, cell parsing.

Row numbers are 1-based spreadsheet rows, as a person sees them in Excel, so a Problem or an
AnnotationError can point at the exact row. A merged range's value applies to every cell it spans
(openpyxl hands out None for all but its top-left cell); the annotation table is found by its
header on whichever sheet holds it; a non-blank row that cannot be read is kept with the reason,
so that it becomes a Problem instead of vanishing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mer_prep.errors import AnnotationError

HEADER_SEARCH_ROWS = 60
TIMING_FIELDS: tuple[str, ...] = ("onset", "apex", "offset")


def frame_columns(*forms: str, fields: Sequence[str] = TIMING_FIELDS) -> dict[str, tuple[str, ...]]:
    """``field -> spellings`` of the frame-number columns ``fields``, each spelt by ``forms`` in
    preference order: ``{Name}`` stands for the capitalised field name, ``{name}`` for the name
    itself (``frame_columns("{Name}Frame", "{Name}")`` -> ``{"onset": ("OnsetFrame", "Onset"),
    "apex": ...}``). The first spelling is the one an error message names."""
    return {f: tuple(form.format(Name=f.capitalize(), name=f) for form in forms) for f in fields}


#: the frame columns of sheets whose bare names come first (``Onset`` before ``OnsetFrame``)
BARE_FIRST: tuple[str, ...] = ("{Name}", "{Name}Frame", "{Name} Frame")
# The clip columns as CASME II-style sheets spell them (MMEW's and DFME's follow them), in
# preference order: an adapter's REQUIRED table starts with these and adds its own fields.
CLIP_COLUMNS: dict[str, tuple[str, ...]] = {
    "subject": ("Subject",),
    "filename": ("Filename", "File name"),
    **frame_columns("{Name}Frame", "{Name} Frame", "{Name}"),
}


@dataclass(frozen=True)
class SheetRow:
    """One data row: its spreadsheet row number and its cells keyed by field name."""

    row: int
    values: dict[str, Any]
    problem: str = ""  # why a non-blank row cannot be read; "" when it can


def _load(path: Path):
    import openpyxl  # local: reading a dataset is the only place it is needed

    try:
        # data_only: cells holding formulas (Duration = Offset - Onset) give their cached value
        return openpyxl.load_workbook(path, data_only=True)
    except Exception as exc:  # openpyxl raises many types for corrupt or non-xlsx files
        raise AnnotationError(
            f"cannot read spreadsheet ({type(exc).__name__}: {exc})", file=str(path)
        ) from exc


def read_workbook(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """All sheets of an .xlsx file: sheet name -> rows of cell values (row 1, column A first).

    Every cell of a merged range holds the range's value, as a person sees it in Excel: a
    Subject merged over a subject's rows applies to each of them.
    """
    book = _load(path)
    try:
        return {ws.title: _sheet_rows(ws) for ws in book.worksheets}
    finally:
        book.close()


def _sheet_rows(ws) -> list[tuple[Any, ...]]:
    rows = [list(r) for r in ws.iter_rows(values_only=True)]  # starts at A1
    for merged in ws.merged_cells.ranges:
        top, left = merged.min_row - 1, merged.min_col - 1
        if top >= len(rows) or left >= len(rows[top]):
            continue
        value = rows[top][left]  # openpyxl keeps the value in the top-left cell only
        for row in rows[top : merged.max_row]:
            row[left : merged.max_col] = [value] * len(row[left : merged.max_col])
    return [tuple(r) for r in rows]


def normalise_name(value: Any) -> str:
    """Column-name key: lower case, letters and digits only (``"Onset Frame"`` ->
    ``onsetframe``)."""
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
    header, columns, best = _find_header(rows, required, optional)
    if header is None:
        raise _header_error(best, required, file=file)
    return _data_rows(rows, header, columns)


def find_table(
    sheets: Mapping[str, list[tuple[Any, ...]]],
    required: Mapping[str, Sequence[str]],
    optional: Mapping[str, Sequence[str]],
    *,
    file: Path,
) -> tuple[str, list[SheetRow]]:
    """The data rows of the first sheet whose rows hold the required header, as table_rows.

    A notes or read-me sheet in front of the annotation sheet is passed over. Returns (sheet
    label, rows): the label is the sheet's title, or ``""`` when it is the workbook's first
    sheet (a row number alone then points at the right place). When no sheet holds the whole
    header, the AnnotationError names the sheet and row holding most of it.
    """
    best: tuple[str, tuple[int, dict[str, int]]] | None = None  # (sheet, its fullest row)
    for position, (title, rows) in enumerate(sheets.items()):
        header, columns, partial = _find_header(rows, required, optional)
        if header is not None:
            return ("" if position == 0 else title), _data_rows(rows, header, columns)
        if partial is not None and (best is None or len(partial[1]) > len(best[1][1])):
            best = (title, partial)
    several = len(sheets) > 1
    where = f" of any sheet ({', '.join(repr(t) for t in sheets)})" if several else ""
    raise _header_error(
        best[1] if best else None,
        required,
        file=file,
        sheet=best[0] if best and several else "",
        where=where,
    )


def _find_header(
    rows: list[tuple[Any, ...]],
    required: Mapping[str, Sequence[str]],
    optional: Mapping[str, Sequence[str]],
) -> tuple[int | None, dict[str, int], tuple[int, dict[str, int]] | None]:
    """(header index, field -> column) when a row holds every required column; else
    (None, {}, the row holding most of them)."""
    best: tuple[int, dict[str, int]] | None = None
    for index, cells in enumerate(rows[:HEADER_SEARCH_ROWS]):
        found = _match_columns(cells, required)
        if len(found) == len(required):
            return index, {**_match_columns(cells, optional), **found}, None
        if found and (best is None or len(found) > len(best[1])):
            best = (index, found)
    return None, {}, best


def _header_error(
    best: tuple[int, dict[str, int]] | None,
    required: Mapping[str, Sequence[str]],
    *,
    file: Path,
    sheet: str = "",
    where: str = "",
) -> AnnotationError:
    if best is not None and len(best[1]) >= 2:
        missing = sorted(set(required) - set(best[1]))
        in_sheet = f"sheet {sheet!r}: " if sheet else ""
        return AnnotationError(
            f"{in_sheet}header row lacks required column(s) {missing}",
            file=str(file),
            row=best[0] + 1,
        )
    names = [spellings[0] for spellings in required.values()]
    return AnnotationError(
        f"no header row with columns {names} in the first {HEADER_SEARCH_ROWS} rows{where}",
        file=str(file),
    )


def _data_rows(rows: list[tuple[Any, ...]], header: int, columns: dict[str, int]) -> list[SheetRow]:
    """Every row below the header with a value in it; one whose annotation columns are all
    blank carries the reason it cannot be read (its values sit in columns nobody reads)."""
    out: list[SheetRow] = []
    for index in range(header + 1, len(rows)):
        cells = rows[index]
        values = {f: (cells[i] if i < len(cells) else None) for f, i in columns.items()}
        if all(is_blank(v) for v in values.values()):
            stray = [(i, c) for i, c in enumerate(cells) if not is_blank(c)]
            if stray:
                out.append(
                    SheetRow(
                        row=index + 1, values=values, problem=_unread_reason(rows[header], stray)
                    )
                )
            continue
        out.append(SheetRow(row=index + 1, values=values))
    return out


def _unread_reason(header: tuple[Any, ...], stray: list[tuple[int, Any]]) -> str:
    shown = ", ".join(
        f"{as_text(v)!r} in column {column_letter(i)}"
        + (f" ({as_text(header[i])})" if i < len(header) and not is_blank(header[i]) else "")
        for i, v in stray[:3]
    )
    more = f" and {len(stray) - 3} more" if len(stray) > 3 else ""
    return f"row not read: no value in any annotation column, but it holds {shown}{more}"


def column_letter(index: int) -> str:
    """Spreadsheet column name of a 0-based column index (0 -> ``A``, 26 -> ``AA``)."""
    name, number = "", index + 1
    while number:
        number, rest = divmod(number - 1, 26)
        name = chr(ord("A") + rest) + name
    return name


def is_blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def as_text(value: Any) -> str:
    """Cell as stripped text; floats that are whole numbers lose their ``.0``."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def fps_reader(column: str):
    """``read(values)`` -> the row's ``fps`` cell as a positive frame rate (float); a
    ValueError naming ``column`` (the sheet's spelling) when it is blank, not a number or not
    positive. For ``scan_rows(fps=...)`` of sheets with a frame rate per row."""

    def read(values: dict[str, Any]) -> float:
        text = as_text(values.get("fps"))
        try:
            fps = float(text)
        except ValueError:
            raise ValueError(f"{column} {text or 'blank'!r} is not a frame rate") from None
        if not fps > 0:
            raise ValueError(f"{column} {text!r} is not a positive frame rate")
        return fps

    return read


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
