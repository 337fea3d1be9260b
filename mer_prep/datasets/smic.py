"""SMIC adapter: ``HS|VIS|NIR/sNN/micro/<emotion>/sNN_xx_NN/imageN.bmp``.

SMIC ships no annotation file: the emotion is the folder name (negative/positive/surprise),
onset and offset are the first and last frames, and there is no apex (it must be spotted).
"""

from __future__ import annotations

from pathlib import Path

from mer_prep.datasets._annotated import child_dirs, inside_folder, subject_dirs
from mer_prep.datasets._frames import list_frames, timing_error
from mer_prep.sample import DatasetScan, Problem, Sample, within_root

DATASET = "smic"
FPS: dict[str, float] = {"HS": 100.0, "VIS": 25.0, "NIR": 25.0}


def subject_id(number: int) -> str:
    """``smic/s01`` for subject 1."""
    return f"{DATASET}/s{number:02d}"


def modality_dir(root: Path, modality: str) -> Path:
    """``root/HS`` (case-insensitive); FileNotFoundError when absent."""
    if modality.upper() not in FPS:
        raise ValueError(f"smic modality must be one of {sorted(FPS)}, got {modality!r}")
    for path in child_dirs(root):
        if path.name.upper() == modality.upper():
            return path
    raise FileNotFoundError(f"{root}: no SMIC {modality.upper()} folder")


def scan(root: Path | str, *, modality: str = "HS") -> DatasetScan:
    """Scan one modality of a SMIC copy; every clip folder becomes a Sample or a Problem."""
    root = Path(root)
    base = modality_dir(root, modality)
    fps = FPS[modality.upper()]
    samples: list[Sample] = []
    problems: list[Problem] = []
    for number, subject_dir in subject_dirs(base):
        micro = subject_dir / "micro"
        if not micro.is_dir():
            problems.append(
                Problem(
                    subject_id(number), str(subject_dir), "subject folder has no 'micro' folder"
                )
            )
            continue
        for emotion_dir in child_dirs(micro):
            for clip_dir in child_dirs(emotion_dir):
                result = _clip(
                    clip_dir,
                    subject_id(number),
                    emotion_dir.name,
                    fps,
                    modality.upper(),
                    root,
                    subject_dir,
                )
                (samples if isinstance(result, Sample) else problems).append(result)
    return DatasetScan(samples, problems)


def _clip(
    folder: Path,
    subject: str,
    emotion: str,
    fps: float,
    modality: str,
    root: Path,
    subject_dir: Path,
) -> Sample | Problem:
    sample_id = f"{subject}/{folder.name}"
    if not within_root(root, folder):  # a symlinked clip folder pointing elsewhere
        return Problem(sample_id, str(folder), f"clip folder leaves the dataset root {root}")
    if not inside_folder(
        subject_dir, folder
    ):  # a link into another subject: one clip, two subjects
        return Problem(
            sample_id,
            str(folder),
            f"clip folder leaves its subject folder {subject_dir}: it resolves to "
            f"{folder.resolve()}",
        )
    frames = list_frames(folder)
    numbers = [n for n, _ in frames]
    if not numbers:
        return Problem(sample_id, str(folder), "no frame files in the clip folder")
    error = timing_error(numbers, numbers[0], None, numbers[-1])
    if error:
        return Problem(sample_id, str(folder), error)
    return Sample(
        dataset=DATASET,
        subject=subject,
        clip=folder.name,
        frame_paths=tuple(str(p) for _, p in frames),
        frame_numbers=tuple(numbers),
        onset=numbers[0],
        apex=None,
        offset=numbers[-1],
        fps=fps,
        emotion=emotion.lower(),
        source=str(folder),
        extra=(("modality", modality),),
    )
