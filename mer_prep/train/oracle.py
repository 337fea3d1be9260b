"""A test-oracle run beside its clean twin: the runs of the same model, variant, config,
training settings (all but the selection), split, folds, store version and seeds, whose epochs
were chosen without the test subject.

``--selection test_oracle`` picks each fold's epoch on its test subject, the way the field's
published numbers were obtained; its record is LEAKY (``RunHeader.leak_label``) and is always
shown next to the clean runs it inflates:

    twin = clean_twin(oracle_group, list_runs(store))   # None: no clean run of those seeds
    print(twin_text(oracle_group, twin))

Of the clean selections, ``last_epoch`` is preferred: it trains on the same subjects along the
same trajectory (the oracle keeps the best test epoch of that trajectory, so per fold it scores
at least as high); a ``validation`` run holds some training subjects out. Needs no PyTorch.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from mer_prep.train.records import RunRecord
from mer_prep.train.seeds import SeedGroup

#: clean selections, the preferred twin first
CLEAN_SELECTIONS = ("last_epoch", "validation")
#: training settings that may differ between an oracle run and its twin
_SELECTION_KEYS = ("selection", "validation_metric")


def twin_key(record: RunRecord) -> str:
    """What an oracle run shares with its clean twin, as a JSON string: everything that says
    what was trained and on which folds, except the seed and the selection."""
    training = {k: v for k, v in (record.training or {}).items() if k not in _SELECTION_KEYS}
    return json.dumps(
        [
            record.model,
            record.variant,
            record.config,
            training,
            record.unit,
            record.split,
            record.leaky,
            record.n_folds,
            record.store.get("version_id"),
            record.store.get("class_names"),
        ],
        sort_keys=True,
        default=str,
    )


def _folds(record: RunRecord) -> tuple[str, ...]:
    return tuple(f.name for f in record.folds)


def clean_twin(oracle: SeedGroup, records: Iterable[RunRecord]) -> SeedGroup | None:
    """The clean runs of ``oracle``'s model, settings, folds and seeds among ``records`` (the
    latest run of each seed; ``last_epoch`` runs if every seed has one, else ``validation``
    runs), or None when some seed has no clean run."""
    first = oracle.records[0]
    key, folds = twin_key(first), _folds(first)
    candidates = [
        r for r in records if not r.leak_label and twin_key(r) == key and _folds(r) == folds
    ]
    for selection in CLEAN_SELECTIONS:
        latest: dict[int, RunRecord] = {}
        for record in sorted(candidates, key=lambda r: (r.created, r.run_id)):
            if (record.training or {}).get("selection") == selection:
                latest[int(record.seed)] = record
        if all(seed in latest for seed in oracle.seeds):
            chosen = tuple(latest[seed] for seed in oracle.seeds)
            ids = {r.group_id for r in chosen}
            return SeedGroup(ids.pop() if len(ids) == 1 else None, chosen)
    return None


def twin_text(oracle: SeedGroup, twin: SeedGroup | None, make_clean: str) -> str:
    """The oracle group's LEAKY label and, beside it, its clean twin's mean +- sd and the
    difference (oracle minus clean); without a twin, that none exists and ``make_clean``, the
    command that trains one."""
    first = oracle.records[0]
    lines = [
        f"{first.leak_label}: each fold's epoch was chosen on its test subject (the published "
        f"numbers' protocol); its scores are not a held-out estimate"
    ]
    if twin is None:
        lines.append(
            f"no clean run of the same model, settings, folds and seeds "
            f"({' '.join(map(str, oracle.seeds))}) on this store; make one with: {make_clean}"
        )
        return "\n".join(lines)
    selection = (twin.records[0].training or {}).get("selection")
    width = max(len("test oracle"), len(f"clean ({selection})"))
    for label, group in ((f"clean ({selection})", twin), ("test oracle", oracle)):
        lines.append(
            f"  {label:<{width}}  {group.seeds_text}: UF1 {group.mean_sd('uf1')}  "
            f"UAR {group.mean_sd('uar')}  runs {' '.join(r.run_id for r in group.records)}"
        )
    lines.append(
        f"  {'difference':<{width}}  oracle - clean: "
        f"UF1 {oracle.stat('uf1')[0] - twin.stat('uf1')[0]:+.3f}  "
        f"UAR {oracle.stat('uar')[0] - twin.stat('uar')[0]:+.3f}"
    )
    return "\n".join(lines)
