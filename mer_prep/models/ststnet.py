"""STSTNet (Liong, Gan, See, Khor, Huang, FG 2019): a shallow triple-stream CNN over the
onset -> apex optical strain, u and v at 28x28 (the MEGC 2019 composite baseline, reported at
UF1 0.7353 / UAR 0.7605 on 442 clips of SMIC, CASME II and SAMM, LOSO, 3 classes).

Network, as the paper describes it: the 28x28x3 map (strain, u, v) goes into three streams,
each one 3x3 convolution (same padding) with 3, 5 and 8 filters, ReLU and a 3x3 max-pool of
stride 3 (same padding: 28 -> 10); the 16 maps are concatenated, 2x2 average-pooled
(10 -> 5), flattened (400 features) and one dense layer gives the K logits. 1,651 parameters
with 3 classes.

Deviations and choices (the paper leaves them open or they differ here):
- the paper's flow images were saved as 8-bit pictures; here u, v and strain are floats,
  divided by the training fold's std (``normalise="fold_std"``, see :mod:`apex_flow`);
- batch normalisation after each convolution (present in later public re-implementations,
  not in the paper's text) is a switch, off by default;
- PyTorch's default initialisation (the authors worked in PyTorch, no init is stated).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

from mer_prep.models.apex_flow import (
    ApexFlowInput,
    ApexFlowModel,
    Channel,
    Normalise,
    apex_flow_spec,
)
from mer_prep.models.layers import Init, apply_init, conv_out
from mer_prep.models.registry import (
    register_model,
)


class STSTNetConfig(BaseModel):
    """Switches of STSTNet (defaults: the paper's network).

    channels: the apex-frame planes stacked as input channels, in order (the paper: strain,
    u, v); filters: the streams' filter counts; batchnorm: batch norm after each convolution.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    channels: tuple[Channel, ...] = ("strain", "u", "v")
    filters: tuple[int, ...] = (3, 5, 8)
    batchnorm: bool = False
    normalise: Normalise = "fold_std"
    init: Init = "torch"
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)


def _stream(channels: int, filters: int, batchnorm: bool) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(channels, filters, 3, padding=1)]
    if batchnorm:
        layers.append(nn.BatchNorm2d(filters))
    layers += [nn.ReLU(inplace=True), nn.MaxPool2d(3, stride=3, padding=1)]
    return nn.Sequential(*layers)


class STSTNet(ApexFlowModel):
    """STSTNet.

    Input: ``flow`` float32 (B, T, H, W, 2) and, with ``"strain"`` among the channels,
    ``strain`` (B, T, H, W); the last frame is the apex (recipe ``ststnet28``: T = 2,
    H = W = 28). Output: logits (B, K).
    """

    def __init__(self, config: STSTNetConfig, n_classes: int, height: int, width: int) -> None:
        super().__init__()
        if height < 6 or width < 6:
            raise ValueError(f"STSTNet needs maps of at least 6x6 pixels, got {height}x{width}")
        self.config = config
        self.input = ApexFlowInput(config.channels, config.normalise)
        self.streams = nn.ModuleList(
            _stream(len(config.channels), n, config.batchnorm) for n in config.filters
        )
        pooled_h = conv_out(height, 3, 3, 1) // 2
        pooled_w = conv_out(width, 3, 3, 1) // 2
        self.pool = nn.AvgPool2d(2)
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(sum(config.filters) * pooled_h * pooled_w, n_classes)
        apply_init(self, config.init)

    def forward(self, inputs: Mapping[str, Tensor]) -> Tensor:
        x = self.apex_map(inputs)  # (B, C, H, W)
        features = torch.cat([stream(x) for stream in self.streams], dim=1)
        return self.classifier(self.dropout(self.pool(features).flatten(1)))


def build_ststnet(
    config: STSTNetConfig, n_classes: int, shapes: Mapping[str, tuple[int, ...]]
) -> STSTNet:
    """STSTNet sized from the stored ``flow`` shape (T, H, W, 2)."""
    height, width = shapes["flow"][1:3]
    return STSTNet(config, n_classes, height, width)


register_model(
    apex_flow_spec(
        "ststnet",
        STSTNetConfig,
        build_ststnet,
        description="Three shallow streams (3, 5, 8 filters) over apex strain, u, v.",
        size=28,
        source="STSTNet Sec. III: 28x28x3",
        lr=5e-5,
        epochs=500,
    )
)
