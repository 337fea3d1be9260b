"""``train.gpu_slots``: concurrent folds of one worker process with several GPUs each get a GPU
of their own; other devices are left as asked."""

from __future__ import annotations

import threading
import time

import pytest

from mer_prep.errors import InvalidArgumentError
from mer_prep.train.gpu_slots import GpuSlots, claimed_device


def test_devices_other_than_a_plain_cuda_or_a_single_gpu_are_kept():
    for device in ("cpu", "cuda:1"):
        with claimed_device(device, count=lambda: 4) as got:
            assert got == device
    with claimed_device("cuda", count=lambda: 1) as got:
        assert got == "cuda"
    with claimed_device("cuda", count=lambda: 0) as got:  # PyTorch sees none: its own error
        assert got == "cuda"


def test_concurrent_folds_get_distinct_gpus_and_wait_when_all_are_held():
    pool = GpuSlots(2)
    got: list[str] = []
    inside = threading.Barrier(2)
    release = threading.Event()

    def fold():
        with claimed_device("cuda", count=lambda: 2, pool=pool) as device:
            got.append(device)
            inside.wait(timeout=10)
            release.wait(timeout=10)

    threads = [threading.Thread(target=fold) for _ in range(2)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 10
    while len(got) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sorted(got) == ["cuda:0", "cuda:1"] and pool.held == {0, 1}
    with pytest.raises(TimeoutError, match="all 2 GPUs"):
        pool.claim(timeout=0.05)  # a third fold waits while both are held
    release.set()
    for t in threads:
        t.join(timeout=10)
    assert pool.held == frozenset()
    # a fold that fails still gives its GPU back; the next one takes the lowest free index
    with pytest.raises(RuntimeError), claimed_device("cuda", count=lambda: 2, pool=pool):
        raise RuntimeError("fold failed")
    assert pool.held == frozenset() and pool.claim() == 0 and pool.claim() == 1


def test_a_pool_needs_a_gpu():
    with pytest.raises(InvalidArgumentError, match="one GPU at least"):
        GpuSlots(0)
