"""Single bits flipped at random in files a commit wrote: every read either raises a
``MerPrepError`` or gives what was written (shared by the run-record and split digest tests)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from mer_prep.errors import MerPrepError

#: The folders of an Icechunk repository on disk that a commit writes to.
REPOSITORY_DIRS = ("snapshots", "manifests", "chunks", "refs", "transactions")


def repository_files(store: Path) -> dict[Path, bytes]:
    """Every file of the local repository at ``store`` and its bytes."""
    return {
        p: p.read_bytes()
        for sub in REPOSITORY_DIRS
        for p in (store / sub).rglob("*")
        if p.is_file()
    }


def flip_bits(
    files: list[Path], n: int, read: Callable[[], object], same: Callable[[object], bool]
) -> dict[str, int]:
    """Flip one random bit (seed 0) of ``files[k % len(files)]`` for each ``k < n``, ``read()``,
    and restore the file. Counts of the reads that raised a ``MerPrepError`` ("raised") and
    that gave back what ``same`` accepts ("same"); any other read fails the test, naming the
    file and the bit."""
    rng = np.random.default_rng(0)
    outcomes = {"raised": 0, "same": 0}
    for flip in range(n):
        path = files[flip % len(files)]
        original = path.read_bytes()
        damaged = bytearray(original)
        bit = int(rng.integers(0, 8 * len(original)))
        damaged[bit // 8] ^= 1 << (bit % 8)
        path.write_bytes(bytes(damaged))
        try:
            back = read()
        except MerPrepError:
            outcomes["raised"] += 1
        else:
            assert same(back), (path, bit)  # never silently other
            outcomes["same"] += 1
        finally:
            path.write_bytes(original)
    return outcomes
