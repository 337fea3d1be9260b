"""Face detection: the pipeline's cascade against the old full-resolution HOG detection.

    python bench/detect.py [--subjects 26] [--clips 10] [--repeat 3] [--work bench/.work]
    python bench/detect.py --calibrate        # CNN box vs HOG box (mer_prep.face.cascade)
    python bench/detect.py --accepts [--subjects 10 --clips 4]   # false accepts / rejects

On the bench's synthetic CASME II look-alike (640x480, ``bench/pipeline.py``'s), per sample and
alternating between the variants (this machine drifts by 20-30 % within minutes), medians of
``--repeat`` rounds, one thread, in this process:
  old floor   decode the frames mbcc64 reads + full-resolution HOG + one 68-point fit: the
              floor of bench/pipeline.py before the cascade;
  old lib     ``process_sample(mbcc64)`` with the old detection (full-resolution
              ``detect_face``: HOG, HOG upsampled, LBP);
  new floor   decode + the cascade's first stage (HOG on the downscaled copy) + fit;
  new lib     ``process_sample(mbcc64)`` as it is (the cascade);
  hog small   resize + HOG alone on the downscaled copy, and cascade: ``detect_clip_face``
              on the same frame: their difference is what the cascade costs clips HOG finds.
Landmark error against the ground truth: mean distance of the 68 points fitted on the onset
frame to the true ones, over the true inter-ocular distance, with the old box (full-resolution
HOG) and with the cascade's box; and which stage found each face.

``--accepts``: the detection table, before (low-confidence boxes taken unconfirmed, as the
cascade did before ``confirm_box``) and after: false accepts on the non-face clips of
``mer_prep.synth.nonfaces`` (a box on any of them is one), false rejects on the side-lit weak
faces of ``mer_prep.synth.weak_faces`` (seeds 0-11, shadow x0.1, 0.15, 0.25, 0.4) and on the
onset frames of the look-alike (no box, or a box missing the true nose tip or eyes, is one).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
from pipeline import ensure_dataset, onset_frame

import mer_prep.face.cascade as cascade
import mer_prep.pipeline.process as process
from mer_prep.datasets import scan_dataset
from mer_prep.errors import NoFaceError
from mer_prep.face import detect_face, eye_centers, fit_landmarks
from mer_prep.face.cascade import (
    HOG_SHORT_SIDE,
    _cnn_detector,
    _scaled,
    detect_clip_face,
    detection_scale,
)
from mer_prep.face.detect import _detect_hog
from mer_prep.pipeline.process import process_sample
from mer_prep.recipes import load_recipe
from mer_prep.synth.ground_truth import load_ground_truth
from mer_prep.synth.nonfaces import nonface_clips
from mer_prep.synth.weak_faces import side_lit
from mer_prep.threads import pin_threads


def old_floor(sample, recipe) -> None:
    onset = onset_frame(sample, recipe)
    fit_landmarks(onset, detect_face(onset, fallback=False))


def new_floor(sample, recipe) -> None:
    onset = onset_frame(sample, recipe)
    fit_landmarks(onset, detect_clip_face(onset, fallback=False))


def _old_detection(image, _later, **options):
    return detect_face(image, **{k: v for k, v in options.items() if k != "next_frames"})


def old_library(sample, recipe) -> dict:
    saved, process.detect_clip_face = process.detect_clip_face, _old_detection
    try:
        return process_sample(sample, recipe).timings
    finally:
        process.detect_clip_face = saved


def new_library(sample, recipe) -> dict:
    return process_sample(sample, recipe).timings


def hog_small(onset, scale) -> None:
    _detect_hog(_scaled(onset, scale)[0], 0)


def _timed(call, *args):
    start = time.perf_counter()
    out = call(*args)
    return time.perf_counter() - start, out


def landmark_errors(root: Path, samples, recipe) -> dict:
    """Per sample: (old error, new error, same box, stage) in inter-ocular distances."""
    rows = []
    for sample in samples:
        truth = load_ground_truth(root, sample.sample_id)
        expected = np.asarray(truth.landmarks(truth.onset))
        left, right = eye_centers(expected)
        iod = float(np.hypot(*(right - left)))
        onset = onset_frame(sample, recipe)
        old_box, new_box = detect_face(onset), detect_clip_face(onset)
        old = np.linalg.norm(fit_landmarks(onset, old_box) - expected, axis=1).mean() / iod
        new = np.linalg.norm(fit_landmarks(onset, new_box) - expected, axis=1).mean() / iod
        same = (old_box.left, old_box.top, old_box.right, old_box.bottom) == (
            new_box.left,
            new_box.top,
            new_box.right,
            new_box.bottom,
        )
        rows.append((old, new, same, new_box.method))
    return rows


@contextmanager
def unconfirmed():
    """The cascade as it was before confirmation: every low-confidence box taken as found."""
    saved = cascade.confirm_box, cascade.CONFIRMED_SCORE
    cascade.confirm_box, cascade.CONFIRMED_SCORE = (lambda _gray, box: box), 0.0
    try:
        yield
    finally:
        cascade.confirm_box, cascade.CONFIRMED_SCORE = saved


def _stage(frames: np.ndarray, truth: np.ndarray | None = None) -> str:
    """The stage that finds a face on (T, H, W) ``frames`` (first frame, then the next ones),
    ``none``; with ``truth`` (68, 2) landmarks, ``wrong`` when the box misses the nose tip or
    an eye centre."""
    try:
        box = detect_clip_face(frames[0], lambda k: frames[k] if k < len(frames) else None)
    except NoFaceError:
        return "none"
    if truth is not None and not all(box.contains(*p) for p in (truth[30], *eye_centers(truth))):
        return "wrong"
    return box.method


def detection_table(root: Path, samples, recipe) -> None:
    """False accepts on non-face clips, false rejects on weak and look-alike faces, before
    (unconfirmed) and after."""
    nonfaces = nonface_clips()
    weak = [side_lit(seed, dark) for dark in (0.1, 0.15, 0.25, 0.4) for seed in range(12)]
    lookalike = []
    for sample in samples:
        truth = load_ground_truth(root, sample.sample_id)
        lookalike.append(
            (onset_frame(sample, recipe)[None], np.asarray(truth.landmarks(truth.onset)))
        )
    sets = {
        "non-face clips": [(clip.frames, None) for clip in nonfaces],
        "weak faces (side-lit)": [(face.frame[None], face.truth) for face in weak],
        "look-alike onsets": lookalike,
    }
    print(f"\n{'set':24s} {'clips':>5s}  {'before':>24s}  {'after':>24s}")
    for name, items in sets.items():
        counts = {}
        for when in ("before", "after"):
            start = time.perf_counter()
            if when == "before":
                with unconfirmed():
                    stages = Counter(_stage(*item) for item in items)
            else:
                stages = Counter(_stage(*item) for item in items)
            seconds = (time.perf_counter() - start) / len(items)
            bad = (
                len(items) - stages["none"]
                if name == "non-face clips"
                else stages["none"] + stages["wrong"]
            )
            counts[when] = (bad, stages, seconds)
        what = "false accepts" if name == "non-face clips" else "false rejects"
        print(
            f"{name:24s} {len(items):5d}  "
            + "  ".join(
                f"{what} {counts[w][0]:3d} ({counts[w][2]:.2f} s/clip)" for w in ("before", "after")
            )
        )
        for when in ("before", "after"):
            print(
                f"    {when:6s} stages: "
                + ", ".join(f"{k} {v}" for k, v in sorted(counts[when][1].items()))
            )


def calibrate(samples, recipe) -> None:
    """Median HOG-box geometry relative to the CNN box, where both find the face."""
    ratio, right, down = [], [], []
    for sample in samples:
        onset = onset_frame(sample, recipe)
        hog = _detect_hog(onset, 0)
        small, sx, sy = _scaled(onset, detection_scale(onset.shape, 240))
        found = _cnn_detector()(small, 0)
        if hog is None or not found:
            continue
        r = max(found, key=lambda d: d.confidence).rect
        width = (r.right() + 1 - r.left()) / sx
        cx, cy = (r.left() + r.right() + 1) / 2 / sx, (r.top() + r.bottom() + 1) / 2 / sy
        hx, hy = (hog.left + hog.right) / 2, (hog.top + hog.bottom) / 2
        ratio.append(hog.width / width)
        right.append((hx - cx) / width)
        down.append((hy - cy) / width)
    print(f"{len(ratio)} faces (median [quartiles]):")
    for name, values in (
        ("_CNN_SCALE", ratio),
        ("_CNN_SHIFT_RIGHT", right),
        ("_CNN_SHIFT_DOWN", down),
    ):
        q1, q2, q3 = np.percentile(values, [25, 50, 75])
        print(f"  {name} {q2:.3f} [{q1:.3f}, {q3:.3f}]")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subjects", type=int, default=26)
    parser.add_argument("--clips", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--work", type=Path, default=Path(__file__).parent / ".work")
    parser.add_argument("--calibrate", action="store_true")
    parser.add_argument(
        "--accepts", action="store_true", help="only the false accept / false reject table"
    )
    args = parser.parse_args()

    pin_threads(1)
    cv2.setNumThreads(1)
    root = ensure_dataset(args.work, args.subjects, args.clips)
    samples = scan_dataset("casme2", root).samples
    recipe = load_recipe("mbcc64")
    print(
        f"dataset: {len(samples)} clips, 640x480, {root}; detection copy: shorter side "
        f"{HOG_SHORT_SIDE} px (x{detection_scale((480, 640), HOG_SHORT_SIDE):.2f})"
    )
    if args.calibrate:
        calibrate(samples, recipe)
        return
    if args.accepts:
        detection_table(root, samples, recipe)
        return
    process_sample(samples[0], recipe)  # load the models before timing
    old_library(samples[0], recipe)

    variants = {
        "old floor": old_floor,
        "old lib": old_library,
        "new floor": new_floor,
        "new lib": new_library,
    }
    seconds = {name: [[] for _ in samples] for name in variants}
    stages = {"old lib": Counter(), "new lib": Counter()}
    detect_cost = {"hog small": [[] for _ in samples], "cascade": [[] for _ in samples]}
    onsets = [onset_frame(sample, recipe) for sample in samples]
    for round_ in range(args.repeat):
        order = list(variants.items())
        if round_ % 2:
            order.reverse()
        for i, sample in enumerate(samples):
            for name, call in order:
                elapsed, timings = _timed(call, sample, recipe)
                seconds[name][i].append(elapsed)
                if name in stages:
                    stages[name].update(timings)
            onset = onsets[i]
            scale = detection_scale(onset.shape, HOG_SHORT_SIDE)
            detect_cost["hog small"][i].append(_timed(hog_small, onset, scale)[0])
            detect_cost["cascade"][i].append(_timed(detect_clip_face, onset)[0])

    per = {
        name: np.mean([statistics.median(s) for s in values])
        for name, values in {**seconds, **detect_cost}.items()
    }
    floor = per["old floor"]
    print(
        "\nms per sample (mean over samples of the per-sample median of "
        f"{args.repeat} alternating rounds):"
    )
    for name, value in per.items():
        print(f"  {name:10s} {value * 1e3:7.2f}   x{value / floor:.2f} of the old floor")
    print(
        f"cascade overhead on clips HOG finds: {(per['cascade'] - per['hog small']) * 1e3:+.2f} "
        "ms per sample"
    )
    for name, counter in stages.items():
        total = sum(counter.values())
        print(
            f"{name} stage shares: " + ", ".join(f"{k} {v / total:.0%}" for k, v in counter.items())
        )
    rows = landmark_errors(root, samples, recipe)
    old, new = np.array([r[0] for r in rows]), np.array([r[1] for r in rows])
    print(f"\nlandmark error / inter-ocular distance, {len(rows)} onset frames:")
    print(
        f"  old box (full-res HOG): mean {old.mean():.4f} median {np.median(old):.4f} "
        f"max {old.max():.4f}"
    )
    print(
        f"  cascade box:            mean {new.mean():.4f} median {np.median(new):.4f} "
        f"max {new.max():.4f}"
    )
    print(
        f"  new - old per sample: mean {np.mean(new - old):+.4f}, "
        f"worst {np.max(new - old):+.4f}; same box on {sum(r[2] for r in rows)} of {len(rows)}"
    )
    print("  stages: " + ", ".join(f"{k} {v}" for k, v in Counter(r[3] for r in rows).items()))


if __name__ == "__main__":
    main()
