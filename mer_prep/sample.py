"""The `Sample` record every dataset adapter yields, and the scan result that carries problems.

Frame numbers are the dataset's own numbering (``img46.jpg`` is frame 46); onset, apex and
offset are given in that numbering, exactly as the annotation file states them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path


@dataclass(frozen=True)
class Sample:
    """One annotated micro-expression clip.

    dataset: adapter name (``"casme2"``); subject: dataset-qualified id (``"casme2/sub01"``);
    clip: the dataset's clip/folder name (``"EP02_01f"``).
    frame_paths / frame_numbers: every frame file of the clip, ordered numerically, and the
    number parsed from each file name (same length). Empty for video samples.
    video_path: set instead of frame_paths for video sources; frame_numbers then lists the
    0-based video frame indices that belong to the clip.
    onset / apex / offset: dataset frame numbers; apex is None when the annotation has none.
    source: ``"<annotation file>:<row>"`` (or the folder) the record came from, for errors.
    label: the class under the active label scheme (None until a scheme is applied).
    """

    dataset: str
    subject: str
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

    @property
    def sample_id(self) -> str:
        """Unique key inside a (composite) dataset: ``"casme2/sub01/EP02_01f"``."""
        return f"{self.subject}/{self.clip}"

    @property
    def n_frames(self) -> int:
        return len(self.frame_numbers)

    def with_label(self, label: str | None) -> "Sample":
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
    """

    sample_id: str
    file: str
    stage: str
    message: str

    @classmethod
    def from_problem(cls, problem: Problem) -> Failure:
        return cls(problem.sample_id, problem.file, "scan", problem.message)

    def to_dict(self) -> dict[str, str]:
        return asdict(self)

    def __str__(self) -> str:
        return f"{self.sample_id} [{self.stage}] {self.file}: {self.message}"


@dataclass
class DatasetScan:
    """What an adapter found under a dataset root: usable samples and the problems met."""

    samples: list[Sample]
    problems: list[Problem]

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
