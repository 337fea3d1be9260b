"""Speed of the motion stages, as ratios measured in one run.

    python bench/motion.py [--subjects 10] [--clips 5] [--work bench/.work]

On a synthetic CASME II look-alike at 640x480 it measures:
  TV-L1     ms per frame pair (onset -> apex of real clips) at 128x128 and 134x134 aligned
            faces and on the full 640x480 frames, with the recipe's solver parameters and with
            OpenCV's defaults;
  magnify   ms per frame of Eulerian magnification of whole aligned 134x134 clips (msres3d);
  msres3d   per-sample stage times in this process and the share spent outside TV-L1;
  flows     samples/second of the whole ``preprocess`` flow for msres3d and dacwb3d on warmed
            1- and 2-worker local clusters, and the 2-over-1 speed-up.
Native thread pools are pinned to one thread per process, as in the flow's workers.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import numpy as np
import pipeline  # sets Prefect's environment before Prefect is imported

from mer_prep.datasets import scan_dataset
from mer_prep.face import align_clip, alignment_matrix, detect_face, fit_landmarks
from mer_prep.motion.flow import TVL1Params, tvl1_flow
from mer_prep.pipeline.frame_selection import clip_span
from mer_prep.pipeline.process import decode_clip_frames, magnify_clip, process_sample
from mer_prep.recipes import load_recipe
from mer_prep.threads import pin_threads


def aligned_clips(samples, size):
    """(whole aligned clip, onset position, apex position) per sample, float32 [0, 1]."""
    out = []
    for sample in samples:
        span = clip_span(sample)
        decoded = decode_clip_frames(sample, np.arange(len(sample.frame_numbers)))
        landmarks = fit_landmarks(decoded[span.onset], detect_face(decoded[span.onset]))
        matrix = alignment_matrix(landmarks, size=size, inter_ocular=0.42, eye_row=0.36)
        out.append((align_clip(decoded, matrix, size), span.onset, span.apex, decoded))
    return out


def ms_per_pair(pairs, params: TVL1Params) -> float:
    start = time.perf_counter()
    for a, b in pairs:
        tvl1_flow(a, b, params)
    return (time.perf_counter() - start) / len(pairs) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subjects", type=int, default=10)
    parser.add_argument("--clips", type=int, default=5)
    parser.add_argument("--work", type=Path, default=Path(__file__).parent / ".work")
    parser.add_argument("--pairs", type=int, default=8, help="clips used for the TV-L1 timings")
    args = parser.parse_args()

    from flows.runtime import prefect_api

    root = pipeline.ensure_dataset(args.work, args.subjects, args.clips)
    pin_threads(1)
    samples = scan_dataset("casme2", root).samples
    print(f"dataset: {len(samples)} clips, {args.subjects} subjects, 640x480, {root}")
    msres3d = load_recipe("msres3d")
    ours, opencv = msres3d.flow, TVL1Params(scales=5, scale_step=0.8, warps=5, epsilon=0.01)

    print("\nTV-L1, ms per frame pair (onset -> apex)")
    print(f"{'size':>9s} {'recipe params':>13s} {'OpenCV defaults':>15s}")
    clips128 = aligned_clips(samples[: args.pairs], (128, 128))
    clips134 = aligned_clips(samples[: args.pairs], (134, 134))
    for label, clips in (("128x128", clips128), ("134x134", clips134)):
        pairs = [(c[o], c[a]) for c, o, a, _ in clips]
        print(f"{label:>9s} {ms_per_pair(pairs, ours):13.1f} {ms_per_pair(pairs, opencv):15.1f}")
    full = [
        (d[o].astype(np.float32) / 255, d[a].astype(np.float32) / 255)
        for _, o, a, d in clips134[:2]
    ]
    print(f"{'640x480':>9s} {ms_per_pair(full, ours):13.1f} {ms_per_pair(full, opencv):15.1f}")

    frames_total, start = 0, time.perf_counter()
    for clip, *_ in clips134:
        magnify_clip(clip, msres3d.magnify, samples[0].fps)
        frames_total += len(clip)
    magnify_ms = (time.perf_counter() - start) / frames_total * 1e3
    print(
        f"\nmagnify (msres3d: alpha {msres3d.magnify.alpha}, lambda_c "
        f"{msres3d.magnify.cutoff_wavelength} px, {msres3d.magnify.f_low}-"
        f"{msres3d.magnify.f_high} Hz, {msres3d.magnify.temporal_filter}): "
        f"{magnify_ms:.2f} ms per 134x134 frame ({frames_total} frames)"
    )

    process_sample(samples[0], msres3d)  # load models before timing
    stages: dict[str, float] = {}
    start = time.perf_counter()
    for sample in samples:
        for stage, seconds in process_sample(sample, msres3d).timings.items():
            stages[stage] = stages.get(stage, 0.0) + seconds
    library = (time.perf_counter() - start) / len(samples)
    total = sum(stages.values())
    print(
        f"\nmsres3d in this process: {library * 1e3:.0f} ms per sample; stage shares: "
        + ", ".join(f"{k} {v / total:.0%}" for k, v in stages.items())
    )
    print(f"msres3d share outside TV-L1 flow: {1 - stages.get('flow', 0.0) / total:.0%}")

    print("\nwhole flow, samples/second")
    print(f"{'recipe':8s} {'1 worker':>8s} {'2 workers':>9s} {'2w/1w':>6s} {'peak MiB':>8s}")
    with prefect_api():
        for name in ("msres3d", "dacwb3d"):
            one, two = pipeline.scaling_seconds(root, name, args.work, repeat=1).values()
            n = one["summary"]["n_samples"]
            peak = max(one["peaks"] + two["peaks"]) / 2**20
            print(
                f"{name:8s} {n / one['warm']:8.2f} {n / two['warm']:9.2f} "
                f"{one['warm'] / two['warm']:6.2f} {peak:8.0f}"
            )


if __name__ == "__main__":
    main()
