"""``mer-prep info`` of a long-video store (``mer-prep run <long-video dataset> --recipe lv128``):
its version, recipe, videos (frames, pair distances, annotated intervals, the face found),
failures and versions."""

from __future__ import annotations

import click


def print_long_info(path: str, version: str | None) -> None:
    """What a long-video version holds, one line per video."""
    from mer_prep.store.long_reader import long_videos, open_long_store
    from mer_prep.store.repo import version_tags

    store = open_long_store(path, version)
    info = store.info
    for line in (
        f"store {path}: long videos of {info.dataset} / recipe {info.recipe.name} "
        f"({info.recipe.hash})",
        f"version {store.version_id}  code {info.code_version}  inputs {info.input_fingerprint}",
        f"regions: {', '.join(info.roi_names)}",
    ):
        click.echo(line)
    entries = long_videos(store)
    click.echo(f"videos: {info.n_ok} ok of {info.n_videos}")
    for entry in entries:
        a = entry.attrs
        kinds = [t.kind for t in entry.truths]
        face = (a.face or {}).get("detector", "-")
        state = "ok" if entry.ok else f"FAILED: {a.error}"
        click.echo(
            f"  {entry.video_id}  {a.n_frames} frames at {a.fps:g} fps  k {a.ks}  "
            f"{kinds.count('me')} ME / {kinds.count('mae')} MaE  face {face}  {state}"
        )
    click.echo(f"failures: {len(info.failures)}")
    for failure in info.failures:
        click.echo(f"  {failure.sample_id} [{failure.stage}, {failure.kind}] {failure.message}")
    tags = version_tags(store.repo)
    click.echo(f"versions ({len(tags)}): {', '.join(tags)}")
