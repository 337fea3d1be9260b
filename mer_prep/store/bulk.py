"""Bulk reads of whole samples: many one-sample chunks fetched concurrently and decoded on
threads, straight into one preallocated array.

zarr decodes chunk by chunk on its event-loop thread (~0.2-0.4 ms of overhead per chunk, and
one core for the decompression); a trainer that loads a fold reads hundreds of chunks at once.
Here the chunks' bytes come from the store in one concurrent round trip, and each is checked
against its CRC-32C, Blosc-decoded and copied into place on a thread pool (Blosc and the
checksum release the GIL). Only the store's own layout takes this path (one sample per chunk,
codecs ``bytes`` + Blosc + CRC-32C, as the writer makes them); anything else is read by zarr.
Blosc's internal codec does not matter here: each chunk's Blosc header names it (lz4 in versions
written now, zstd in older ones) and one decoder reads either.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import google_crc32c
import numpy as np
import zarr
from numcodecs import Blosc, blosc
from zarr.codecs import BloscCodec, BytesCodec, Crc32cCodec
from zarr.core.buffer import default_buffer_prototype
from zarr.core.sync import sync

from mer_prep.errors import CorruptDataError
from mer_prep.store.nodes import read_orthogonal
from mer_prep.store.schema import content_crc

# Blosc with its own thread pool takes a global lock per call; contexts of our threads do not.
blosc.use_threads = False
_DECODER = Blosc()
_THREADS = max(2, min(8, os.cpu_count() or 2))


def fast_path(array: zarr.Array) -> bool:
    """True when ``array`` has the store's layout: one sample per chunk, bytes + Blosc (any
    internal codec: lz4, zstd...) + CRC-32C."""
    codecs = array.metadata.codecs if hasattr(array.metadata, "codecs") else ()
    kinds = [type(c) for c in codecs]
    return (
        kinds == [BytesCodec, BloscCodec, Crc32cCodec]
        and tuple(array.chunks) == (1, *array.shape[1:])
        and array.dtype.byteorder in "=<|"
    )


def _chunk_key(array: zarr.Array, row: int) -> str:
    """The store key of the chunk of ``row`` (one sample per chunk: ``fast_path`` holds)."""
    return f"{array.path}/" + array.metadata.encode_chunk_key((row, *[0] * (array.ndim - 1)))


def check_content(values: np.ndarray, expected: int | None, what: str, row: int) -> None:
    """Raise ``CorruptDataError`` when a sample's decoded array is not the one the writer
    recorded at ``row`` (``expected``: its CRC-32C; None: not recorded). A chunk's own checksum
    proves it is intact, not that it is the chunk of this row: a damaged manifest can point a
    row at another row's chunk."""
    if expected is not None and content_crc(values) != expected:
        raise CorruptDataError(
            f"{what}: row {row} reads back another content than was written "
            f"(damaged store metadata?); run `mer-prep verify`"
        )


def read_rows(
    array: zarr.Array,
    rows: np.ndarray,
    *,
    what: str = "",
    expected: Sequence[int | None] | None = None,
) -> np.ndarray:
    """``array[rows]`` for rows along the first (sample) axis: (len(rows), *shape[1:]).

    Raises ``CorruptDataError`` naming ``what`` (array and sample) when a chunk fails its
    checksum, does not decode to the declared size, or (``expected``: the CRC-32C the writer
    recorded per row) is not the content written at its row.
    """
    rows = np.asarray(rows, dtype=np.int64)
    if not fast_path(array):
        read = read_orthogonal(array, rows)
        for i, crc in enumerate(expected or ()):
            check_content(read[i], crc, what or array.path, int(rows[i]))
        return read
    out = np.zeros((len(rows), *array.shape[1:]), dtype=array.dtype)
    if not len(rows):
        return out
    store, prototype = array.store, default_buffer_prototype()
    keys = [_chunk_key(array, int(row)) for row in rows]

    async def fetch_all():
        return await asyncio.gather(*(store.get(key, prototype) for key in keys))

    buffers = sync(fetch_all())
    nbytes = out[0].nbytes

    def decode(i: int) -> None:
        if buffers[i] is None:  # no chunk: the fill value, 0, unless the writer recorded another
            if expected is not None:  # content (a damaged manifest can lose a chunk's reference)
                check_content(out[i], expected[i], what or array.path, int(rows[i]))
            return
        data = buffers[i].to_bytes()
        payload, stored = data[:-4], int.from_bytes(data[-4:], "little")
        if len(data) < 4 or google_crc32c.value(payload) != stored:
            raise CorruptDataError(
                f"{what or array.path}: chunk of row {int(rows[i])} does not "
                f"match its CRC-32C checksum"
            )
        raw = _DECODER.decode(payload)
        if len(raw) != nbytes:
            raise CorruptDataError(
                f"{what or array.path}: chunk of row {int(rows[i])} decodes "
                f"to {len(raw)} bytes, not {nbytes}"
            )
        out[i] = np.frombuffer(raw, dtype=array.dtype).reshape(out.shape[1:])
        if expected is not None:
            check_content(out[i], expected[i], what or array.path, int(rows[i]))

    with ThreadPoolExecutor(min(_THREADS, len(rows))) as pool:
        list(pool.map(decode, range(len(rows))))
    return out
