"""Plain-text and markdown tables of already formatted cells, for the leaderboards.

print(aligned_table(("rank", "model"), [{"rank": "1", "model": "ststnet"}]))
print(pipe_table(("rank", "model"), rows))      # to paste into a paper's draft
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import pandas as pd


def aligned_table(columns: Sequence[str], rows: Sequence[Mapping[str, str]]) -> str:
    """``columns`` as a header line, then one line per row, each column padded to its widest
    cell (two spaces between columns, trailing spaces stripped)."""
    widths = {c: max([len(c)] + [len(row[c]) for row in rows]) for c in columns}
    lines = ["  ".join(f"{c:<{widths[c]}}" for c in columns).rstrip()]
    lines += ["  ".join(f"{row[c]:<{widths[c]}}" for c in columns).rstrip() for row in rows]
    return "\n".join(lines)


def pipe_table(columns: Sequence[str], rows: Sequence[Mapping[str, str]]) -> str:
    """A markdown pipe table (a ``|`` inside a cell escaped)."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(row[c].replace("|", "\\|") for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def csv_text(records: Sequence[Mapping[str, object]], columns: Sequence[str]) -> str:
    """``records`` (one mapping per row) as CSV under ``columns``, numbers to 4 decimals
    (``pandas.read_csv`` reads it back)."""
    out = io.StringIO()
    frame = pd.DataFrame(list(records), columns=list(columns))
    frame.to_csv(out, index=False, float_format="%.4f")
    return out.getvalue()
