"""Dataset adapters: read each micro-expression dataset exactly as its institution ships it.

    scan_dataset("casme2", "/data/CASME2", labels="megc3") -> DatasetScan

Every adapter turns the dataset into ``Sample`` records and ``Problem`` records (bad rows,
missing folders, unannotated folders, unknown labels) without aborting; only an annotation
file that cannot be read at all raises ``AnnotationError``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mer_prep.datasets.options import check_dataset, check_options
from mer_prep.errors import InvalidArgumentError
from mer_prep.labels import apply_scheme
from mer_prep.sample import DatasetScan

DATASETS: tuple[str, ...] = ("casme1", "casme2", "samm", "smic", "casme-sq", "megc2019")


def _adapter(name: str):
    # imported lazily so that `import mer_prep.datasets` stays cheap
    from mer_prep.datasets import casme1, casme2, casme_sq, megc2019, samm, smic

    return {"casme1": casme1, "casme2": casme2, "samm": samm, "smic": smic,
            "casme-sq": casme_sq, "megc2019": megc2019}[name]


def scan_dataset(name: str, root: Path | str | Mapping[str, Path | str], *, labels: str = "native",
                 **options: Any) -> DatasetScan:
    """Scan dataset ``name`` under ``root`` and apply label scheme ``labels``.

    root: the dataset folder; for ``megc2019`` a mapping ``{"smic", "casme2", "samm"} -> folder``.
    options: casme2 ``variant="raw"|"cropped"``; smic ``modality="HS"|"VIS"|"NIR"``; casme-sq
    ``kind="micro"|"macro"|"all"``; casme1 ``fixes=<yaml>``; ``annotations=<file>`` overrides
    the annotation file found under the root.
    """
    check_dataset(name)
    if (name == "megc2019") != isinstance(root, Mapping):
        raise InvalidArgumentError("megc2019 takes a mapping of roots; every other dataset one "
                                   "root folder")
    check_options(name, options)
    scan = _adapter(name).scan(root, **options)
    return apply_scheme(scan, labels)


__all__ = ["DATASETS", "scan_dataset", "DatasetScan"]
