"""Per-sample speed of mbcc64 and msres3d on look-alikes of the newer datasets, at their frame
size and rate, and the share of it spent in face detection.

    python bench/datasets.py [--datasets casme3 dfme 4dme mmew] [--subjects 2] [--clips 2]
                             [--frames 40] [--repeat 3] [--size dfme=768x1024] [--work bench/.work]

Each look-alike is generated once (``mer_prep.synth.generate.generate_dataset``) under
``--work/<DATASET>-<H>x<W>``, with the dataset's frame rate from the generator's styles and the
frame size below (``--size name=HxW`` to change one; those marked *unconfirmed* are not stated
by the dataset's papers as far as this project knows). Per sample, one thread, in this process,
alternating the recipes and reversing their order every round (this machine drifts by 20-30 %
within minutes), the median of ``--repeat`` rounds: samples/second = 1 / mean per-sample
median, and the stage shares of ``process_sample``'s own timings; ``hog full`` is one HOG
detection on the full-resolution onset frame, what detection cost per sample before the
cascade (its first stage now runs on a copy with a 240-px shorter side).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import time
from collections import Counter
from pathlib import Path

import numpy as np

from mer_prep.datasets import scan_dataset
from mer_prep.face.detect import _detect_hog
from mer_prep.pipeline.frame_selection import clip_span
from mer_prep.pipeline.process import decode_clip_frames, process_sample
from mer_prep.recipes import load_recipe
from mer_prep.synth.generate import STYLES, generate_dataset
from mer_prep.synth.ground_truth import ground_truth_dir
from mer_prep.threads import pin_threads

#: (height, width) of each look-alike, and whether the size is confirmed
SIZES: dict[str, tuple[tuple[int, int], str]] = {
    "casme3": ((720, 1280), "Part A colour, 1280x720"),
    "dfme": ((768, 1024), "1024x768, *unconfirmed*"),
    "4dme": ((1600, 1200), "texture 1200x1600, *unconfirmed*"),
    "mmew": ((1080, 1920), "1920x1080"),
}


def ensure_dataset(
    work: Path, name: str, size: tuple[int, int], subjects: int, clips: int, frames: int
) -> Path:
    root = work / f"{name.upper()}-{size[0]}x{size[1]}-{subjects}x{clips}x{frames}"
    if not (ground_truth_dir(root) / "manifest.json").exists():
        shutil.rmtree(root, ignore_errors=True)
        generate_dataset(
            name,
            root,
            n_subjects=subjects,
            clips_per_subject=clips,
            seed=0,
            size=size,
            n_frames=frames,
        )
    return root


def full_resolution_hog(sample) -> float:
    onset = clip_span(sample).onset
    frame = decode_clip_frames(sample, np.array([onset]))[0]
    start = time.perf_counter()
    _detect_hog(frame, 0)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", default=list(SIZES))
    parser.add_argument("--recipes", nargs="+", default=["mbcc64", "msres3d"])
    parser.add_argument("--subjects", type=int, default=2)
    parser.add_argument("--clips", type=int, default=2)
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--size", action="append", default=[], metavar="NAME=HxW")
    parser.add_argument("--work", type=Path, default=Path(__file__).parent / ".work")
    args = parser.parse_args()
    sizes = {name: size for name, (size, _) in SIZES.items()}
    for option in args.size:
        name, _, value = option.partition("=")
        height, width = (int(v) for v in value.lower().split("x"))
        sizes[name] = (height, width)

    pin_threads(1)
    recipes = [load_recipe(name) for name in args.recipes]
    rows = []
    for name in args.datasets:
        size = sizes[name]
        root = ensure_dataset(args.work, name, size, args.subjects, args.clips, args.frames)
        samples = scan_dataset(name, root).samples
        for recipe in recipes:  # load the models, warm the caches
            process_sample(samples[0], recipe)
        seconds = {r.name: [[] for _ in samples] for r in recipes}
        stages = {r.name: Counter() for r in recipes}
        detectors = Counter()
        hog_full = [[] for _ in samples]
        for round_ in range(args.repeat):
            order = recipes if round_ % 2 == 0 else recipes[::-1]
            for i, sample in enumerate(samples):
                for recipe in order:
                    start = time.perf_counter()
                    out = process_sample(sample, recipe)
                    seconds[recipe.name][i].append(time.perf_counter() - start)
                    stages[recipe.name].update(out.timings)
                    detectors[out.detector] += 1
                hog_full[i].append(full_resolution_hog(sample))
        hog = float(np.mean([statistics.median(t) for t in hog_full]))
        for recipe in recipes:
            per_sample = float(np.mean([statistics.median(t) for t in seconds[recipe.name]]))
            total = sum(stages[recipe.name].values())
            share = stages[recipe.name]["detect"] / total
            rows.append(
                (
                    name,
                    size,
                    STYLES[name].fps,
                    len(samples),
                    recipe.name,
                    per_sample,
                    share,
                    hog,
                    dict(detectors),
                )
            )

    print(
        f"{'dataset':8s} {'HxW':>10s} {'fps':>5s} {'n':>3s} {'recipe':8s} {'ms/sample':>9s} "
        f"{'samples/s':>9s} {'detect':>7s} {'det ms':>7s} {'hog full ms':>11s}  detectors"
    )
    for name, size, fps, n, recipe, per_sample, share, hog, detectors in rows:
        print(
            f"{name:8s} {size[0]:>4d}x{size[1]:<5d} {fps:5.0f} {n:3d} {recipe:8s} "
            f"{per_sample * 1e3:9.1f} {1 / per_sample:9.2f} {share:7.1%} "
            f"{share * per_sample * 1e3:7.1f} {hog * 1e3:11.1f}  "
            + ", ".join(f"{k} {v}" for k, v in detectors.items())
        )
    print(
        "\nsizes: "
        + "; ".join(f"{name} {SIZES[name][1]}" for name in args.datasets if name in SIZES)
    )


if __name__ == "__main__":
    main()
