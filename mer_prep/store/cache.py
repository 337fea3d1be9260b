"""A local cache of decoded arrays, so that a store version is decompressed once per machine.

Training reads every array it needs in bulk, and the same version is read again by every model,
seed and variant trained on it: decompressing Blosc/zstd runs at ~0.5 GB/s per core, a ``.npy``
from the page cache at several GB/s. A snapshot never changes, so a decoded copy keyed by
(store location, snapshot id, array, rows) can never be stale. Each file carries the CRC-32C of
each 8 MiB block of its bytes, checked on every load: a damaged cache file is discarded and
decoded again, never read back as data. Blocks are read and checked on a few threads (file reads
and the checksum release the GIL) into one numpy allocation, so that a load runs at about the
speed of ``np.load`` of the same array (bench/train.py).

Each entry's sidecar (``.json``) names what it holds: store location, snapshot, array, a digest
of the rows, dtype and shape, next to the block checksums; a load checks all of them against
what was asked, so an entry of another store, array or row set (copied, renamed or forged with
matching checksums) is decoded again, never served.

The cache lives in ``$MER_PREP_CACHE`` (default ``~/.cache/mer-prep/arrays``; ``off`` disables
it), private to its user (folder 0700, files 0600): it holds decoded face images of licensed
datasets, like the stores; ``rm -r`` it freely. It stays under ``$MER_PREP_CACHE_MAX`` (bytes, or
with a K/M/G/T suffix; default 20G): the least recently used entries are evicted to make room,
an array larger than the whole budget is not cached, and a write that fails (a full disk)
leaves no partial file behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import google_crc32c
import numpy as np

from mer_prep.errors import InvalidArgumentError

CACHE_ENV = "MER_PREP_CACHE"
#: the most bytes the cache holds (``$MER_PREP_CACHE_MAX``; K/M/G/T suffixes)
CACHE_MAX_ENV = "MER_PREP_CACHE_MAX"
DEFAULT_MAX_BYTES = 20 * 2**30
#: Bytes per checksummed block of a cache file.
BLOCK = 8 * 2**20
#: a ``.partial`` file older than this is a killed writer's leftover
STALE_PARTIAL_S = 3600.0
_THREADS = max(2, min(4, os.cpu_count() or 2))
#: bytes of an entry besides its array's: the ``.npy`` header and the sidecar (a few hundred)
_OVERHEAD = 1024
_UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}


def cache_dir() -> Path | None:
    """The cache folder, or None when ``$MER_PREP_CACHE`` is ``off``."""
    value = os.environ.get(CACHE_ENV, "")
    if value.lower() in ("off", "0", "no", "false"):
        return None
    return Path(value).expanduser() if value else Path.home() / ".cache" / "mer-prep" / "arrays"


def max_bytes() -> int:
    """The cache's size budget in bytes, from ``$MER_PREP_CACHE_MAX`` (``InvalidArgumentError``
    naming the variable when it is not a size)."""
    text = os.environ.get(CACHE_MAX_ENV, "").strip().lower().removesuffix("b").removesuffix("i")
    if not text:
        return DEFAULT_MAX_BYTES
    unit = text[-1] if text[-1] in _UNITS and not text[-1].isdigit() else ""
    try:
        size = float(text[: len(text) - len(unit)]) * _UNITS[unit]
    except ValueError:
        size = -1.0
    if not size >= 0:
        raise InvalidArgumentError(
            f"${CACHE_MAX_ENV}={os.environ[CACHE_MAX_ENV]!r} is not a size "
            f"(bytes, or with K/M/G/T: 20G)"
        )
    return int(size)


def _rows_digest(rows: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(rows, dtype=np.int64).tobytes()).hexdigest()


def _key(location: str, snapshot: str, name: str, rows: np.ndarray) -> str:
    digest = hashlib.sha256(f"{location}|{snapshot}|{name}|".encode())
    digest.update(np.ascontiguousarray(rows, dtype=np.int64).tobytes())
    return digest.hexdigest()[:32]


def cached_array(
    location: str,
    snapshot: str,
    name: str,
    rows: np.ndarray,
    read: Callable[[], np.ndarray],
    *,
    dtype: np.dtype | str | None = None,
    shape: tuple[int, ...] | None = None,
) -> np.ndarray:
    """``read()`` (an array of a store snapshot at ``rows``), from the cache when it holds it
    intact and it is the entry of exactly this store, snapshot, array and rows (and, given,
    ``dtype`` and ``shape``), else read and stored there (atomically: temporary files renamed;
    the least recently used entries evicted to stay under ``max_bytes()``)."""
    folder = cache_dir()
    if folder is None:
        return read()
    identity = {
        "store": location,
        "snapshot": snapshot,
        "array": name,
        "rows": _rows_digest(rows),
        "n_rows": int(len(rows)),
    }
    path = folder / f"{_key(location, snapshot, name, rows)}.npy"
    sidecar = path.with_suffix(".json")
    try:
        header = json.loads(sidecar.read_text())
        loaded = (
            _load(path, _parse_checksums(header))
            if _same_entry(header, identity, dtype, shape)
            else None
        )
        if loaded is not None:
            os.utime(path)  # recently used: evicted last
            return loaded
        path.unlink(missing_ok=True)  # damaged, or not this entry: decode again
    except (OSError, ValueError, KeyError, TypeError):
        pass
    values = read()
    _store(folder, path, sidecar, identity, values)
    return values


def _same_entry(header: dict, identity: dict, dtype, shape) -> bool:
    """The sidecar ``header`` names exactly the entry asked for."""
    if any(header.get(key) != value for key, value in identity.items()):
        return False
    if dtype is not None and header.get("dtype") != np.dtype(dtype).str:
        return False
    if shape is not None and tuple(header.get("shape", ())) != tuple(shape):
        return False
    return tuple(header.get("shape", ()))[:1] == (identity["n_rows"],)


def _store(folder: Path, path: Path, sidecar: Path, identity: dict, values: np.ndarray) -> None:
    """Write ``values`` as the entry at ``path`` (never fatal: a full or read-only disk leaves
    the array uncached and no file behind)."""
    partials: list[Path] = []
    try:
        budget = max_bytes()
        if values.nbytes + _OVERHEAD > budget:
            return
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        _evict(folder, budget - values.nbytes - _OVERHEAD)
        with tempfile.NamedTemporaryFile(dir=folder, suffix=".partial", delete=False) as handle:
            partials.append(Path(handle.name))  # 0600, like every file it makes
            np.save(handle, values, allow_pickle=False)
        content = np.fromfile(partials[0], dtype=np.uint8)
        crcs = [_crc(content[start : start + BLOCK]) for start in range(0, len(content), BLOCK)]
        header = {
            **identity,
            "dtype": values.dtype.str,
            "shape": list(values.shape),
            "block": BLOCK,
            "size": int(len(content)),
            "crc32c": crcs,
        }
        with tempfile.NamedTemporaryFile(
            "w", dir=folder, suffix=".partial", delete=False
        ) as handle:
            partials.append(Path(handle.name))
            json.dump(header, handle)
        os.replace(partials[0], path)
        os.replace(partials[1], sidecar)
    except (OSError, InvalidArgumentError):
        for partial in partials:
            with contextlib.suppress(OSError):
                partial.unlink(missing_ok=True)


def _evict(folder: Path, room: int) -> None:
    """Delete the least recently used entries of ``folder`` until it holds at most ``room``
    bytes; also killed writers' ``.partial`` files and sidecars without their array."""
    now, entries, total = time.time(), [], 0
    for item in folder.iterdir():
        with contextlib.suppress(OSError):
            stat = item.stat()
            if item.suffix == ".partial":
                if now - stat.st_mtime > STALE_PARTIAL_S:
                    item.unlink()
                else:
                    total += stat.st_size
            elif item.suffix == ".npy":
                entries.append((stat.st_mtime, item, stat.st_size))
                total += stat.st_size
            elif item.suffix in (".json", ".crc32c"):
                if not item.with_suffix(".npy").exists():
                    item.unlink()
                else:
                    total += stat.st_size
    for _, item, size in sorted(entries, key=lambda entry: entry[0]):
        if total <= room:
            break
        for each in (item, item.with_suffix(".json"), item.with_suffix(".crc32c")):
            with contextlib.suppress(OSError):
                size += each.stat().st_size if each is not item else 0
                each.unlink()
        total -= size


def _parse_checksums(header: dict) -> tuple[int, int, list[int]]:
    """(block size, file size, CRC-32C per block) from an entry's sidecar; ValueError when it
    is not one (a damaged file, or one of an older layout: the array is decoded again)."""
    block, size, crcs = int(header["block"]), int(header["size"]), list(map(int, header["crc32c"]))
    if block <= 0 or len(crcs) != -(-size // block):
        raise ValueError("not a block checksum list")
    return block, size, crcs


def _crc(block: np.ndarray) -> int:
    """CRC-32C of a uint8 array, without copying it."""
    checksum = google_crc32c.Checksum()
    checksum.update(block)
    return int.from_bytes(checksum.digest(), "big")


def _load(path: Path, checksums: tuple[int, int, list[int]]) -> np.ndarray | None:
    """The ``.npy`` at ``path``, read into one writable allocation, or None when its bytes do
    not match ``checksums`` (block size, file size, CRC-32C per block)."""
    block, size, crcs = checksums
    if path.stat().st_size != size:
        return None
    buffer = np.empty(size, dtype=np.uint8)
    descriptor = os.open(path, os.O_RDONLY)

    def read_and_check(index: int) -> bool:
        start = index * block
        part = buffer[start : start + block]
        view, done = part.data, 0  # a writable memoryview of ``buffer``'s block
        while done < len(part):
            count = os.preadv(descriptor, [view[done:]], start + done)
            if count <= 0:
                return False
            done += count
        return _crc(part) == crcs[index]

    try:
        with ThreadPoolExecutor(min(_THREADS, len(crcs))) as pool:
            intact = all(pool.map(read_and_check, range(len(crcs))))
    finally:
        os.close(descriptor)
    if not intact:
        return None
    header = io.BytesIO(buffer[:4096].tobytes())
    major, _ = np.lib.format.read_magic(header)
    read_header = (
        np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
    )
    shape, fortran, dtype = read_header(header)
    count = int(np.prod(shape, dtype=np.int64))
    values = buffer[header.tell() : header.tell() + count * dtype.itemsize].view(dtype)
    return values.reshape(shape, order="F" if fortran else "C")
