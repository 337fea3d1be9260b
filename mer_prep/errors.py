"""Errors that name the file, the sample and the problem (SPEC §7)."""

from __future__ import annotations


class MerPrepError(Exception):
    """Base class for every error mer-prep raises on bad input."""


class SampleError(MerPrepError):
    """A single sample cannot be processed; the run records it and goes on."""

    def __init__(self, problem: str, *, file: str = "", sample: str = "") -> None:
        self.problem = problem
        self.file = str(file)
        self.sample = sample
        where = ", ".join(p for p in (f"file {self.file}" if self.file else "",
                                       f"sample {sample}" if sample else "") if p)
        super().__init__(f"{where}: {problem}" if where else problem)


class FrameReadError(SampleError):
    """A frame file is missing, unreadable or truncated."""


class NoFaceError(SampleError):
    """No face was found on the detection frame."""


class AnnotationError(MerPrepError):
    """An annotation file cannot be read at all (wrong columns, no header found)."""

    def __init__(self, problem: str, *, file: str, row: int | None = None) -> None:
        self.problem = problem
        self.file = str(file)
        self.row = row
        where = f"{file}" + (f", row {row}" if row is not None else "")
        super().__init__(f"{where}: {problem}")
