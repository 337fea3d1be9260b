"""Housekeeping of a store: scratch branches of dead runs, and expiring old versions' chunks.

**Scratch branches.** A run writes its version on a branch ``writing-<version>-<nonce>-<owner>``
(``scratch_branch``) and deletes it when it commits or fails. A run that was killed (SIGKILL,
the OOM killer, a lost machine) leaves the branch behind, and the branch keeps the run's
layout snapshot alive. The owner part records who made it: a host id (hash of the host name
and the PID namespace), the boot id, the PID, the process start time (clock ticks since boot,
so a reused PID is told apart) and when the branch was made (Unix seconds).
The same owner part names the other branches a process makes for itself and deletes when
done (``is_owned``): a live training's lease ``reading-<version>-...`` (``mer_prep.store.lease``),
the private branch ``runs-init-...`` the ``runs`` branch is made from, and the ``gc-keep-...``
holds of a running gc. ``remove_abandoned_branches`` (called by every run before it starts
writing, and by ``mer-prep gc``) deletes such a branch only when it can prove its maker dead:

- same host and boot: the owner PID is gone, a zombie, or now another process (start time);
- same host, another boot: the machine restarted since;
- another host (or a branch without an owner part, from older versions): only when older
  than ``STALE_AFTER`` (3 days; no run of this project takes that long).

A live run's branch, here or elsewhere, is never touched.

**Garbage collection** (``collect_garbage``, ``mer-prep gc STORE [--keep N] [--tags]``): keeps
the ``keep`` newest versions' history, expires older snapshots (Icechunk's
``expire_snapshots``: tagged snapshots and branch tips stay readable), then deletes the chunks,
manifests and snapshots nothing reachable uses any more (``garbage_collect``). With
``delete_tags`` the version tags beyond the ``keep`` newest are deleted first, so their chunks
go too (Icechunk never lets a deleted tag name be created again); a tag whose snapshot would
not be expired (another branch's history reaches it) is left, since deleting it frees nothing.
Protected:

- branches other than ``main``, ``runs`` and the owned ones (a user's branch, say): their tips
  stay, and no snapshot that only such a branch reaches is expired (expiry stops at the oldest
  of them), so their history keeps every commit they made;
- the ``runs`` branch's tip, which holds every record (its older commits are history like
  ``main``'s, and do not hold back the expiry of versions committed after the first record);
- exactly what recorded training runs read: each run's snapshot (often an untagged one, e.g. a
  split committed after the version) is held by a ``gc-keep-`` branch while gc runs, so it is
  not expired, and the tag of its version is not deleted with ``delete_tags``
  (``GcReport.kept_for_runs``), so a run's inputs stay readable;
- what live trainings read: a lease branch's tip (``GcReport.kept_for_training``) and the tag of
  its version;
- live runs: objects newer than ``grace`` (10 minutes by default) or than the start of any
  live scratch branch are kept, since a run's workers write chunks that no snapshot references
  until it commits.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import socket
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import icechunk as ic
import zarr

from mer_prep.errors import InvalidArgumentError
from mer_prep.store.nodes import group_at
from mer_prep.store.repo import (
    MAIN,
    RUNS_BRANCH,
    RUNS_GROUP,
    Location,
    open_repository,
    version_tags,
)

SCRATCH_PREFIX = "writing-"
#: a live training's lease on the snapshot it reads (``mer_prep.store.lease``)
LEASE_PREFIX = "reading-"
#: the private branch ``runs`` is made from (``mer_prep.train.runs_store.ensure_runs_branch``)
RUNS_INIT_PREFIX = "runs-init-"
#: a snapshot a recorded run read, held by a branch while ``collect_garbage`` runs
KEEP_PREFIX = "gc-keep-"
_OWNED_PREFIXES = (SCRATCH_PREFIX, LEASE_PREFIX, RUNS_INIT_PREFIX, KEEP_PREFIX)
#: a scratch branch of another host (or without an owner part) older than this is abandoned
STALE_AFTER = dt.timedelta(days=3)
#: objects younger than this are never collected (a run may be about to reference them)
GRACE = dt.timedelta(minutes=10)

_NAME = re.compile(
    r"^(?:writing|reading|runs-init|gc-keep)-(?:(?P<version>v-[0-9a-f]{16})-)?"
    r"(?P<nonce>[0-9a-f]{8})"
    r"(?:-h(?P<host>[0-9a-f]{8})-b(?P<boot>[0-9a-f]{8})-p(?P<pid>\d+)-t(?P<ticks>\d+)"
    r"-e(?P<started>\d+))?$"
)


@dataclass(frozen=True)
class Owner:
    """The process that made a scratch branch."""

    host: str  # 8 hex digits: host name and PID namespace
    boot: str  # 8 hex digits of the kernel's boot id ("00000000" where there is none)
    pid: int
    ticks: int  # process start, clock ticks since boot (0: unknown)
    started: int  # Unix seconds when the branch was made (the run's start)


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def _host_id() -> str:
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        namespace = ""
    return hashlib.sha256(f"{socket.gethostname()}|{namespace}".encode()).hexdigest()[:8]


def _boot_id() -> str:
    return (_read("/proc/sys/kernel/random/boot_id").strip().replace("-", "") or "0" * 8)[:8]


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time in clock ticks) of a process from /proc, or None."""
    text = _read(f"/proc/{pid}/stat")
    if not text:
        return None
    fields = text.rsplit(")", 1)[-1].split()  # the command name may hold spaces and parens
    try:
        return fields[0], int(fields[19])
    except (IndexError, ValueError):
        return None


def this_process() -> Owner:
    """The owner record of this process, now."""
    stat = _proc_stat(os.getpid())
    return Owner(_host_id(), _boot_id(), os.getpid(), stat[1] if stat else 0, int(time.time()))


def owned_branch(prefix: str, version_id: str | None = None, owner: Owner | None = None) -> str:
    """A fresh name of a branch a process makes for itself (``prefix``: one of
    ``SCRATCH_PREFIX``, ``LEASE_PREFIX``, ``RUNS_INIT_PREFIX``, ``KEEP_PREFIX``), recording its
    owner (this process) so that ``remove_abandoned_branches`` can tell when it died."""
    owner = owner or this_process()
    return (
        f"{prefix}{version_id + '-' if version_id else ''}{uuid.uuid4().hex[:8]}"
        f"-h{owner.host}-b{owner.boot}-p{owner.pid}-t{owner.ticks}-e{owner.started}"
    )


def scratch_branch(version_id: str, owner: Owner | None = None) -> str:
    """A fresh scratch branch name for ``version_id``, owned by ``owner`` (this process)."""
    return owned_branch(SCRATCH_PREFIX, version_id, owner)


def is_scratch(branch: str) -> bool:
    return branch.startswith(SCRATCH_PREFIX)


def is_owned(branch: str) -> bool:
    """A branch some process made for itself and deletes when done (a run's scratch branch, a
    training's lease, ``runs`` in the making, a gc's hold on a snapshot)."""
    return branch.startswith(_OWNED_PREFIXES)


def branch_version(branch: str) -> str | None:
    """The version tag an owned branch names (a scratch branch's or a lease's), or None."""
    match = _NAME.match(branch)
    return match["version"] if match else None


def branch_owner(branch: str) -> Owner | None:
    """The owner recorded in an owned branch's name (None: no owner part, or not owned)."""
    match = _NAME.match(branch)
    if match is None or match["host"] is None:
        return None
    return Owner(
        match["host"], match["boot"], int(match["pid"]), int(match["ticks"]), int(match["started"])
    )


def _process_alive(pid: int, ticks: int) -> bool:
    """False only when process ``pid`` of this host and boot is provably not the owner."""
    if pid == os.getpid():
        return True
    stat = _proc_stat(pid)
    if stat is None:
        if Path("/proc/self/stat").exists():
            return False  # procfs works and has no such process
        try:  # no procfs: a signal-0 probe (cannot tell a reused PID)
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    state, start = stat
    if state in ("Z", "X"):  # exited, not yet reaped
        return False
    return not (ticks and start != ticks)


def _age(repo: ic.Repository, branch: str, owner: Owner | None, now: dt.datetime) -> dt.timedelta:
    if owner is not None:
        return now - dt.datetime.fromtimestamp(owner.started, dt.UTC)
    return now - repo.lookup_snapshot(repo.lookup_branch(branch)).written_at


def abandoned(
    repo: ic.Repository,
    branch: str,
    *,
    now: dt.datetime | None = None,
    stale_after: dt.timedelta = STALE_AFTER,
) -> str | None:
    """Why owned ``branch`` (``is_owned``) is provably abandoned, or None when its maker may
    still live."""
    if not is_owned(branch):
        return None
    now = now or dt.datetime.now(dt.UTC)
    owner, me = branch_owner(branch), this_process()
    if owner is not None and owner.host == me.host:
        if owner.boot != me.boot:
            return "its host restarted since the run began"
        if not _process_alive(owner.pid, owner.ticks):
            return f"its run (pid {owner.pid}) is gone"
        return None
    age = _age(repo, branch, owner, now)
    if age > stale_after:
        whose = "another host's run" if owner is not None else "a run that recorded no owner"
        return f"{whose}, started {age.total_seconds() / 3600:.0f} h ago"
    return None


def remove_abandoned_branches(
    repo: ic.Repository, *, stale_after: dt.timedelta = STALE_AFTER
) -> list[str]:
    """Delete every owned branch (scratch, lease, ``runs-init``, gc hold) whose maker is
    provably dead; the names deleted.

    Never fatal: a branch that cannot be checked or deleted is left for the next run."""
    removed = []
    for branch in sorted(repo.list_branches()):
        try:
            if abandoned(repo, branch, stale_after=stale_after):
                repo.delete_branch(branch)
                removed.append(branch)
        except ic.IcechunkError:
            continue
    return removed


# --- garbage collection ---------------------------------------------------------------------------


@dataclass
class GcReport:
    """What ``collect_garbage`` did."""

    removed_branches: list[str] = field(default_factory=list)
    deleted_tags: list[str] = field(default_factory=list)
    kept_versions: list[str] = field(default_factory=list)
    expired_snapshots: int = 0
    chunks_deleted: int = 0
    bytes_deleted: int = 0
    manifests_deleted: int = 0
    snapshots_deleted: int = 0
    #: version tags kept beyond ``keep`` because recorded training runs read them: tag -> run ids
    kept_for_runs: dict[str, list[str]] = field(default_factory=dict)
    #: live trainings' leases: version tag -> lease branches (their snapshots are kept)
    kept_for_training: dict[str, list[str]] = field(default_factory=dict)
    #: version tags ``delete_tags`` left because deleting them would free nothing: tag -> why
    kept_history: dict[str, str] = field(default_factory=dict)


def snapshots_read_by_runs(repo: ic.Repository) -> dict[str, tuple[str, list[str]]]:
    """snapshot id -> (version tag, run ids) of every training run recorded on the ``runs``
    branch (records without a snapshot, or no ``runs`` branch: none)."""
    if RUNS_BRANCH not in repo.list_branches():
        return {}
    root = zarr.open_group(repo.readonly_session(branch=RUNS_BRANCH).store, mode="r")
    if RUNS_GROUP not in root:
        return {}
    pins: dict[str, tuple[str, list[str]]] = {}
    for name, member in group_at(root, RUNS_GROUP).members():
        read = dict(member.attrs).get("store") if isinstance(member, zarr.Group) else None
        if isinstance(read, dict) and read.get("snapshot_id"):
            version, runs = pins.setdefault(read["snapshot_id"], (read.get("version_id", ""), []))
            runs.append(name)
    return pins


def _ancestry(repo: ic.Repository, **ref) -> dict[str, dt.datetime]:
    return {info.id: info.written_at for info in repo.ancestry(**ref)}


def _live_leases(repo: ic.Repository) -> dict[str, list[str]]:
    """version tag -> lease branches of the live trainings reading it (dead ones were removed)."""
    leases: dict[str, list[str]] = {}
    for branch in sorted(repo.list_branches()):
        if branch.startswith(LEASE_PREFIX):
            leases.setdefault(branch_version(branch) or "", []).append(branch)
    return leases


def _hold(repo: ic.Repository, snapshots) -> list[str]:
    """A branch at each of ``snapshots`` that still exists, so that expiry keeps them (branch
    tips are never expired); the branches made. Owned: a killed gc's holds are removed."""
    held = []
    for snapshot in sorted(snapshots):
        branch = owned_branch(KEEP_PREFIX)
        try:
            repo.create_branch(branch, snapshot)
        except ic.IcechunkError:  # expired by an older version of this code: nothing to keep
            continue
        held.append(branch)
    return held


def collect_garbage(
    location: Location,
    *,
    keep: int = 3,
    delete_tags: bool = False,
    grace: dt.timedelta = GRACE,
    now: dt.datetime | None = None,
) -> GcReport:
    """Remove dead runs' scratch branches, expire history older than the ``keep`` newest
    versions (and, with ``delete_tags``, the older version tags), and delete the objects nothing
    reachable uses. See the module docstring for what is protected."""
    if keep < 1:
        raise InvalidArgumentError(f"keep must be at least 1 (the newest version), got {keep}")
    repo = open_repository(location)
    now = now or dt.datetime.now(dt.UTC)
    report = GcReport(removed_branches=remove_abandoned_branches(repo))
    tags = version_tags(repo)
    report.kept_versions = tags[:keep]
    pins = snapshots_read_by_runs(repo)
    read_by: dict[str, list[str]] = {}
    for version, runs in pins.values():
        read_by.setdefault(version, []).extend(runs)
    report.kept_for_training = _live_leases(repo)

    # Expire history older than the oldest kept version...
    older_than = repo.lookup_snapshot(repo.lookup_tag(tags[:keep][-1])).written_at if tags else now
    branches = repo.list_branches()
    shared = _ancestry(repo, branch=MAIN) if MAIN in branches else {}
    for tag in repo.list_tags():
        shared.update(_ancestry(repo, tag=tag))
    collect_before = now - grace
    for branch in sorted(branches - {MAIN, RUNS_BRANCH}):
        if is_scratch(branch):  # a live run (dead ones were removed): keep what it writes
            owner = branch_owner(branch)
            began = (
                dt.datetime.fromtimestamp(owner.started, dt.UTC)
                if owner
                else repo.lookup_snapshot(repo.lookup_branch(branch)).written_at
            )
            collect_before = min(collect_before, began - dt.timedelta(minutes=1))
        elif is_owned(branch):  # a lease or a hold: its tip is kept, it has no history
            continue
        # ...but never a snapshot that only another branch (a user's, a live run) reaches. The
        # ``runs`` branch is not one of them: its tip holds every record, and what the records
        # read is held below, exactly, instead of all history since the first record.
        own = {
            sid: when for sid, when in _ancestry(repo, branch=branch).items() if sid not in shared
        }
        if own:
            older_than = min(older_than, min(own.values()))
    if delete_tags:
        for tag in tags[keep:]:
            if tag in read_by:
                report.kept_for_runs[tag] = sorted(read_by[tag])
                continue
            if tag in report.kept_for_training:
                continue
            if repo.lookup_snapshot(repo.lookup_tag(tag)).written_at >= older_than:
                report.kept_history[tag] = "another branch's history reaches it"
                continue  # deleting it would free nothing: its snapshot is not expired
            repo.delete_tag(tag)
            report.deleted_tags.append(tag)
    held = _hold(repo, pins)  # ...nor a snapshot a recorded training run read
    try:
        report.expired_snapshots = len(repo.expire_snapshots(older_than))
        summary = repo.garbage_collect(min(collect_before, now))
    finally:
        for branch in held:
            try:
                repo.delete_branch(branch)
            except ic.IcechunkError:  # left for the next gc (``abandoned``)
                pass
    report.chunks_deleted = summary.chunks_deleted
    report.bytes_deleted = summary.bytes_deleted
    report.manifests_deleted = summary.manifests_deleted
    report.snapshots_deleted = summary.snapshots_deleted
    return report
