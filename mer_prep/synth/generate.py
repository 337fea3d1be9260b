"""Synthetic look-alike datasets: real-face clips with known micro-motion, in any layout.

    written = generate_dataset("casme2", Path("/tmp/CASME2"), n_subjects=4, clips_per_subject=3)
    truth = load_ground_truth(Path("/tmp/CASME2"), written[0].sample_id)

Every random choice comes from ``seed`` through ``numpy.random.SeedSequence`` keyed by
(dataset, subject, clip), so a clip does not change when other clips are added. Frames are
rendered (``animate``) into temporary memory-mapped arrays, written by ``layouts.write_layout``
and their truth saved by ``ground_truth.save_ground_truth`` beside the dataset root.
"""

from __future__ import annotations

import math
import os
import tempfile
import zlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypedDict, Unpack

import numpy as np

from mer_prep.errors import InvalidArgumentError, PipelineError
from mer_prep.synth.animate import Scene, make_scene, render_frames
from mer_prep.synth.faces import (
    Subject,
    make_subject,
    render_subject,
    source_face,
    subject_face_box,
    subject_landmarks,
)
from mer_prep.synth.ground_truth import ClipTruth, save_ground_truth
from mer_prep.synth.layouts import CASME_SQ_VIDEOS, SynthClip, WrittenClip, write_layout
from mer_prep.synth.motion import (
    au_field,
    aus_for_emotion,
    head_jitter,
    temporal_profile,
)

__all__ = [
    "DatasetStyle",
    "STYLES",
    "MEGC2019_PARTS",
    "ClipPlan",
    "plan_clips",
    "ClipOptions",
    "subject_for",
    "render_plan",
    "generate_dataset",
]


@dataclass(frozen=True)
class DatasetStyle:
    """How a dataset's clips look: fps, native classes (as spelt in its annotation), gray
    frames, first subject number, whether clips are cut to onset..offset, and the longest
    onset-to-offset duration (micro-expressions last at most 0.5 s)."""

    fps: float
    classes: tuple[str, ...]
    gray: bool = False
    first_subject: int = 1
    cut_to_expression: bool = False
    max_duration_s: float = 0.5


STYLES: dict[str, DatasetStyle] = {
    "casme1": DatasetStyle(
        60.0,
        ("happiness", "surprise", "disgust", "repression", "tense", "contempt", "fear", "sadness"),
    ),
    "casme2": DatasetStyle(
        200.0, ("happiness", "surprise", "disgust", "repression", "others", "fear", "sadness")
    ),
    "samm": DatasetStyle(
        200.0,
        ("Anger", "Contempt", "Disgust", "Fear", "Sadness", "Happiness", "Surprise", "Other"),
        gray=True,
        first_subject=6,
    ),
    "smic": DatasetStyle(100.0, ("negative", "positive", "surprise"), cut_to_expression=True),
    # CAS(ME)^2 classes are the eliciting videos (paper 002); the emotion column says
    # negative/positive and the stimulus goes into the clip (video) name.
    "casme-sq": DatasetStyle(30.0, ("anger", "happy", "disgust")),
    # CAS(ME)^3 Part A (whole takes by default; variant="clips" for Part_A_ME_clip), DFME (its
    # Part A rate; each subject's split sheet follows its number), 4DME (grey; fps
    # *unconfirmed*), MMEW (fps *unconfirmed*; "others" clips in "repression" folders).
    "casme3": DatasetStyle(
        30.0, ("disgust", "surprise", "others", "fear", "anger", "sad", "happy")
    ),
    "dfme": DatasetStyle(
        500.0, ("anger", "contempt", "disgust", "fear", "happiness", "sadness", "surprise")
    ),
    "4dme": DatasetStyle(
        60.0, ("positive", "negative", "surprise", "repression", "others"), gray=True
    ),
    "mmew": DatasetStyle(
        90.0, ("happiness", "anger", "surprise", "disgust", "fear", "sadness", "others")
    ),
}
# megc2019 is written as three dataset roots under the given root.
MEGC2019_PARTS: tuple[tuple[str, str], ...] = (
    ("smic", "SMIC"),
    ("casme2", "CASME2"),
    ("samm", "SAMM"),
)
_SMIC_FPS = {"HS": 100.0, "VIS": 25.0, "NIR": 25.0}
_CASME_SQ_EMOTION = {"anger": "negative", "disgust": "negative", "happy": "positive"}


@dataclass(frozen=True)
class ClipPlan:
    """Everything about one clip except its pixels; indices are 0-based into its frames.

    emotion: annotated class; motion_class: the class whose AUs move the face; apex_annotated:
    False where the annotation leaves the apex out; amplitude_px: max |D|; jitter_px: max |j|;
    noise_sigma: grey levels; seed: the clip's own stream (field, jitter, noise).
    """

    dataset: str
    subject: int
    emotion: str
    motion_class: str
    action_units: str
    clip: str | None
    n_frames: int
    onset: int
    apex: int
    offset: int
    apex_annotated: bool
    first_frame_number: int
    amplitude_px: float
    jitter_px: float
    noise_sigma: float
    fps: float
    gray: bool
    seed: int


def _key(dataset: str) -> int:
    return zlib.crc32(dataset.encode())


def subject_for(dataset: str, subject: int, seed: int, size: tuple[int, int]) -> Subject:
    """The appearance of ``subject`` of ``dataset`` under ``seed`` (same in every run)."""
    ss = np.random.SeedSequence(seed, spawn_key=(_key(dataset), subject, 0))
    return make_subject(np.random.default_rng(ss), size)


def _draw(value: float | tuple[float, float], rng: np.random.Generator) -> float:
    return float(rng.uniform(*value)) if isinstance(value, tuple) else float(value)


def _timing(
    rng: np.random.Generator, n_frames: int, style: DatasetStyle, fps: float
) -> tuple[int, int, int]:
    if style.cut_to_expression:
        onset, offset = 0, n_frames - 1
    else:
        # Leave >= 2 neutral frames on each side; offset - onset + 1 frames must last <= 0.5 s.
        longest = min(n_frames - 5, int(round(0.7 * n_frames)), int(style.max_duration_s * fps) - 1)
        if longest < 4:
            raise InvalidArgumentError(
                f"{n_frames} frames at {fps} fps leave no room for an expression"
            )
        span = int(rng.integers(max(4, math.ceil(0.4 * longest)), longest + 1))
        onset = int(rng.integers(2, n_frames - 2 - span))
        offset = onset + span
    apex = round(onset + (offset - onset) * rng.uniform(0.3, 0.7))
    return onset, int(np.clip(apex, onset + 1, offset - 1)), offset


def _shown(dataset: str, motion_class: str, turn: int) -> dict[str, Any]:
    """What a clip whose face moves as ``motion_class`` shows: its annotated ``emotion``, that
    class's ``action_units`` and, for CAS(ME)^2, the eliciting ``clip`` (the ``turn``-th of the
    class's videos, round-robin) named by the class while the emotion says negative/positive."""
    emotion, clip = motion_class, None
    if dataset == "casme-sq" and motion_class.lower() in _CASME_SQ_EMOTION:
        emotion = _CASME_SQ_EMOTION[motion_class.lower()]
        videos = [name for _, name, _ in CASME_SQ_VIDEOS if name.startswith(motion_class.lower())]
        clip = videos[turn % len(videos)]
    return {
        "emotion": emotion,
        "motion_class": motion_class,
        "action_units": aus_for_emotion(motion_class),
        "clip": clip,
    }


def plan_clips(
    dataset: str,
    *,
    n_subjects: int,
    clips_per_subject: int,
    seed: int = 0,
    n_frames: int = 40,
    amplitude_px: float | tuple[float, float] = (0.2, 2.0),
    classes: Sequence[str] | None = None,
    jitter_px: float = 0.3,
    noise_sigma: float | tuple[float, float] = (1.0, 2.0),
    missing_apex: float = 0.0,
    modality: str = "HS",
) -> list[ClipPlan]:
    """Decide every clip of a synthetic ``dataset`` (one of ``STYLES``) from ``seed``.

    Classes go round-robin over a subject's clips, starting at a subject-dependent class so
    that every class meets several subjects. missing_apex: fraction of clips (drawn per clip)
    whose annotation has no apex (ignored for SMIC, which never has one).
    """
    style = STYLES[dataset]
    fps = _SMIC_FPS[modality.upper()] if dataset == "smic" else style.fps
    gray = style.gray or (dataset == "smic" and modality.upper() == "NIR")
    names = tuple(classes) if classes else style.classes
    plans = []
    for s in range(n_subjects):
        subject = style.first_subject + s
        for c in range(clips_per_subject):
            ss = np.random.SeedSequence(seed, spawn_key=(_key(dataset), subject, c + 1))
            rng = np.random.default_rng(ss)
            onset, apex, offset = _timing(rng, n_frames, style, fps)
            plans.append(
                ClipPlan(
                    dataset=dataset,
                    subject=subject,
                    **_shown(dataset, names[(s + c) % len(names)], s + c),
                    n_frames=n_frames,
                    onset=onset,
                    apex=apex,
                    offset=offset,
                    apex_annotated=dataset == "smic" or bool(rng.random() >= missing_apex),
                    first_frame_number=int(rng.integers(1, 300)),
                    amplitude_px=_draw(amplitude_px, rng),
                    jitter_px=jitter_px * float(rng.uniform(0.5, 1.0)),
                    noise_sigma=_draw(noise_sigma, rng),
                    fps=fps,
                    gray=gray,
                    seed=int(rng.integers(2**63)),
                )
            )
    return plans


def render_plan(
    plan: ClipPlan, subject: Subject, scene: Scene | None = None, out: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Render one planned clip of ``subject``.

    scene: ``animate.make_scene`` of the subject (built when None); out: optional preallocated
    frame array. Returns frames ((T, H, W, 3) or (T, H, W) uint8), field (H, W, 2) float32,
    profile (T,) and jitter (T, 2) float64.
    """
    if scene is None:
        scene = make_scene(render_subject(subject), gray=plan.gray)
    rng = np.random.default_rng(plan.seed)
    field = au_field(subject_landmarks(subject), plan.action_units, subject.size, plan.amplitude_px)
    profile = temporal_profile(plan.n_frames, plan.onset, plan.apex, plan.offset)
    jitter = head_jitter(plan.n_frames, rng, plan.jitter_px)
    frames = render_frames(scene, field, profile, jitter, plan.noise_sigma, rng)
    if out is not None:
        out[...] = frames
        frames = out
    return frames, field, profile, jitter


def _truth(
    plan: ClipPlan,
    subject: Subject,
    written: WrittenClip,
    field: np.ndarray,
    profile: np.ndarray,
    jitter: np.ndarray,
    seed: int,
    root: Path,
) -> ClipTruth:
    # The adapter's frames are either the whole clip or (SMIC, CAS(ME)^2) onset..offset only.
    n = len(written.frame_paths)
    start = 0 if n == plan.n_frames else plan.onset
    if n != plan.n_frames and n != plan.offset - plan.onset + 1:
        raise PipelineError(f"{written.sample_id}: layout wrote {n} frames of {plan.n_frames}")
    first = written.onset - (plan.onset - start)
    return ClipTruth(
        sample_id=written.sample_id,
        dataset=plan.dataset,
        subject=written.sample_id.rsplit("/", 1)[0],
        emotion=plan.emotion,
        motion_class=plan.motion_class,
        action_units=plan.action_units,
        fps=plan.fps,
        onset=plan.onset - start,
        apex=plan.apex - start,
        offset=plan.offset - start,
        onset_number=written.onset,
        apex_number=written.apex,
        offset_number=written.offset,
        first_number=first,
        amplitude_px=plan.amplitude_px,
        noise_sigma=plan.noise_sigma,
        gray=plan.gray,
        mirrored=subject.mirrored,
        identity_warp=asdict(subject.warp),
        neutral_box=subject_face_box(subject),
        seed=seed,
        frame_paths=tuple(os.path.relpath(p, root) for p in written.frame_paths),
        field=field,
        profile=profile[start : start + n],
        jitter=jitter[start : start + n],
        placement=subject.placement,
        source_landmarks=np.asarray(source_face().landmarks),
        neutral_landmarks=subject_landmarks(subject),
    )


class ClipOptions(TypedDict, total=False):
    """``plan_clips``' options that ``generate_dataset`` passes on (their defaults are
    ``plan_clips``')."""

    n_frames: int
    amplitude_px: float | tuple[float, float]
    classes: Sequence[str] | None
    jitter_px: float
    noise_sigma: float | tuple[float, float]
    missing_apex: float


def generate_dataset(
    dataset: str,
    root: Path,
    *,
    n_subjects: int,
    clips_per_subject: int,
    seed: int = 0,
    size: tuple[int, int] = (480, 640),
    modality: str = "HS",
    spreadsheet_version: str | None = None,
    image_quality: int = 95,
    workers: int | None = None,
    variant: str | None = None,
    videos: bool = False,
    **clip_options: Unpack[ClipOptions],
) -> list[WrittenClip]:
    """Write a synthetic ``dataset`` (casme1, casme2, samm, smic, casme-sq or megc2019) at
    ``root``, annotation files included, and its ground truth beside it.

    size: canvas (H, W); clip_options: ``plan_clips``' (n_frames: frames rendered per clip, SMIC
    keeps all, as onset..offset; amplitude_px: apex max |D|, a range draws per clip; jitter_px:
    largest head jitter, each clip draws 50-100 % of it; noise_sigma: grey levels; missing_apex:
    fraction of annotations without an apex); workers: rendering threads (default: CPU count, at
    most 4). megc2019 writes ``root/SMIC``, ``root/CASME2`` and ``root/SAMM``, each part in its
    own classes, HS modality, default layout and no videos. variant: the layout variant of
    ``write_layout`` (casme3 ``takes``/``clips``, mmew ``official``/``flat``). Also casme3, dfme,
    4dme and mmew. videos: casme-sq also writes ``rawvideo/`` (lossless). Returns the written
    clips in order.
    """
    root = Path(root)
    if dataset == "megc2019":
        shared = ClipOptions(**clip_options)
        shared.pop("classes", None)
        return [
            clip
            for part, folder in MEGC2019_PARTS
            for clip in generate_dataset(
                part,
                root / folder,
                n_subjects=n_subjects,
                clips_per_subject=clips_per_subject,
                seed=seed,
                size=size,
                spreadsheet_version=spreadsheet_version,
                image_quality=image_quality,
                workers=workers,
                **shared,
            )
        ]
    if dataset not in STYLES:
        raise InvalidArgumentError(
            f"unknown synthetic dataset {dataset!r}; known: {', '.join([*STYLES, 'megc2019'])}"
        )
    plans = plan_clips(
        dataset,
        n_subjects=n_subjects,
        clips_per_subject=clips_per_subject,
        seed=seed,
        modality=modality,
        **clip_options,
    )
    subjects = {p.subject: subject_for(dataset, p.subject, seed, size) for p in plans}
    with tempfile.TemporaryDirectory(prefix="mer-synth-") as tmp:

        def render_subject_clips(number: int) -> list[tuple]:
            subject = subjects[number]
            mine = [p for p in plans if p.subject == number]
            scene = make_scene(render_subject(subject), gray=mine[0].gray) if mine else None
            done = []
            for k, plan in enumerate(mine):
                shape = (plan.n_frames, *size) + (() if plan.gray else (3,))
                # Frames wait for write_layout on disk, not in memory (50 clips ~ 2 GB).
                out = np.lib.format.open_memmap(
                    os.path.join(tmp, f"{number}_{k}.npy"), mode="w+", dtype=np.uint8, shape=shape
                )
                done.append((plan, *render_plan(plan, subject, scene, out)))
            return done

        # Threads suffice: the heavy numpy/OpenCV/scipy calls release the GIL.
        n_workers = max(1, workers or min(4, os.cpu_count() or 1))
        with ThreadPoolExecutor(n_workers) as pool:
            rendered = [r for rs in pool.map(render_subject_clips, sorted(subjects)) for r in rs]
        clips = [
            SynthClip(
                subject=plan.subject,
                emotion=plan.emotion,
                frames=frames,
                onset=plan.onset,
                apex=plan.apex if plan.apex_annotated else None,
                offset=plan.offset,
                action_units=plan.action_units,
                clip=plan.clip,
                first_frame_number=plan.first_frame_number,
                fps=plan.fps,
            )
            for plan, frames, *_ in rendered
        ]
        written = write_layout(
            dataset,
            root,
            clips,
            modality=modality,
            spreadsheet_version=spreadsheet_version,
            image_quality=image_quality,
            variant=variant,
            videos=videos,
        )
        del clips  # let go of the memory maps before their folder goes
        rendered = [(plan, field, profile, jitter) for plan, _, field, profile, jitter in rendered]
    truths = [
        _truth(plan, subjects[plan.subject], w, field, profile, jitter, seed, root)
        for (plan, field, profile, jitter), w in zip(rendered, written, strict=True)
    ]
    # write_layout rewrote the annotation files with these clips only: so goes the truth.
    save_ground_truth(root, truths, replace=True)
    return written
