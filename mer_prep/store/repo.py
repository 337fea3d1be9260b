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

import os
import time
from pathlib import Path

import icechunk as ic

# Local-filesystem storage warns on every open that concurrent commits are unsafe; the
# writer guards its commit with a compare-and-set on the branch tip instead.
ic.set_logs_filter(os.environ.get("MER_PREP_ICECHUNK_LOG", "icechunk=error"))

MAIN = "main"
S3_SCHEME = "s3://"


def is_remote(location: str | os.PathLike) -> bool:
    """True for an ``s3://bucket/prefix`` URL; False for a local path. Other URLs are refused."""
    text = os.fspath(location)
    if text.startswith(S3_SCHEME):
        return True
    if "://" in text:
        raise ValueError(f"unsupported store location {text!r}: a local path or s3://bucket/prefix")
    return False


def _s3_storage(url: str) -> ic.Storage:
    bucket, _, prefix = url.removeprefix(S3_SCHEME).partition("/")
    if not bucket:
        raise ValueError(f"store URL {url!r} names no bucket: s3://bucket/prefix")
    env = os.environ.get
    endpoint = env("AWS_ENDPOINT_URL_S3") or env("AWS_ENDPOINT_URL") or None
    return ic.s3_storage(
        bucket=bucket, prefix=prefix.strip("/") or None,
        region=env("AWS_REGION") or env("AWS_DEFAULT_REGION") or None,
        endpoint_url=endpoint, force_path_style=endpoint is not None,
        allow_http=bool(endpoint and endpoint.startswith("http://")),
        from_env=True)


def storage_for(location: str | os.PathLike) -> ic.Storage:
    """Icechunk storage for a store location (a local directory or ``s3://bucket/prefix``)."""
    if is_remote(location):
        return _s3_storage(os.fspath(location))
    return ic.local_filesystem_storage(str(Path(location).expanduser().resolve()))


def store_exists(location: str | os.PathLike) -> bool:
    if not is_remote(location) and not Path(location).expanduser().exists():
        return False
    return ic.Repository.exists(storage_for(location))


def open_repository(location: str | os.PathLike, *, create: bool = False) -> ic.Repository:
    """Open the repository at ``location``; create it when ``create`` and it does not exist."""
    storage = storage_for(location)
    if ic.Repository.exists(storage):
        return ic.Repository.open(storage)
    if not create:
        raise FileNotFoundError(f"no mer-prep store at {location}")
    if not is_remote(location):
        Path(location).expanduser().mkdir(parents=True, exist_ok=True)
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
