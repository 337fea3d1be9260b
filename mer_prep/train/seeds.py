"""Seeds of one run: ``--seeds N`` trains the same folds with seeds ``seed, seed + 1, ...``, one
record per seed, all naming one run group (``RunHeader.group_id``); :class:`SeedGroup` holds
their pooled UF1 / UAR and the mean +- sample sd over seeds.

    group = run_seeds(request, lambda one, group_id: run_request(one, group_id=group_id))
    print(group.text())

A group is ranked by its mean, never by its best seed. A single-seed run records no group id
(it is grouped with other runs by its configuration, as runs were before groups) and its group
says "1 seed". Needs no PyTorch (the flow's process runs this).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import uuid
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from mer_prep.train.records import RunRecord
from mer_prep.train.request import TrainRequest


def new_group_id(model: str) -> str:
    """``group-<UTC time>-<model>-<6 hex>``: unique across concurrent runs."""
    now = dt.datetime.now(dt.UTC)
    return f"group-{now:%Y%m%dT%H%M%SZ}-{model}-{uuid.uuid4().hex[:6]}"


def seed_requests(request: TrainRequest) -> list[TrainRequest]:
    """One request per seed of ``request`` (``seed``, ``seed + 1``, ... ``request.seeds`` of
    them), each a single-seed run of the same settings."""
    return [
        request.model_copy(update={"seed": request.seed + i, "seeds": 1})
        for i in range(request.seeds)
    ]


@dataclasses.dataclass(frozen=True)
class SeedGroup:
    """The records of one run group, in seed order; ``group_id`` None for a single run that
    named no group."""

    group_id: str | None
    records: tuple[RunRecord, ...]

    @property
    def seeds(self) -> tuple[int, ...]:
        return tuple(int(r.seed) for r in self.records)

    @property
    def uf1(self) -> np.ndarray:
        """(n_seeds,) float64 pooled UF1 of each seed's record."""
        return np.array([r.uf1 for r in self.records], dtype=np.float64)

    @property
    def uar(self) -> np.ndarray:
        """(n_seeds,) float64 pooled UAR of each seed's record."""
        return np.array([r.uar for r in self.records], dtype=np.float64)

    def stat(self, metric: str) -> tuple[float, float | None]:
        """(mean, sample sd (ddof 1), None with one seed) of ``uf1`` or ``uar`` over seeds."""
        values = self.uf1 if metric == "uf1" else self.uar
        sd = float(np.std(values, ddof=1)) if len(values) > 1 else None
        return float(np.mean(values)), sd

    @property
    def seeds_text(self) -> str:
        n = len(self.records)
        return f"{n} seed{'s' if n != 1 else ''}"

    def mean_sd(self, metric: str) -> str:
        """``0.712 ± 0.031`` (one seed: ``0.712``)."""
        mean, sd = self.stat(metric)
        return _fmt(mean) if sd is None else f"{_fmt(mean)} ± {_fmt(sd)}"

    def text(self) -> str:
        """Each seed's pooled UF1 / UAR, then the mean +- sd over the seeds."""
        first = self.records[0]
        label = f"  {first.leak_label}" if first.leak_label else ""
        lines = [f"group {self.group_id or first.run_id}: {first.name}, {self.seeds_text}{label}"]
        lines += [
            f"  seed {r.seed:<6} UF1 {_fmt(r.uf1)}  UAR {_fmt(r.uar)}  run {r.run_id}"
            for r in self.records
        ]
        if len(self.records) == 1:  # no spread to give: say so rather than print "± -"
            lines.append("  1 seed: no sd (--seeds N trains the same folds with N seeds)")
        else:
            lines.append(
                f"  mean ± sd over {self.seeds_text}: UF1 {self.mean_sd('uf1')}  "
                f"UAR {self.mean_sd('uar')}"
            )
        return "\n".join(lines)


def _fmt(value: float) -> str:
    return "-" if not math.isfinite(value) else f"{value:.3f}"


def run_seeds(
    request: TrainRequest, run_one: Callable[[TrainRequest, str | None], RunRecord]
) -> SeedGroup:
    """Run ``request`` once per seed with ``run_one(single_seed_request, group_id)`` (one run
    each, in seed order); the group id is None for a single seed."""
    group_id = new_group_id(request.model) if request.seeds > 1 else None
    records = tuple(run_one(one, group_id) for one in seed_requests(request))
    return SeedGroup(group_id, records)


def groups_of(records: Iterable[RunRecord]) -> list[SeedGroup]:
    """``records`` in groups: those naming a group id together (in seed order), every other
    record a group of its own; in the order of each group's first record."""
    grouped: dict[str, list[RunRecord]] = {}
    for record in records:
        grouped.setdefault(record.group_id or f"run:{record.run_id}", []).append(record)
    return [
        SeedGroup(members[0].group_id, tuple(sorted(members, key=lambda r: int(r.seed))))
        for members in grouped.values()
    ]


def train_seeds(request: TrainRequest, **options: Any) -> SeedGroup:
    """Every seed of ``request`` trained in this process (``plan.run_request`` with
    ``options``: ``store``, ``report``, ``save``...), one record each, one group."""
    from mer_prep.train.plan import run_request  # PyTorch: only when training here

    return run_seeds(request, lambda one, group_id: run_request(one, group_id=group_id, **options))
