"""The one error tree of mer-prep: every error the project raises derives from ``MerPrepError``.

Each error names the file, the sample and the problem where there is one. The CLI prints
``str(error)`` as one line and exits with the class's ``exit_code``:

====  ==========================================================================================
code  meaning
====  ==========================================================================================
0     success
1     the command ran and its answer is "no": nothing could be processed, an audit found a leak
2     bad usage: an unknown dataset, recipe, label scheme or option, a missing root, a bad config
3     the store: none at that location, no such version or split, a conflicting run, a layout
      that does not match the schema
4     the environment: a missing server, model file or optional extra
70    an unexpected internal error (a bug: run again with ``--debug`` and report the traceback)
130   the run was cancelled (Ctrl-C, SIGTERM); the store still holds its previous version
141   the output was closed before the command finished (``mer-prep info STORE | head``): it
      stops quietly, as a tool killed by SIGPIPE does (128 + 13)
====  ==========================================================================================

Errors that stand for a Python built-in condition also derive from that built-in (an unknown
name is a ``LookupError``, a bad value a ``ValueError``, a missing store a ``FileNotFoundError``)
so that code catching the built-in keeps working.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_NO = 1
EXIT_USAGE = 2
EXIT_STORE = 3
EXIT_ENVIRONMENT = 4
EXIT_INTERNAL = 70
EXIT_CANCELLED = 130
EXIT_BROKEN_PIPE = 141


class MerPrepError(Exception):
    """Base class of every error mer-prep raises."""

    exit_code: int = EXIT_USAGE

    def __str__(self) -> str:  # a LookupError would quote its message: never for ours
        return str(self.args[0]) if self.args else self.__class__.__name__


# --- bad input: usage, names, values ------------------------------------------------------------


class InvalidArgumentError(MerPrepError, ValueError):
    """A value passed to a library function is out of its domain (a shape, a range, a mode)."""


class UnknownNameError(MerPrepError, KeyError):
    """A name (dataset, recipe, label scheme, split kind, model) that does not exist."""


class UnknownDatasetError(UnknownNameError):
    """No adapter of that name."""


class UnknownRecipeError(UnknownNameError):
    """No built-in recipe of that name."""


class UnknownLabelSchemeError(UnknownNameError):
    """No label scheme of that name."""


class UnknownModelError(UnknownNameError):
    """No model (or no variant of a model) is registered under the name asked for."""


class RecipeError(MerPrepError, ValueError):
    """A recipe file is missing, not YAML, or describes an impossible recipe."""


class ConfigError(MerPrepError, ValueError):
    """The configuration file is missing, not TOML, or does not describe valid deployments."""


class DataRootError(MerPrepError, FileNotFoundError):
    """A dataset root does not exist or does not hold the dataset's layout."""


class SampleError(MerPrepError):
    """A single sample cannot be processed; the run records it and goes on."""

    def __init__(self, problem: str, *, file: str = "", sample: str = "") -> None:
        self.problem = problem
        self.file = str(file)
        self.sample = sample
        where = ", ".join(
            p
            for p in (
                f"file {self.file}" if self.file else "",
                f"sample {sample}" if sample else "",
            )
            if p
        )
        super().__init__(f"{where}: {problem}" if where else problem)


class FrameReadError(SampleError):
    """A frame file is missing, unreadable or truncated."""


class FrameIOError(FrameReadError):
    """The operating system could not read a frame file (missing, I/O error, timeout): unlike a
    corrupt file this may pass, so a run retries it. ``errno`` is the OS error number (or None)."""

    def __init__(
        self, problem: str, *, file: str = "", sample: str = "", errno: int | None = None
    ) -> None:
        super().__init__(problem, file=file, sample=sample)
        self.errno = errno


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


# --- the store ----------------------------------------------------------------------------------


class StoreError(MerPrepError):
    """Base of the store's errors."""

    exit_code = EXIT_STORE


class StoreLocationError(StoreError, ValueError):
    """A store location that is neither a local path nor ``s3://bucket/prefix``."""


class StoreNotFoundError(StoreError, FileNotFoundError):
    """No store (or no committed version) at a location."""


class VersionNotFoundError(StoreError, LookupError):
    """The store holds no version of that name."""


class SplitNotFoundError(StoreError, LookupError):
    """The store version holds no split of that name and cannot compute it."""


class ArrayNotFoundError(StoreError, KeyError):
    """The store version holds no array of that name (its recipe does not store it)."""


class SchemaError(StoreError, ValueError):
    """A store (or a write into it) does not follow the declared layout."""


class CorruptDataError(StoreError, ValueError):
    """A stored chunk does not match its checksum (or cannot be decoded): named by array and
    sample."""


class VersionConflictError(StoreError, RuntimeError):
    """Another run moved ``main`` while this one was writing; nothing of this run is visible."""


class StoreWriteError(StoreError, RuntimeError):
    """Writing into the store failed (a chunk, the table, a commit: an I/O or object-store
    error, a full disk). Never a sample failure: the run stops, its scratch branch is dropped and
    ``main`` and the tags keep the previous version."""


# --- runs and the environment --------------------------------------------------------------------


class NothingProcessedError(MerPrepError, RuntimeError):
    """A run found no samples, or every sample failed; ``summary`` says what happened."""

    exit_code = EXIT_NO

    def __init__(self, message: str, summary=None) -> None:
        super().__init__(message)
        self.summary = summary


class RunCancelled(MerPrepError):
    """The run was interrupted (Ctrl-C, SIGTERM) and stopped; nothing of it was published."""

    exit_code = EXIT_CANCELLED


class PipelineError(MerPrepError, RuntimeError):
    """The run's own bookkeeping found an inconsistency and refused to commit."""

    exit_code = EXIT_INTERNAL


class RunAbandoned(PipelineError):
    """A worker's batch found its run gone (cancelled, failed or killed: the run's scratch
    branch no longer exists) and stopped without writing more."""


class EnvironmentProblem(MerPrepError, RuntimeError):
    """Something the machine must provide is missing: a model file, a server, an extra."""

    exit_code = EXIT_ENVIRONMENT


class ServeError(EnvironmentProblem):
    """Nothing can be served: no Prefect server to serve against, or no enabled dataset."""
