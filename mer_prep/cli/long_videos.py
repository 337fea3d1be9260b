"""``mer-prep list DATASET --videos`` / ``--intervals`` for the long-video datasets
(``mer_prep.datasets.long_video``): one CSV (or JSON) row per video or per annotated interval;
problems (named quirks) go to stderr."""

from __future__ import annotations

import csv
import json
import sys
from typing import TYPE_CHECKING

import click

from mer_prep.errors import InvalidArgumentError

if TYPE_CHECKING:
    from mer_prep.datasets.long_video import LongInterval, LongVideo

#: the columns that name a row's video, first in both listings
KEY_FIELDS = ("dataset", "subject", "video")
VIDEO_FIELDS = (*KEY_FIELDS, "n_frames", "fps", "first_frame", "last_frame", "n_me", "n_mae")
INTERVAL_FIELDS = (*KEY_FIELDS, "kind", "onset", "apex", "offset", "emotion", "action_units")


def is_long(dataset: str) -> bool:
    """True when ``dataset`` names a long-video adapter."""
    from mer_prep.datasets.long_video import LONG_VIDEO_ADAPTERS

    return dataset in LONG_VIDEO_ADAPTERS


def list_long(
    dataset: str,
    roots: tuple[str, ...],
    options: dict[str, str],
    fmt: str,
    *,
    intervals: bool = False,
) -> None:
    """Print the videos (or, with ``intervals``, the intervals) of long-video ``dataset``."""
    from mer_prep.datasets.long_video import LONG_VIDEO_ADAPTERS, scan_long_videos

    if not is_long(dataset):
        raise InvalidArgumentError(
            "--videos / --intervals list long-video datasets "
            f"({', '.join(LONG_VIDEO_ADAPTERS)}); {dataset!r} is not one"
        )
    if len(roots) != 1 or "=" in roots[0]:
        raise InvalidArgumentError(f"{dataset}: give one --root PATH")
    scan = scan_long_videos(dataset, roots[0], **options)
    if intervals:
        fields = INTERVAL_FIELDS
        rows = [_interval_row(v, i) for v in scan.videos for i in v.intervals]
    else:
        fields = VIDEO_FIELDS
        rows = [_video_row(v) for v in scan.videos]
    if fmt == "json":
        click.echo(json.dumps(rows, indent=1))
    else:
        writer = csv.DictWriter(sys.stdout, fieldnames=list(fields))
        writer.writeheader()
        writer.writerows(rows)
    for problem in scan.problems:
        click.echo(f"problem: {problem}", err=True)


def _key(video: LongVideo) -> dict[str, object]:
    """The ``KEY_FIELDS`` cells of ``video``'s rows."""
    return {"dataset": video.dataset, "subject": video.subject, "video": video.video}


def _video_row(video: LongVideo) -> dict[str, object]:
    """The ``VIDEO_FIELDS`` row of ``video``."""
    return {
        **_key(video),
        "n_frames": video.n_frames,
        "fps": video.fps,
        "first_frame": video.frame_numbers[0],
        "last_frame": video.frame_numbers[-1],
        "n_me": sum(i.kind == "me" for i in video.intervals),
        "n_mae": sum(i.kind == "mae" for i in video.intervals),
    }


def _interval_row(video: LongVideo, interval: LongInterval) -> dict[str, object]:
    """The ``INTERVAL_FIELDS`` row of one annotated ``interval`` of ``video``."""
    return {
        **_key(video),
        "kind": interval.kind,
        "onset": interval.onset,
        "apex": "" if interval.apex is None else interval.apex,
        "offset": interval.offset,
        "emotion": interval.emotion or "",
        "action_units": interval.action_units,
    }
