"""The run records' errors, in a module of their own: the CLI names them before it loads the
storage runtime (``run_branch`` imports icechunk, which a name check must not wait for)."""

from __future__ import annotations

from mer_prep.errors import CorruptDataError, StoreError


class RunRecordError(StoreError):
    """A run record cannot be written or read back (no such run, a failed commit)."""


class CorruptRunRecordError(RunRecordError, CorruptDataError):
    """A run record reads back other than it was written (a flipped bit in its attributes,
    arrays, or the repository's metadata): its digests do not match, or it does not decode."""
