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

Speed (issue 22): without batch norm the three streams run as one 16-filter convolution whose
weights are the streams' own, concatenated at each call (the streams' output channels are
independent, so this is the same map, and the state dict keeps the three streams' names), on a
channels-last map, max-pooled before the ReLU (max and ReLU commute: ReLU is monotone and every
3x3 window holds a real pixel, so values and gradients are the paper's order's). On this
project's two-core CPU one training step of batch 256 took about 2.5x less time; outputs match
the three separate streams to float rounding (``tests/test_ststnet_fused.py``). With batch
norm the streams run one by one, as written.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

from mer_prep.models import apex_flow
from mer_prep.models.apex_flow import ApexFlowInput, ApexFlowModel, Channel, Normalise
from mer_prep.models.layers import Init, apply_init, conv_out
from mer_prep.models.registry import register_model


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

    def fused_streams(self, x: Tensor) -> Tensor:
        """The three streams (conv 3x3, ReLU, max-pool 3/3) as one convolution of their
        concatenated filters on a channels-last map, pooled before the ReLU: (B, 16, H', W')."""
        convs = [stream[0] for stream in self.streams]
        maps = torch.conv2d(
            x.contiguous(memory_format=torch.channels_last),
            torch.cat([conv.weight for conv in convs]),
            torch.cat([conv.bias for conv in convs]),
            padding=1,
        )
        return torch.relu(torch.max_pool2d(maps, 3, 3, 1))

    def forward(self, inputs: Mapping[str, Tensor]) -> Tensor:
        x = self.apex_map(inputs)  # (B, C, H, W)
        features = (
            torch.cat([stream(x) for stream in self.streams], dim=1)
            if self.config.batchnorm
            else self.fused_streams(x)
        )
        return self.classifier(self.dropout(self.pool(features).flatten(1)))


PAPER = apex_flow.ApexFlowPaper("ststnet", 28, "STSTNet Sec. III: 28x28x3", lr=5e-5, epochs=500)
DESCRIPTION = "Three shallow streams (3, 5, 8 filters) over apex strain, u, v."
register_model(apex_flow.apex_flow_spec(STSTNet, STSTNetConfig, PAPER, DESCRIPTION))
