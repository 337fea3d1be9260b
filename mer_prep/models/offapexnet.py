"""OFF-ApexNet (Gan, Liong, Yau, Huang, Tan, Signal Processing: Image Communication 2019):
two CNN streams over the onset -> apex horizontal (u) and vertical (v) optical flow.

Network, as read from the paper: u and v, each a 28x28 single-channel map, go into separate
streams of two convolution + max-pool stages (5x5 kernels, 6 then 16 filters, ReLU, 2x2
max-pool; LeNet-like); the two streams' features are flattened and concatenated, then two
fully connected layers of 1024 units (ReLU, dropout 0.5 after each) and a dense layer give the
K logits. ~2.7 M parameters at 28x28 with 3 classes (2,664,475).

Deviations and choices (the paper leaves them open or they differ here):
- same padding in both convolutions (28 -> 14 -> 7), so a stream gives 16x7x7 features; the
  paper's figure does not settle valid vs same padding;
- u and v are floats divided by the training fold's std (one scale for both, keeping the
  flow's direction), where the paper normalised flow images to a fixed range;
- the store is ``ststnet28`` read without its strain (the paper's u, v are that recipe's flow:
  TV-L1, onset -> apex, aligned face at 28x28); no separate recipe;
- PyTorch's default initialisation (the paper, in TensorFlow, states none).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor

from mer_prep.models.apex_flow import (
    ApexFlowInput,
    ApexFlowModel,
    ApexFlowPaper,
    Normalise,
    apex_flow_spec,
)
from mer_prep.models.layers import Init, apply_init, classifier_head, conv_pool_stream
from mer_prep.models.registry import register_model


class OFFApexNetConfig(BaseModel):
    """Switches of OFF-ApexNet (defaults: the paper's reading above)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    filters: tuple[int, int] = (6, 16)
    kernel: int = Field(default=5, ge=1)
    dense: int = Field(default=1024, ge=1)
    dropout: float = Field(default=0.5, ge=0.0, lt=1.0)
    normalise: Normalise = "fold_std"
    init: Init = "torch"


class OFFApexNet(ApexFlowModel):
    """OFF-ApexNet.

    Input: ``flow`` float32 (B, T, H, W, 2), the last frame the apex (recipe ``ststnet28``:
    T = 2, H = W = 28); ``strain`` is not read. Output: logits (B, K).
    """

    def __init__(self, config: OFFApexNetConfig, n_classes: int, height: int, width: int) -> None:
        super().__init__()
        if height < 4 or width < 4:
            raise ValueError(f"OFF-ApexNet needs maps of at least 4x4 pixels, got {height}x{width}")
        self.config = config
        self.input = ApexFlowInput(("u", "v"), config.normalise)
        self.stream_u = conv_pool_stream(config.filters, config.kernel)
        self.stream_v = conv_pool_stream(config.filters, config.kernel)
        features = 2 * config.filters[1] * (height // 4) * (width // 4)
        self.classifier = classifier_head(
            features, n_classes, (config.dense, config.dense), config.dropout
        )
        apply_init(self, config.init)

    def forward(self, inputs: Mapping[str, Tensor]) -> Tensor:
        uv = self.apex_map(inputs)  # (B, 2, H, W): u and v only
        features = torch.cat([self.stream_u(uv[:, :1]), self.stream_v(uv[:, 1:])], dim=1)
        return self.classifier(features)


PAPER = ApexFlowPaper("offapexnet", 28, "OFF-ApexNet: 28x28 u and v", lr=1e-4, epochs=3000)
DESCRIPTION = "Two CNN streams over apex u and v, two dense 1024 layers."
register_model(apex_flow_spec(OFFApexNet, OFFApexNetConfig, PAPER, DESCRIPTION))
