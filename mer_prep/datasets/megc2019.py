"""MEGC 2019 composite: SMIC (HS), CASME II and SAMM scanned together.

Samples keep their own dataset name and dataset-qualified subject, so the composite's
subjects never collide (``smic/s01``, ``casme2/sub01``, ``samm/006``). Under the ``megc3``
label scheme it is the 442-clip, 68-subject MEGC 2019 set.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from mer_prep.datasets import casme2, samm, smic
from mer_prep.sample import DatasetScan

PARTS: tuple[str, ...] = ("smic", "casme2", "samm")


def scan(
    roots: Mapping[str, Path | str], *, modality: str = "HS", variant: str = "raw"
) -> DatasetScan:
    """Scan the three parts; ``roots`` maps ``smic``/``casme2``/``samm`` to their dataset roots."""
    missing = [p for p in PARTS if p not in roots]
    if missing:
        raise ValueError(f"megc2019 needs roots for {list(PARTS)}; missing {missing}")
    parts = (
        smic.scan(roots["smic"], modality=modality),
        casme2.scan(roots["casme2"], variant=variant),
        samm.scan(roots["samm"]),
    )
    return DatasetScan(
        [s for p in parts for s in p.samples],
        [q for p in parts for q in p.problems],
        [c for p in parts for c in p.corrections],
    )
