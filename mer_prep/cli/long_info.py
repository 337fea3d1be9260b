"""``mer-prep info`` of a long-video store (``mer-prep run <long-video dataset> --recipe lv128``):
its version, recipe, whether it keeps the aligned faces, videos (frames, pair distances,
annotated intervals, the face found), failures and versions."""

from __future__ import annotations

import click


def video_rows(store) -> list[tuple]:
    """One row per video of a long-video version (``LongVideoStore``): (video id, frames, fps,
    pair distances, MEs, MaEs, the face detector, ``ok`` or ``failed: <error>``)."""
    from mer_prep.store.long_reader import long_videos

    rows = []
    for entry in long_videos(store):
        a, kinds = entry.attrs, [t.kind for t in entry.truths]
        status = "ok" if entry.ok else f"failed: {a.error}"
        face = (a.face or {}).get("detector", "-")
        rows.append(
            (
                entry.video_id,
                a.n_frames,
                a.fps,
                a.ks,
                kinds.count("me"),
                kinds.count("mae"),
                face,
                status,
            )
        )
    return rows


def _faces_line(store) -> str:
    """What the version keeps of the aligned faces (``store_faces``), one line."""
    size = store.faces_size
    if size is None:
        return "faces: not stored (recipe store_faces off)"
    return f"faces: {size[0]}x{size[1]} uint8 per frame ({size[0] * size[1] / 1024:g} KiB raw)"


def print_long_info(path: str, version: str | None) -> None:
    """What a long-video version holds, one line per video."""
    from mer_prep.store.long_reader import open_long_store
    from mer_prep.store.repo import version_tags

    store = open_long_store(path, version)
    info = store.info
    for line in (
        f"store {path}: long videos of {info.dataset} / recipe {info.recipe.name} "
        f"({info.recipe.hash})",
        f"version {store.version_id}  code {info.code_version}  inputs {info.input_fingerprint}",
        f"regions: {', '.join(info.roi_names)}",
        _faces_line(store),
    ):
        click.echo(line)
    click.echo(f"videos: {info.n_ok} ok of {info.n_videos}")
    for video_id, frames, fps, ks, me, mae, face, state in video_rows(store):
        click.echo(
            f"  {video_id}  {frames} frames at {fps:g} fps  k {ks}  {me} ME / {mae} MaE  "
            f"face {face}  {state}"
        )
    click.echo(f"failures: {len(info.failures)}")
    for failure in info.failures:
        click.echo(f"  {failure.sample_id} [{failure.stage}, {failure.kind}] {failure.message}")
    tags = version_tags(store.repo)
    click.echo(f"versions ({len(tags)}): {', '.join(tags)}")
