"""The `Sample` record every dataset adapter yields, and the scan result that carries problems.

Frame numbers are the dataset's own numbering (``img46.jpg`` is frame 46); onset, apex and
offset are given in that numbering, exactly as the annotation file states them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path


@dataclass(frozen=True)
class SubjectRecord:
    """What an adapter's records (a ``Sample``, a long video) start with: ``dataset``, the
    adapter name (``"casme2"``), and ``subject``, the dataset-qualified subject id
    (``"casme2/sub01"``)."""

    dataset: str
    subject: str


class NumberedFrames:
    """The frame count of a record that lists its ``frame_numbers`` (a ``Sample``, a long
    video)."""

    frame_numbers: tuple[int, ...]

    @property
    def n_frames(self) -> int:
        """How many frames the record lists."""
        return len(self.frame_numbers)


@dataclass(frozen=True)
class Sample(SubjectRecord, NumberedFrames):
    """One annotated micro-expression clip of ``subject`` of ``dataset`` (``SubjectRecord``).

    clip: the dataset's clip/folder name (``"EP02_01f"``).
    frame_paths / frame_numbers: every frame file of the clip, ordered numerically, and the
    number parsed from each file name (same length). Empty for video samples.
    video_path: set instead of frame_paths for video sources; frame_numbers then lists the
    0-based video frame indices that belong to the clip.
    onset / apex / offset: dataset frame numbers; apex is None when the annotation has none.
    source: ``"<annotation file>:<row>"`` (or the folder) the record came from, for errors.
    label: the class under the active label scheme (None until a scheme is applied).
    root: the dataset root the sample was found under (set when a run is planned); what a
    store records about it names files relative to this (``relative_to_root``).
    action_units: the annotation's action-unit cell, verbatim (``"4(B/C)+7B"``).
    aus: the AU numbers parsed from it (``mer_prep.datasets.aus``), sorted, alternatives
    included (``"L12 or 14"`` -> (12, 14)); action descriptors (AD38) are not AUs. Filled by
    ``scan_dataset``; () when the dataset codes no AUs.
    depth_paths: a depth frame (16-bit PNG, CAS(ME)^3) per entry of ``frame_paths`` when the
    dataset ships depth and every such frame is present; () otherwise.
    partition: the dataset's own official part of the sample (DFME: ``train``, ``testA``,
    ``testB``); "" for datasets without one.
    """

    clip: str
    frame_paths: tuple[str, ...]
    frame_numbers: tuple[int, ...]
    onset: int
    apex: int | None
    offset: int
    fps: float
    emotion: str
    action_units: str = ""
    video_path: str | None = None
    source: str = ""
    label: str | None = None
    extra: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    root: str = ""
    aus: tuple[int, ...] = ()
    depth_paths: tuple[str, ...] = ()
    partition: str = ""

    @property
    def sample_id(self) -> str:
        """Unique key inside a (composite) dataset: ``"casme2/sub01/EP02_01f"``."""
        return f"{self.subject}/{self.clip}"

    def with_label(self, label: str | None) -> Sample:
        return replace(self, label=label)


@dataclass(frozen=True)
class Problem:
    """A sample (or annotation row, or folder) that cannot be used, and why.

    sample_id: the sample key when one can be formed, else a best description (row/folder).
    file: the file or folder at fault. message: what is wrong, in plain words.
    """

    sample_id: str
    file: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: sample {self.sample_id}: {self.message}"


@dataclass(frozen=True)
class Failure:
    """A sample the store records as failed: which file, at which stage, and why.

    stage: ``scan`` (the adapter could not use it) or ``process`` (a stage failed on it).
    kind: ``permanent`` when the failure follows from the inputs as fingerprinted (a corrupt
    or missing file, no face, a bad annotation: the same inputs fail the same way) or
    ``transient`` when it may pass (an I/O error or timeout on a file that was readable when
    the run was planned, inputs that changed during the run): a re-run retries those.
    """

    sample_id: str
    file: str
    stage: str
    message: str
    kind: str = "permanent"

    @classmethod
    def from_problem(cls, problem: Problem) -> Failure:
        return cls(problem.sample_id, problem.file, "scan", problem.message)

    def to_dict(self) -> dict[str, str]:
        return asdict(self)

    def __str__(self) -> str:
        return f"{self.sample_id} [{self.stage}] {self.file}: {self.message}"


@dataclass
class DatasetScan:
    """What an adapter found under a dataset root: usable samples and the problems met.

    corrections: the annotation corrections of the scan (``mer_prep.datasets.corrections``:
    applied ones, ones the sheet already carried, ones whose sample was not found), so a user
    sees what was changed.
    """

    samples: list[Sample]
    problems: list[Problem]
    corrections: list = field(default_factory=list)

    def __iter__(self):
        return iter(self.samples)

    def __len__(self) -> int:
        return len(self.samples)


def within_root(root: Path, candidate: Path) -> bool:
    """True when ``candidate`` resolves inside ``root`` (guards ``Filename`` = ``../../etc``)."""
    try:
        candidate.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True


def relative_to_root(text: str, roots: str | os.PathLike | Iterable[str | os.PathLike]) -> str:
    """``text`` (a path, ``<file>:<row>``, or a message naming paths) as a store may record it:
    every path under one of ``roots`` relative to that root (the root itself as ``.``), any
    other path in the home directory from ``~``. A store then carries no path of the machine
    (and user) that made it.

    Each root is recognised as given (a relative one only as a prefix ``root/``), absolute and
    with links resolved; the longest root wins; a name merely starting like a root
    (``/data/CASME2-old``) is left alone. Reads nothing but link targets.
    """
    if not text:
        return text
    if isinstance(roots, (str, os.PathLike)):
        roots = [roots]
    absolute, relative = set(), set()
    for root in roots:
        given = os.fspath(root)
        if not given:
            continue
        absolute |= {
            form for form in (os.path.abspath(given), os.path.realpath(given)) if form != os.sep
        }
        if not os.path.isabs(given) and os.path.normpath(given) not in (".", ".."):
            relative.add(os.path.normpath(given))
    home = os.path.expanduser("~").rstrip(os.sep)
    alternatives = [
        rf"(?P<abs>{_either(absolute)})(?:(?P<slash>/)|(?![\w.-]))" if absolute else "",
        rf"(?P<rel>{_either(relative)})/" if relative else "",
        rf"(?P<home>{re.escape(home)})(?=/)" if home and home != "~" else "",
    ]
    pattern = "|".join(a for a in alternatives if a)
    if not pattern:
        return text

    def written(match: re.Match) -> str:
        found = match.groupdict()
        if found.get("abs") is not None:
            return "" if found["slash"] else "."
        return "" if found.get("rel") is not None else "~"

    return re.sub(rf"(?<![\w.~/-])(?:{pattern})", written, text)


def _either(forms: set[str]) -> str:
    return "|".join(re.escape(form) for form in sorted(forms, key=len, reverse=True))
