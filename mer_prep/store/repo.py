"""Where a store lives: opening the Icechunk repository behind a store location.

A store location is a local directory (``stores/casme2/ha3d``, ``~/x``) or an S3 URL
``s3://bucket/prefix`` on AWS or any S3-compatible object store (MinIO, Ceph, moto, ...).
S3 settings come from the standard AWS environment:

- ``AWS_ENDPOINT_URL_S3`` or else ``AWS_ENDPOINT_URL``: endpoint of an S3-compatible store
  (unset: AWS). With an endpoint, requests use path-style addressing, and plain HTTP is
  allowed when the endpoint is ``http://...``;
- ``AWS_REGION`` or else ``AWS_DEFAULT_REGION``: the region (unset: the SDK's default);
- credentials through the AWS SDK's default chain, read where the store is opened (a Dask
  worker included) and never stored in pickled sessions: ``AWS_ACCESS_KEY_ID`` +
  ``AWS_SECRET_ACCESS_KEY`` (+ ``AWS_SESSION_TOKEN``), else ``AWS_PROFILE`` / shared config
  files, else instance or container roles.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import icechunk as ic

from mer_prep.errors import (
    CorruptDataError,
    InvalidArgumentError,
    StoreLocationError,
    StoreNotFoundError,
)

# The branch names are the store format's, re-exported here. The runs branch holds the
# trainers' run records, one group per run; a run's attrs name the snapshot it read
# (``store.snapshot_id``), which ``mer-prep gc`` therefore never expires.
from mer_prep.store.layout import MAIN, RUNS_BRANCH, RUNS_GROUP  # noqa: F401

# Local-filesystem storage warns on every open that concurrent commits are unsafe; the
# writer guards its commit with a compare-and-set on the branch tip instead.
ic.set_logs_filter(os.environ.get("MER_PREP_ICECHUNK_LOG", "icechunk=error"))

#: What an Icechunk repository on local disk consists of.
_REPOSITORY_ENTRIES = {
    "chunks",
    "manifests",
    "refs",
    "snapshots",
    "transactions",
    "config.yaml",
    "repo",
    "overwritten",
}
S3_SCHEME = "s3://"


@dataclass(frozen=True)
class StoreLocation:
    """Where a store lives, parsed once at the boundary and used by every layer.

    ``url`` is ``s3://bucket/prefix`` (no trailing slash) or an absolute local path (``~``
    expanded, relative paths resolved against ``base`` or the working directory). Two spellings
    of one place give equal locations. ``str(location)`` is its ``url``.
    """

    url: str

    @classmethod
    def parse(
        cls, value: str | os.PathLike | StoreLocation, *, base: str | os.PathLike | None = None
    ) -> StoreLocation:
        """A location from a path or URL; ``base``: the directory a relative path is under."""
        if isinstance(value, StoreLocation):
            return value
        text = os.fspath(value)
        if text.startswith(S3_SCHEME):
            bucket, _, prefix = text.removeprefix(S3_SCHEME).partition("/")
            if not bucket:
                raise StoreLocationError(f"store URL {text!r} names no bucket: s3://bucket/prefix")
            prefix = prefix.strip("/")
            return cls(f"{S3_SCHEME}{bucket}/{prefix}" if prefix else f"{S3_SCHEME}{bucket}")
        if "://" in text:
            raise StoreLocationError(
                f"unsupported store location {text!r}: a local path or s3://bucket/prefix"
            )
        path = Path(text).expanduser()
        if not path.is_absolute():
            path = Path(base or Path.cwd()).expanduser() / path
        return cls(os.path.normpath(path))

    @property
    def is_remote(self) -> bool:
        return self.url.startswith(S3_SCHEME)

    @property
    def path(self) -> Path:
        """The local directory (a ``StoreLocationError`` for an S3 location)."""
        if self.is_remote:
            raise StoreLocationError(f"{self.url} is not a local directory")
        return Path(self.url)

    def storage(self) -> ic.Storage:
        """Icechunk storage of this location."""
        if self.is_remote:
            return _s3_storage(self.url)
        return ic.local_filesystem_storage(self.url)

    def __str__(self) -> str:
        return self.url


Location = str | os.PathLike | StoreLocation


def is_remote(location: Location) -> bool:
    """True for an ``s3://bucket/prefix`` URL; False for a local path. Other URLs are refused."""
    return StoreLocation.parse(location).is_remote


def _s3_storage(url: str) -> ic.Storage:
    bucket, _, prefix = url.removeprefix(S3_SCHEME).partition("/")
    env = os.environ.get
    endpoint = env("AWS_ENDPOINT_URL_S3") or env("AWS_ENDPOINT_URL") or None
    return ic.s3_storage(
        bucket=bucket,
        prefix=prefix or None,
        region=env("AWS_REGION") or env("AWS_DEFAULT_REGION") or None,
        endpoint_url=endpoint,
        force_path_style=endpoint is not None,
        allow_http=bool(endpoint and endpoint.startswith("http://")),
        from_env=True,
    )


def storage_for(location: Location) -> ic.Storage:
    """Icechunk storage for a store location (a local directory or ``s3://bucket/prefix``)."""
    return StoreLocation.parse(location).storage()


def store_exists(location: Location) -> bool:
    """True when an Icechunk repository exists at ``location`` (creates nothing)."""
    where = StoreLocation.parse(location)
    if not where.is_remote:
        if not where.path.exists():
            return False
        if not where.path.is_dir():  # Icechunk panics (a Rust backtrace) on a regular file
            raise InvalidArgumentError(f"store location {where} is a file, not a store directory")
    try:
        return ic.Repository.exists(where.storage())
    except ic.IcechunkError as error:
        raise CorruptDataError(
            f"store {where}: its branch references do not read ("
            f"{_last_line(error)}): corrupt metadata"
        ) from None


def _last_line(error: Exception) -> str:
    """The innermost cause of an Icechunk error (its message is a multi-line report)."""
    lines = [line.strip(" |`->x") for line in str(error).splitlines() if line.strip(" |`->x")]
    return lines[-1] if lines else type(error).__name__


def open_repository(location: Location, *, create: bool = False) -> ic.Repository:
    """Open the repository at ``location``; create it when ``create`` and it does not exist."""
    where = StoreLocation.parse(location)
    if store_exists(where):  # checks the directory first: a read never creates one
        return ic.Repository.open(where.storage())
    if not create:
        raise StoreNotFoundError(f"no mer-prep store at {where}")
    storage = where.storage()
    if not where.is_remote:
        foreign = (
            {p.name for p in where.path.iterdir()} - _REPOSITORY_ENTRIES
            if where.path.is_dir()
            else set()
        )
        if foreign:  # (a repository's own entries: another run is creating it right now)
            raise StoreLocationError(
                f"{where} is a folder with files in it but no mer-prep "
                f"store: give an empty or new folder for the store"
            )
        # private: a store holds decoded faces of licensed datasets (a folder that existed
        # keeps the mode its owner gave it)
        where.path.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        return ic.Repository.create(storage)
    except ic.IcechunkError:
        # Another run created this store at the same moment: use its repository (the version
        # commit's compare-and-set then decides between the two runs, with a clear error).
        deadline = time.monotonic() + 10
        while not ic.Repository.exists(storage):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
        return ic.Repository.open(storage)


def version_tags(repo: ic.Repository) -> list[str]:
    """Version tags (``v-...``), newest first."""
    tags = [t for t in repo.list_tags() if t.startswith("v-")]
    when = {t: repo.lookup_snapshot(repo.lookup_tag(t)).written_at for t in tags}
    return sorted(tags, key=lambda t: when[t], reverse=True)


@dataclass(frozen=True)
class NewStore:
    """What a run adds on local disk when it creates a store: the directory, or its entries
    when the directory existed (``before`` holds them; None when the run made the directory)."""

    location: StoreLocation
    before: frozenset[str] | None
    created: bool = False

    @classmethod
    def before_create(cls, location: StoreLocation) -> NewStore:
        if location.is_remote or store_exists(location):
            return cls(location, None, created=False)
        path = location.path
        return cls(location, frozenset(os.listdir(path)) if path.is_dir() else None, created=True)

    def remove_if_unused(self, repo: ic.Repository) -> None:
        """Delete the repository this run created, unless anything was committed to it or
        another run has a branch on it (a concurrent creation of the same store)."""
        if not self.created:
            return
        try:
            if set(repo.list_branches()) != {MAIN} or len(list(repo.ancestry(branch=MAIN))) > 1:
                return
            path = self.location.path
            if self.before is None:
                shutil.rmtree(path)
            else:  # a directory the user gave: only the entries this run added
                for name in set(os.listdir(path)) - self.before:
                    target = path / name
                    shutil.rmtree(target) if target.is_dir() else target.unlink()
        except (OSError, ic.IcechunkError) as error:
            logging.getLogger(__name__).warning(
                "could not remove the unused new store %s: %s", self.location, error
            )
