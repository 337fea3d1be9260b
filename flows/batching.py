"""How a run's samples are cut into Prefect tasks: a cost model of the orchestrator, not of the
pixels (a Prefect task costs its worker ~0.3-0.45 CPU-s, measured)."""

from __future__ import annotations

import itertools


def make_batches(
    n_samples: int, n_workers: int, *, per_worker: int = 1, max_batch: int = 64
) -> list[range]:
    """Row ranges for coarse tasks: ``per_worker`` batches per worker, none over ``max_batch``.

    A Prefect task costs its worker ~0.3 CPU-s (measured), so small datasets get one batch per
    worker; large ones are cut into batches of at most ``max_batch`` samples, which lets a
    fast worker take over a slow one's remainder. The number of batches is a multiple of
    ``n_workers``: 5 equal batches on 2 workers would leave one idle for a fifth of the run.
    """
    if n_samples == 0:
        return []
    n_batches = max(n_workers * per_worker, -(-n_samples // max_batch))
    n_batches = -(-n_batches // n_workers) * n_workers
    n_batches = min(n_batches, n_samples)
    edges = [round(i * n_samples / n_batches) for i in range(n_batches + 1)]
    return [range(a, b) for a, b in itertools.pairwise(edges) if b > a]
