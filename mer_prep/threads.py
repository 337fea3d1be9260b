"""Pin the native thread pools of a worker process to its share of the cores.

A Dask worker with one thread that lets OpenCV and Blosc each start a pool per core makes
N workers run N x cores threads on N cores; they then slow each other down.
"""

from __future__ import annotations

import cv2
import numcodecs.blosc


def pin_threads(n: int = 1) -> None:
    """Limit OpenCV's and Blosc's internal thread pools to ``n`` threads in this process."""
    cv2.setNumThreads(n)
    numcodecs.blosc.set_nthreads(n)
