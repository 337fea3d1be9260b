"""A local cache of decoded arrays, so that a store version is decompressed once per machine.

Training reads every array it needs in bulk, and the same version is read again by every model,
seed and variant trained on it: decompressing Blosc/zstd runs at ~0.5 GB/s per core, a ``.npy``
from the page cache at several GB/s. A snapshot never changes, so a decoded copy keyed by
(store location, snapshot id, array, rows) can never be stale. Each file carries the CRC-32C of
each 8 MiB block of its bytes, checked on every load: a damaged cache file is discarded and
decoded again, never read back as data. Blocks are read and checked on a few threads (file reads
and the checksum release the GIL) into one numpy allocation, so that a load runs at about the
speed of ``np.load`` of the same array (bench/train.py).

The cache lives in ``$MER_PREP_CACHE`` (default ``~/.cache/mer-prep/arrays``; ``off`` disables
it). It holds decoded face images of licensed datasets, like the stores: ``rm -r`` it freely.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import google_crc32c
import numpy as np

CACHE_ENV = "MER_PREP_CACHE"
#: Bytes per checksummed block of a cache file.
BLOCK = 8 * 2**20
_THREADS = max(2, min(4, os.cpu_count() or 2))


def cache_dir() -> Path | None:
    """The cache folder, or None when ``$MER_PREP_CACHE`` is ``off``."""
    value = os.environ.get(CACHE_ENV, "")
    if value.lower() in ("off", "0", "no", "false"):
        return None
    return Path(value).expanduser() if value else Path.home() / ".cache" / "mer-prep" / "arrays"


def _key(location: str, snapshot: str, name: str, rows: np.ndarray) -> str:
    digest = hashlib.sha256(f"{location}|{snapshot}|{name}|".encode())
    digest.update(np.ascontiguousarray(rows, dtype=np.int64).tobytes())
    return digest.hexdigest()[:32]


def cached_array(location: str, snapshot: str, name: str, rows: np.ndarray,
                 read: Callable[[], np.ndarray]) -> np.ndarray:
    """``read()`` (an array of a store snapshot at ``rows``), from the cache when it holds it
    intact, else read and stored there (atomically: a temporary file renamed)."""
    folder = cache_dir()
    if folder is None:
        return read()
    path = folder / f"{_key(location, snapshot, name, rows)}.npy"
    checksums = path.with_suffix(".crc32c")
    try:
        loaded = _load(path, _parse_checksums(checksums.read_text()))
        if loaded is not None:
            return loaded
        path.unlink(missing_ok=True)  # damaged: decode again
    except (OSError, ValueError):
        pass
    values = read()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, suffix=".partial", delete=False) as handle:
            np.save(handle, values, allow_pickle=False)
            partial = Path(handle.name)
        content = np.fromfile(partial, dtype=np.uint8)
        crcs = [_crc(content[start:start + BLOCK]) for start in range(0, len(content), BLOCK)]
        checksums.write_text(f"{BLOCK} {len(content)} " + " ".join(map(str, crcs)))
        os.replace(partial, path)
    except OSError:  # a full or read-only disk: the read still succeeds, uncached
        pass
    return values


def _parse_checksums(text: str) -> tuple[int, int, list[int]]:
    """(block size, file size, CRC-32C per block) from a ``.crc32c`` file; ValueError when it
    is not one (a damaged file, or one of an older layout: the array is decoded again)."""
    block, size, *crcs = (int(word) for word in text.split())
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
        part = buffer[start:start + block]
        view, done = memoryview(part), 0
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
    read_header = (np.lib.format.read_array_header_1_0 if major == 1
                   else np.lib.format.read_array_header_2_0)
    shape, fortran, dtype = read_header(header)
    count = int(np.prod(shape, dtype=np.int64))
    values = buffer[header.tell():header.tell() + count * dtype.itemsize].view(dtype)
    return values.reshape(shape, order="F" if fortran else "C")
