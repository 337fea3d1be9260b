"""The onset -> apex motion map that the flow baselines (STSTNet, OFF-ApexNet, HTNet) read.

Stores made with ``ststnet28`` (or ``htnet56``) hold ``flow`` (T, H, W, 2) and ``strain``
(T, H, W) with frame 0 the onset (zero flow) and the last frame the apex. The three papers feed
their networks the apex frame's u, v (and strain) as image channels; they saved them as images
scaled into a fixed range, which this module replaces by one scale per array fitted on each
fold's training rows (u and v share theirs, so their ratio, the motion's direction, is kept).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import torch
from pydantic import BaseModel
from torch import Tensor, nn

from mer_prep.models.layers import MerModel
from mer_prep.models.paper_input import PaperInput
from mer_prep.models.registry import (
    TORCH_EPS,
    ArrayNeed,
    ModelSpec,
    TrainingPreset,
    VariantPreset,
    family_spec,
)

Channel = Literal["u", "v", "strain"]
Normalise = Literal["fold_std", "none"]


class ApexFlowInput(nn.Module):
    """Stacks the apex frame's ``channels`` into a (B, C, H, W) float32 map.

    Input: ``flow`` (B, T, H, W, 2) in pixels of the stored grid and, when ``"strain"`` is a
    channel, ``strain`` (B, T, H, W), dimensionless; T >= 1, the last frame is used. With
    ``normalise="fold_std"`` u, v are divided by ``flow_scale`` and strain by ``strain_scale``
    (buffers, saved with the state dict), set by :meth:`fit` to the training rows' std.
    """

    def __init__(self, channels: tuple[Channel, ...], normalise: Normalise) -> None:
        super().__init__()
        if not channels or len(set(channels)) != len(channels):
            raise ValueError(f"channels must be distinct and non-empty, got {channels}")
        self.channels = channels
        self.normalise = normalise
        self.register_buffer("flow_scale", torch.tensor(1.0))
        self.register_buffer("strain_scale", torch.tensor(1.0))

    @property
    def uses_strain(self) -> bool:
        return "strain" in self.channels

    def fit(self, inputs: Mapping[str, Tensor]) -> None:
        """Set the scales from (a sample of) the training inputs; no-op without normalising."""
        if self.normalise == "none":
            return
        names = ("flow", "strain") if self.uses_strain else ("flow",)
        for name in names:
            values = inputs[name][:, -1].detach().to(torch.float64)
            std = float(values.std()) if values.numel() > 1 else 0.0
            getattr(self, f"{name}_scale").fill_(std if math.isfinite(std) and std > 1e-12 else 1.0)

    def forward(self, flow: Tensor, strain: Tensor | None) -> Tensor:
        apex = flow[:, -1].to(self.flow_scale.dtype) / self.flow_scale  # (B, H, W, 2)
        planes = {"u": apex[..., 0], "v": apex[..., 1]}
        if self.uses_strain:
            if strain is None:
                raise KeyError("this model needs input array 'strain'")
            planes["strain"] = strain[:, -1].to(self.strain_scale.dtype) / self.strain_scale
        return torch.stack([planes[name] for name in self.channels], dim=1)


class ApexFlowModel(MerModel):
    """Base of the flow baselines: ``self.input`` (an :class:`ApexFlowInput`, set by the
    subclass) turns the stored arrays into the apex map, and its scales are the fold's."""

    input: ApexFlowInput

    def apex_map(self, inputs: Mapping[str, Tensor]) -> Tensor:
        """The apex channels (B, C, H, W) from ``flow`` (and ``strain`` when a channel)."""
        strain = self._input(inputs, "strain") if self.input.uses_strain else None
        return self.input(self._input(inputs, "flow"), strain)

    def fit_input_statistics(self, inputs: Mapping[str, Tensor]) -> None:
        """The fold's scales of the channels read (:meth:`ApexFlowInput.fit`)."""
        self.input.fit(inputs)


def apex_flow_needs(config: object) -> tuple[ArrayNeed, ...]:
    """What STSTNet, OFF-ApexNet and HTNet read: onset and apex flow (the last frame is the apex),
    plus strain when ``config.channels`` names it."""
    flow = ArrayNeed(
        "flow",
        ("frame", "y", "x", "uv"),
        sizes=(("uv", 2),),
        minimum=(("frame", 2), ("y", 6), ("x", 6)),
    )
    if "strain" not in getattr(config, "channels", ()):
        return (flow,)
    return flow, ArrayNeed("strain", ("frame", "y", "x"), same_grid_as="flow")


@dataclass(frozen=True)
class ApexFlowPaper:
    """What a flow baseline's paper fixes: the model's registered ``name``, the ``size`` x
    ``size`` onset -> apex flow it was fed (``source``: where the paper states it), Adam's
    ``lr`` and the ``epochs``."""

    name: str
    size: int
    source: str
    lr: float
    epochs: int


@dataclass(frozen=True)
class ApexFlowBuilder:
    """A flow baseline's ``build``: ``model_cls(config, n_classes, height, width)`` sized from
    the stored ``flow`` shape (T, H, W, 2). Its ``__module__`` is the model's, as a build
    function's would be: the family that registers it (the registry's order of families)."""

    model_cls: Callable[[Any, int, int, int], nn.Module]

    def __post_init__(self) -> None:
        object.__setattr__(self, "__module__", self.model_cls.__module__)

    def __call__(
        self, config: Any, n_classes: int, shapes: Mapping[str, tuple[int, ...]]
    ) -> nn.Module:
        height, width = shapes["flow"][1:3]
        return self.model_cls(config, n_classes, height, width)


def apex_flow_spec(
    model_cls: Callable[[Any, int, int, int], nn.Module],
    config_cls: type[BaseModel],
    paper: ApexFlowPaper,
    description: str,
) -> ModelSpec:
    """The spec of the flow baseline ``paper.name`` (its module registers it): built by
    ``model_cls(config, n_classes, height, width)`` at the stored flow's height and width
    (:class:`ApexFlowBuilder`), it reads :func:`apex_flow_needs`, the paper fed it
    ``paper.size`` x ``paper.size`` onset -> apex flow, and it trains as the paper's code did
    (PyTorch / TensorFlow: Adam's eps 1e-8 in both) with ``paper.lr`` for ``paper.epochs``
    epochs of batches of 256, in one variant, ``plain``."""
    return family_spec(
        paper.name,
        config_cls,
        ApexFlowBuilder(model_cls),
        description=description,
        needs=apex_flow_needs,
        paper_input=PaperInput("flow", (paper.size, paper.size), min_frames=2, source=paper.source),
        training=TrainingPreset(lr=paper.lr, eps=TORCH_EPS, epochs=paper.epochs, batch_size=256),
        variants={"plain": VariantPreset(description="the paper's network and input")},
    )
