"""Coarse batches: every row once, in order, no batch over the cap, balanced across workers."""

import pytest

from flows.batching import make_batches


@pytest.mark.parametrize(
    "n_samples, n_workers", [(1, 2), (5, 2), (50, 1), (50, 2), (255, 2), (255, 3), (1000, 4)]
)
def test_batches_cover_every_row_once_and_balance_the_workers(n_samples, n_workers):
    batches = make_batches(n_samples, n_workers, max_batch=64)
    rows = [row for batch in batches for row in batch]
    assert rows == list(range(n_samples))
    assert max(len(b) for b in batches) <= 64
    assert max(len(b) for b in batches) - min(len(b) for b in batches) <= 1
    if n_samples >= n_workers:
        # whole rounds: every worker gets the same number of batches
        assert len(batches) % n_workers == 0 and len(batches) >= n_workers


def test_small_datasets_get_one_batch_per_worker_and_large_ones_are_cut():
    assert [len(b) for b in make_batches(50, 2)] == [25, 25]
    assert len(make_batches(300, 2, max_batch=64)) == 6  # 5 would leave one worker idle 1/5
    assert make_batches(0, 2) == []
