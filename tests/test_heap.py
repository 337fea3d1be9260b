"""``train.heap.reused_heap``: freed training buffers stay in the heap (glibc), measured as the
kernel's minor page faults of a fresh process, and the thresholds come back afterwards."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from mer_prep.train.heap import heap_reuse_available

pytestmark = pytest.mark.skipif(not heap_reuse_available(), reason="needs glibc's mallopt")

# 40 x an 8 MiB buffer allocated, written and freed, as a training step's activations are:
# outside the block each one is a fresh mmap (2048 pages faulted in), inside it is the heap's
PROBE = """
import json, resource, numpy as np
from mer_prep.train.heap import reused_heap

def faults(rounds=40):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(rounds):
        buffer = np.empty(8 * 1024 * 1024, np.uint8)
        buffer.fill(1)
        del buffer
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

outside = faults()
with reused_heap() as applied:
    inside = faults()
after = faults()
print(json.dumps({"outside": outside, "inside": inside, "after": after, "applied": applied}))
"""


def test_freed_buffers_stay_in_the_heap_only_inside_the_block():
    # Dask's nanny starts its workers with this value, which fixes glibc's thresholds
    env = {**os.environ, "MALLOC_TRIM_THRESHOLD_": "65536"}
    out = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True
    )
    counts = json.loads(out.stdout)
    assert counts["applied"] is True
    # outside the block every buffer is a fresh mapping faulted in (how many faults a mapping
    # takes depends on the kernel's fault-around and huge pages: at least one per buffer)
    assert counts["outside"] >= 40
    # inside, the first buffer's pages are reused by the next 39; after it, fresh again
    assert counts["inside"] * 10 < counts["outside"]
    assert counts["after"] * 2 > counts["outside"]
