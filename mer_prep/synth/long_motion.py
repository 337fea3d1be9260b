"""Region motion of synthetic long videos without rendering them: a ``VideoMotion`` whose
regions move exactly where ``long_videos.plan_long_video`` planted MEs, MaEs and blinks.

    motions, truths = planted_motion_set(n_subjects=6, ks=(4, 8))   # spotter tests, the demo

Each planted event moves a few regions with the event's temporal profile (0 at onset and offset,
its amplitude at the apex): an ME or MaE moves one brow pair or one mouth corner pair (chosen
from the seed), a blink only the eyes. Row ``i`` of a pair distance ``k`` holds
``|D(i + k) - D(i)|`` per region, ``D`` the region's displacement, plus a noise floor
(``noise_px``); the main-directional mean is that displacement plus a smaller floor (the
vectors of one direction bin), the strain a tenth of it. Head drift is taken as removed (the
``VideoMotion`` contract). The truths are the planted MEs and MaEs, in the video's frame
numbers (``first_frame`` onwards), as the evaluator reads them.
"""

from __future__ import annotations

import numpy as np

from mer_prep.evaluation.spotting_intervals import SpotTruth
from mer_prep.motion.video_motion import ROI_NAMES, VideoMotion
from mer_prep.synth.long_videos import LongVideoPlan, plan_long_video
from mer_prep.synth.motion import temporal_profile

#: the region pairs an expression may move (one pair per event)
_EXPRESSION_REGIONS = (("brow_left", "brow_right"), ("mouth_left", "mouth_right"))
_EYES = ("eye_left", "eye_right")


def planted_displacement(plan: LongVideoPlan, seed: int) -> np.ndarray:
    """(n_frames, R) float64: each region's displacement in px along the video."""
    rng = np.random.default_rng(seed)
    displacement = np.zeros((plan.n_frames, len(ROI_NAMES)))
    for event in plan.events:
        profile = temporal_profile(plan.n_frames, event.onset, event.apex, event.offset)
        if event.kind == "blink":
            regions = _EYES
        else:
            regions = _EXPRESSION_REGIONS[int(rng.integers(len(_EXPRESSION_REGIONS)))]
        for name in regions:
            displacement[:, ROI_NAMES.index(name)] += event.amplitude_px * profile
    return displacement


def planted_motion(
    plan: LongVideoPlan,
    *,
    video_id: str,
    subject: str,
    k: int,
    seed: int = 0,
    noise_px: float = 0.03,
    first_frame: int = 1,
) -> VideoMotion:
    """The ``VideoMotion`` at pair distance ``k`` of the video ``plan`` describes."""
    displacement = planted_displacement(plan, seed)
    rng = np.random.default_rng([seed, k])
    moved = np.abs(displacement[k:] - displacement[:-k])
    shape = moved.shape
    magnitude = moved + np.abs(rng.normal(0.0, noise_px, shape))
    main = moved + np.abs(rng.normal(0.0, noise_px * 0.7, shape))
    strain = 0.1 * moved + np.abs(rng.normal(0.0, noise_px * 0.1, shape))
    # the nose is the head-motion reference: what is left there after its own mean is removed
    nose = ROI_NAMES.index("nose")
    magnitude[:, nose] = main[:, nose] = strain[:, nose] = 0.0
    return VideoMotion(
        video_id=video_id,
        subject=subject,
        fps=plan.fps,
        k=k,
        frame_numbers=np.arange(first_frame, first_frame + plan.n_frames, dtype=np.int64),
        roi_names=ROI_NAMES,
        magnitude=magnitude.astype(np.float32),
        main_direction=main.astype(np.float32),
        strain=strain.astype(np.float32),
    )


def planted_truths(plan: LongVideoPlan, video_id: str, first_frame: int = 1) -> list[SpotTruth]:
    """The planted MEs and MaEs of ``plan`` as the evaluator's truths of ``video_id``."""
    subject, _, video = video_id.rpartition("/")
    return [
        SpotTruth(
            video=video,
            onset=e.onset + first_frame,
            offset=e.offset + first_frame,
            kind=e.kind,
            subject=subject,
            emotion=e.emotion,
        )
        for e in plan.expressions
    ]


def planted_motion_set(
    *,
    n_subjects: int = 6,
    videos_per_subject: int = 2,
    ks: tuple[int, ...] = (4, 8),
    seed: int = 0,
    dataset: str = "synth-long",
    n_frames: int = 600,
    fps: float = 30.0,
    n_me: int = 2,
    n_mae: int = 2,
    n_blinks: int = 3,
    noise_px: float = 0.03,
    empty_videos: int = 1,
) -> tuple[dict[int, list[VideoMotion]], list[SpotTruth]]:
    """Synthetic region motion of ``n_subjects`` x ``videos_per_subject`` videos at every pair
    distance of ``ks`` ({k: motions, in one video order}) and their truths. The last
    ``empty_videos`` videos of each subject show blinks only (videos without expressions, as
    every MEGC dataset has)."""
    motions: dict[int, list[VideoMotion]] = {k: [] for k in ks}
    truths: list[SpotTruth] = []
    for s in range(n_subjects):
        subject = f"{dataset}/s{s + 1:02d}"
        for v in range(videos_per_subject):
            video_seed = seed * 10_000 + s * 100 + v
            empty = v >= videos_per_subject - empty_videos
            plan = plan_long_video(
                video_seed,
                n_frames=n_frames,
                fps=fps,
                n_me=0 if empty else n_me,
                n_mae=0 if empty else n_mae,
                n_blinks=n_blinks,
                key=dataset,
            )
            video_id = f"{subject}/v{v + 1}"
            truths.extend(planted_truths(plan, video_id))
            for k in ks:
                motions[k].append(
                    planted_motion(
                        plan,
                        video_id=video_id,
                        subject=subject,
                        k=k,
                        seed=video_seed,
                        noise_px=noise_px,
                    )
                )
    return motions, truths
