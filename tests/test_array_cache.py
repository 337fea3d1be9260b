"""The decoded-array cache (``mer_prep.store.cache``): an entry is served only for exactly what
it holds, the cache stays under its size budget (least recently used evicted), a failed write
leaves no file, and everything in it is private to its user."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import time

import numpy as np
import pytest

from mer_prep.errors import InvalidArgumentError
from mer_prep.store import cache as array_cache
from mer_prep.store.cache import cached_array

ROWS = np.arange(4, dtype=np.int64)


@pytest.fixture
def folder(tmp_path, monkeypatch):
    path = tmp_path / "cache"
    monkeypatch.setenv("MER_PREP_CACHE", str(path))
    monkeypatch.delenv("MER_PREP_CACHE_MAX", raising=False)
    return path


def _reader(values: np.ndarray, calls: list):
    def read() -> np.ndarray:
        calls.append(1)
        return values.copy()

    return read


def test_an_entry_of_another_store_or_array_is_never_served(folder):
    """Issue: another store's or array's entry (copied over, or forged with checksums that
    match its bytes) was served silently: the sidecar names what it holds, and is checked."""
    ours = np.full((4, 8), 1.0, np.float32)
    theirs = np.full((4, 8), 2.0, np.float32)
    calls: list = []
    cached_array("/stores/a", "SNAP", "frames", ROWS, _reader(theirs, calls))
    (entry,) = folder.glob("*.npy")
    target = array_cache._key("/stores/b", "SNAP", "frames", ROWS)
    for item in list(folder.iterdir()):  # the other store's entry, files and all, under our key
        shutil.copy(item, folder / f"{target}{item.suffix}")
    got = cached_array("/stores/b", "SNAP", "frames", ROWS, _reader(ours, calls))
    assert calls == [1, 1] and np.array_equal(got, ours)
    assert np.array_equal(
        cached_array("/stores/b", "SNAP", "frames", ROWS, _reader(ours, calls)), ours
    ) and calls == [1, 1]
    # another array's entry under this array's key, and a dtype or shape other than asked
    other = array_cache._key("/stores/a", "SNAP", "landmarks", ROWS)
    for item in list(folder.glob(f"{entry.stem}.*")):
        shutil.copy(item, folder / f"{other}{item.suffix}")
    got = cached_array("/stores/a", "SNAP", "landmarks", ROWS, _reader(ours, calls))
    assert calls == [1, 1, 1] and np.array_equal(got, ours)
    cached_array(
        "/stores/a", "SNAP", "frames", ROWS, _reader(theirs, calls), dtype=np.float16, shape=(4, 8)
    )
    assert calls == [1, 1, 1, 1]


def test_the_cache_stays_under_its_budget_evicting_the_least_recently_used(folder, monkeypatch):
    """Issue: the cache grew until the disk was full."""
    arrays = {
        name: np.random.default_rng(k).random((4, 256)) for k, name in enumerate(("a", "b", "c"))
    }  # 8 KiB each
    monkeypatch.setenv("MER_PREP_CACHE_MAX", str(3 * 8 * 2**10 + 1024))
    calls: list = []
    for name in ("a", "b"):
        cached_array("/s", "SNAP", name, ROWS, _reader(arrays[name], calls))
        time.sleep(0.02)
    cached_array("/s", "SNAP", "a", ROWS, _reader(arrays["a"], calls))  # a used again: b is LRU
    assert calls == [1, 1]
    time.sleep(0.02)
    cached_array("/s", "SNAP", "c", ROWS, _reader(arrays["c"], calls))
    held = sum(p.stat().st_size for p in folder.iterdir())
    assert held <= array_cache.max_bytes() and len(list(folder.glob("*.npy"))) == 2
    cached_array("/s", "SNAP", "a", ROWS, _reader(arrays["a"], calls))
    cached_array("/s", "SNAP", "c", ROWS, _reader(arrays["c"], calls))
    assert calls == [1, 1, 1]  # a and c still cached
    cached_array("/s", "SNAP", "b", ROWS, _reader(arrays["b"], calls))
    assert calls == [1, 1, 1, 1]  # b was evicted
    monkeypatch.setenv("MER_PREP_CACHE_MAX", "1K")  # an array over the whole budget: uncached
    assert array_cache.max_bytes() == 1024
    cached_array("/s", "SNAP", "big", ROWS, _reader(arrays["a"], calls))
    assert not list(folder.glob(f"{array_cache._key('/s', 'SNAP', 'big', ROWS)}.*"))
    monkeypatch.setenv("MER_PREP_CACHE_MAX", "lots")
    with pytest.raises(InvalidArgumentError, match="MER_PREP_CACHE_MAX"):
        array_cache.max_bytes()


def test_a_failed_write_leaves_no_partial_file(folder):
    """Issue: on a full disk each run left a `.partial` file until the disk was at 100 %. A
    file size limit (RLIMIT_FSIZE, as a full disk: the write fails with an OSError) stands in
    for the full disk; the read itself still succeeds."""
    script = """
import resource, signal
import numpy as np
from mer_prep.store.cache import cached_array
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails with EFBIG instead
resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))
values = np.ones((4, 65536), np.float32)  # 1 MiB: more than a file may hold
got = cached_array("/s", "SNAP", "frames", np.arange(4), lambda: values)
assert np.array_equal(got, values)
"""
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "MER_PREP_CACHE": str(folder)},
    )
    assert done.returncode == 0, done.stderr
    assert folder.is_dir() and list(folder.iterdir()) == []


def test_the_cache_is_private_to_its_user(folder):
    """Issue: the folder was 0755 and the checksum files 0644 (decoded faces of licensed
    data)."""
    old = os.umask(0o022)
    try:
        cached_array("/s", "SNAP", "frames", ROWS, lambda: np.zeros((4, 2), np.float32))
    finally:
        os.umask(old)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    modes = {p.suffix: stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir()}
    assert len(modes) == 2 and set(modes.values()) == {0o600}, modes
