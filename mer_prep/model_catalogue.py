"""The model families by name, without PyTorch: what ``mer-prep models`` lists, and what
``mer-prep train`` checks a model, variant and device against before anything heavy starts
(PyTorch, Prefect, the store). ``mer_prep.models`` registers the PyTorch modules under exactly
these names, papers, recipes and variants (``tests/test_models.py`` holds the two equal).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from mer_prep.errors import InvalidArgumentError, UnknownModelError


@dataclass(frozen=True)
class CatalogueEntry:
    """One model family: its ``paper``, the built-in ``recipe`` whose store it trains on, its
    ``variants`` (name -> the recipe a variant reads instead, None: the model's own) and the
    ``default_variant``."""

    name: str
    paper: str
    recipe: str
    variants: Mapping[str, str | None]
    default_variant: str


def _entry(
    name: str, paper: str, recipe: str, variants: dict[str, str | None], default: str
) -> CatalogueEntry:
    return CatalogueEntry(name, paper, recipe, MappingProxyType(variants), default)


_HA3D_VARIANTS = {"plain": None, "augmented": "ha3d_aug"}

MODEL_CATALOGUE: Mapping[str, CatalogueEntry] = MappingProxyType(
    {
        entry.name: entry
        for entry in (
            _entry(
                "mbcc",
                "000 MBCC-CNN",
                "mbcc64",
                {"apex": None, "onset_apex": None, "difference": None, "frames": None},
                "apex",
            ),
            _entry(
                "broadbent", "001 Broadbent attention CNN", "broadbent64", {"plain": None}, "plain"
            ),
            *(
                _entry(name, "002 Hybrid Attention-3DNet", "ha3d", _HA3D_VARIANTS, "plain")
                for name in ("dp3dnet", "ha3dnet", "se3dnet", "ha3dsenet")
            ),
            _entry(
                "msres3d",
                "003 multi-scale 3D-ResNet50",
                "msres3d",
                {"plain": None, "strain": None, "augmented": "msres3d_aug"},
                "plain",
            ),
            _entry(
                "mer3dcnn",
                "004 DACWB-3DCNN",
                "dacwb3d",
                {"plain": None, "da": "dacwb3d_aug", "scb": None, "dacwb": "dacwb3d_aug"},
                "plain",
            ),
            _entry("ststnet", "STSTNet (Liong et al. 2019)", "ststnet28", {"plain": None}, "plain"),
            _entry(
                "offapexnet", "OFF-ApexNet (Gan et al. 2019)", "ststnet28", {"plain": None}, "plain"
            ),
            _entry("htnet", "HTNet (Wang et al. 2024)", "htnet56", {"plain": None}, "plain"),
        )
    }
)

# what a run can be asked to use: the CPU, or a CUDA device (all of them, or one by index)
_DEVICE = re.compile(r"cpu|cuda(:\d+)?")


def catalogue_entry(name: str, variant: str | None = None) -> CatalogueEntry:
    """The entry of model ``name`` (whose ``variant``, when given, must exist);
    ``UnknownModelError`` naming the valid models or variants otherwise."""
    entry = MODEL_CATALOGUE.get(name)
    if entry is None:
        raise UnknownModelError(
            f"unknown model {name!r}; valid models: {', '.join(MODEL_CATALOGUE)}"
        )
    if variant is not None and variant not in entry.variants:
        raise UnknownModelError(
            f"model {name} has no variant {variant!r}; valid: {', '.join(entry.variants)}"
        )
    return entry


def check_device_name(device: str | None) -> None:
    """``InvalidArgumentError`` unless ``device`` is None (the default), ``cpu``, ``cuda`` or
    ``cuda:N``: whether that device exists is PyTorch's to say, once it is loaded."""
    if device is not None and not _DEVICE.fullmatch(device):
        raise InvalidArgumentError(f"unknown device {device!r}: use cpu, cuda or cuda:N")
