"""Our MEGC 2020 compatibility scorer over the MEGC 2020 spotting baseline's own committed files,
beside the counts of its committed result file.

    python bench/spotting_megc2020.py PATH/TO/Baseline-project-for-MEGC2020_spotting

PATH is a local checkout of the public repository
HeyingGithub/Baseline-project-for-MEGC2020_spotting (nothing of it is copied here).
Read from it, under ``MDMD_results/``:

- ``dataset_new/data/{CAS(ME)^2,SAMM_MEGC}_Sets/all_Info.txt``: one truth per line,
  ``folder code class onset apex offset``; ``{ME2,SAMM_MEGC}_all.txt``: the videos;
- ``results_API/{ME2,SAMM_MEGC}_{micro,macro}_txtClips/p1/{folder}_{code}.txt``: predictions,
  ``onset offset score`` per line (p1: the threshold its result file reports);
- ``eval_res_txt/MEGC2020_results.txt``: its counts (predict, true_predict, labels per type).

For each dataset and type this prints its TP / FP / FN (FP = predict - true_predict, FN =
labels - true_predict), ours in ``megc2020`` mode with that dataset's length windows, the
defects that changed our counts, and the one-to-one counts of the correct scorer. Exit status 1
when a compatibility count differs from the result file's.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from mer_prep.evaluation.spotting import KINDS, SpotPrediction, SpotTruth, score_spotting
from mer_prep.evaluation.spotting_megc2020 import MEGC2020_LENGTH_WINDOWS

DATASETS = {  # its name: (its sets folder, our length-window preset, its header in the results)
    "ME2": ("CAS(ME)^2_Sets", "casme-sq", "ME2"),
    "SAMM_MEGC": ("SAMM_MEGC_Sets", "samm-lv", "SAMM_MEGC"),
}
CLASSES = {"micro": "me", "macro": "mae"}


def _frame(text: str, where: str) -> int:
    value = float(text)
    if not value.is_integer():
        raise SystemExit(f"{where}: frame {text} is not a whole number")
    return int(value)


def read_dataset(root: Path, name: str) -> tuple[list[str], list[SpotTruth], list[SpotPrediction]]:
    sets = root / "MDMD_results/dataset_new/data" / DATASETS[name][0]
    videos = [
        " ".join(line.split())
        for line in (sets / f"{name}_all.txt").read_text().splitlines()
        if line.strip()
    ]
    videos = [v.replace(" ", "_") for v in videos]
    truths = []
    info = sets / "all_Info.txt"
    for number, line in enumerate(info.read_text().splitlines(), 1):
        if not line.strip():
            continue
        folder, code, cls, onset, _apex, offset = line.split()
        where = f"{info}, line {number}"
        truths.append(
            SpotTruth(
                f"{folder}_{code}",
                _frame(onset, where),
                _frame(offset, where),
                CLASSES[cls.split("-")[0]],
            )
        )
    predictions = []
    for cls, kind in CLASSES.items():
        folder = root / f"MDMD_results/results_API/{name}_{cls}_txtClips/p1"
        for video in videos:
            path = folder / f"{video}.txt"
            if not path.exists():
                print(f"warning: {path} missing (the baseline would skip this video)")
                continue
            for line in path.read_text().splitlines():
                if line.strip():
                    onset, offset, score = line.split()[:3]
                    predictions.append(
                        SpotPrediction(video, int(onset), int(offset), kind, score=float(score))
                    )
    return videos, truths, predictions


def published_counts(root: Path) -> dict[tuple[str, str], tuple[int, int, int]]:
    """{(dataset, kind): (TP, FP, FN)} from its result file."""
    text = (root / "MDMD_results/eval_res_txt/MEGC2020_results.txt").read_text()
    out = {}
    dataset = None
    for line in text.splitlines():
        header = re.match(r"(\w+) \(number of videos", line)
        if header:
            dataset = header.group(1)
        row = re.match(
            r"(micro|macro)-expression:\s+predict:\s+(\d+)\s+true_predict:\s+(\d+)"
            r"\s+labels:\s+(\d+)",
            line,
        )
        if row and dataset:
            predict, true_predict, labels = (int(row.group(k)) for k in (2, 3, 4))
            out[(dataset, CLASSES[row.group(1)])] = (
                true_predict,
                predict - true_predict,
                labels - true_predict,
            )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkout", type=Path)
    root = parser.parse_args().checkout
    published = published_counts(root)
    mismatches = 0
    for name, (_, preset, header) in DATASETS.items():
        videos, truths, predictions = read_dataset(root, name)
        compat = score_spotting(
            predictions,
            truths,
            videos,
            compat="megc2020",
            length_windows=MEGC2020_LENGTH_WINDOWS[preset],
        )
        correct = score_spotting(predictions, truths, videos)
        print(
            f"{name} ({len(videos)} videos, {len(truths)} truths, {len(predictions)} "
            f"predictions; length windows {preset})"
        )
        print(
            f"  {'type':8}{'result file TP/FP/FN':>24}{'ours megc2020':>20}{'ours one-to-one':>20}"
        )
        for kind in (*KINDS, "overall"):
            ours = compat.overall if kind == "overall" else compat.by_kind[kind]
            right = correct.overall if kind == "overall" else correct.by_kind[kind]
            if kind == "overall":
                parts = [published.get((header, k)) for k in KINDS]
                theirs = tuple(map(sum, zip(*parts, strict=True))) if all(parts) else None
            else:
                theirs = published.get((header, kind))
            mine = (ours.tp, ours.fp, ours.fn)
            mismatches += theirs is not None and theirs != mine
            shown = "/".join(map(str, theirs)) if theirs else "-"
            print(
                f"  {kind:8}{shown:>24}{'/'.join(map(str, mine)):>20}"
                f"{f'{right.tp}/{right.fp}/{right.fn}':>20}   F1 {ours.f1:.4f} vs {right.f1:.4f}"
            )
        for note in compat.notes:
            print(f"  note: {note}")
        for defect in compat.defects:
            print(f"  defect {defect.line()}")
    print(
        "compatibility counts match the result file"
        if not mismatches
        else f"{mismatches} count rows differ from the result file"
    )
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
