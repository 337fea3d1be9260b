"""Where a store lives: opening the Icechunk repository behind a store path."""

from __future__ import annotations

import os
from pathlib import Path

import icechunk as ic

# Local-filesystem storage warns on every open that concurrent commits are unsafe; the
# writer guards its commit with a compare-and-set on the branch tip instead.
ic.set_logs_filter(os.environ.get("MER_PREP_ICECHUNK_LOG", "icechunk=error"))

MAIN = "main"


def storage_for(path: str | os.PathLike) -> ic.Storage:
    """Icechunk storage for a store path (a local directory)."""
    return ic.local_filesystem_storage(str(Path(path).expanduser().resolve()))


def store_exists(path: str | os.PathLike) -> bool:
    return Path(path).expanduser().exists() and ic.Repository.exists(storage_for(path))


def open_repository(path: str | os.PathLike, *, create: bool = False) -> ic.Repository:
    """Open the repository at ``path``; create it when ``create`` and it does not exist."""
    storage = storage_for(path)
    if ic.Repository.exists(storage):
        return ic.Repository.open(storage)
    if not create:
        raise FileNotFoundError(f"no mer-prep store at {path}")
    Path(path).expanduser().mkdir(parents=True, exist_ok=True)
    return ic.Repository.create(storage)


def version_tags(repo: ic.Repository) -> list[str]:
    """Version tags (``v-...``), newest first."""
    tags = [t for t in repo.list_tags() if t.startswith("v-")]
    when = {t: repo.lookup_snapshot(repo.lookup_tag(t)).written_at for t in tags}
    return sorted(tags, key=lambda t: when[t], reverse=True)
