"""Layouts the dataset tests write again and again, by what differs between them."""

from __future__ import annotations

from pathlib import Path

from synth_clips import clip

from mer_prep.synth.layouts import WrittenClip, write_layout


def casme_sq_layout(
    root: Path, *clips: tuple[int, str, str], videos: bool = False
) -> list[WrittenClip]:
    """A CAS(ME)^2 look-alike at ``root`` (``write_layout("casme-sq", ...)``): one clip of
    ``synth_clips.clip``'s default frames and timing per ``(subject, emotion, video)``, e.g.
    ``(1, "negative", "anger1")``; with ``videos``, ``rawvideo/`` too."""
    return write_layout(
        "casme-sq",
        root,
        [clip(s, emotion, clip=video) for s, emotion, video in clips],
        videos=videos,
    )
