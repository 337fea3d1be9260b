"""Helpers for the dataset tests: tiny synthetic clips and in-place spreadsheet edits."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import openpyxl

from mer_prep.synth.layouts import SynthClip, WrittenClip

_RNG = np.random.default_rng(0)
FRAMES = _RNG.integers(0, 255, size=(12, 8, 8, 3), dtype=np.uint8)


def clip(
    subject: int,
    emotion: str,
    *,
    n: int = 6,
    onset: int = 1,
    apex: int | None = 3,
    offset: int = 4,
    **kw: Any,
) -> SynthClip:
    """An 8x8 clip of ``n`` frames with the given 0-based timing."""
    return SynthClip(
        subject=subject,
        emotion=emotion,
        frames=FRAMES[:n],
        onset=onset,
        apex=apex,
        offset=offset,
        **kw,
    )


def set_cell(xlsx: Path, match: str, column: str | int, value: Any, sheet: int = 0) -> int:
    """Set ``column`` (header name, or 1-based index) of the row holding ``match``; returns the
    row."""
    book = openpyxl.load_workbook(xlsx)
    ws = book.worksheets[sheet]
    rows = list(ws.iter_rows())
    if isinstance(column, str):
        header = next(r for r in rows if any(c.value == column for c in r))
        column = next(c.column for c in header if c.value == column)
    target = next(r for r in rows if any(c.value == match for c in r))
    ws.cell(row=target[0].row, column=column).value = value  # cell(value=None) would not clear it
    book.save(xlsx)
    return target[0].row


def by_id(items) -> dict[str, Any]:
    return {item.sample_id: item for item in items}


def assert_scan_matches(scan, written: list[WrittenClip], *, videos: bool = False) -> None:
    """Every written clip comes back with the same frames and timing, and nothing else does.
    With ``videos``, a clip read from a video file (``video_path``, no frame files) numbers the
    frames of its onset-offset span instead."""
    samples = by_id(scan.samples)
    assert sorted(samples) == sorted(w.sample_id for w in written)
    for w in written:
        s = samples[w.sample_id]
        assert s.frame_paths == w.frame_paths
        assert (s.onset, s.apex, s.offset) == (w.onset, w.apex, w.offset)
        if videos and s.video_path:
            assert s.frame_numbers == tuple(range(s.onset, s.offset + 1))
        else:
            assert len(s.frame_numbers) == len(s.frame_paths)


def assert_clean_scan(scan, written: list[WrittenClip], *, videos: bool = False) -> dict[str, Any]:
    """``scan`` found no problem and matches ``written`` (``assert_scan_matches``); its samples
    by id."""
    assert scan.problems == []
    assert_scan_matches(scan, written, videos=videos)
    return by_id(scan.samples)
