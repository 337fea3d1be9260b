"""Paper 001: Broadbent's attention CNN over single 64x64 frames (frames as samples).

conv 16 / 32 / 64 (3x3 same, ReLU, batch norm, 2x2 max-pool each) -> self-attention over the
8x8 positions (Q, K, V = 1x1 convs to 16 channels, softmax(Q K^T / sqrt(16)), output A V) ->
global average pooling to 16 -> dense 128 ReLU -> dropout 0.5 -> dense K. ~30 k parameters.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

from mer_prep.models.layers import Init, MerModel, apply_init, classifier_head
from mer_prep.models.paper_input import PaperInput
from mer_prep.models.registry import (
    VariantPreset,
    family_spec,
    frames_need,
    keras_preset,
    register_model,
)


class BroadbentConfig(BaseModel):
    """Switches of the Broadbent CNN (defaults: the choices of docs/models.md, paper 001).

    batchnorm: ``"keras"`` uses Keras' BatchNormalization defaults (momentum 0.99, i.e. torch
    momentum 0.01, eps 1e-3); ``"torch"`` uses PyTorch's (momentum 0.1, eps 1e-5).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    init: Init = "keras"
    batchnorm: Literal["keras", "torch"] = "keras"
    filters: tuple[int, ...] = (16, 32, 64)
    attention_channels: int = Field(default=16, ge=1)
    dense: int = Field(default=128, ge=1)
    dropout: float = Field(default=0.5, ge=0.0, lt=1.0)


class SelfAttention2d(nn.Module):
    """Dot-product self-attention over the H*W positions of a feature map.

    Input ``(B, C, H, W)``; output ``(B, D, H, W)`` with D = ``channels``: Q, K, V are 1x1 convs
    to D channels, A = softmax(Q K^T / sqrt(D)) over positions, output A V.
    """

    def __init__(self, in_channels: int, channels: int) -> None:
        super().__init__()
        self.query = nn.Conv2d(in_channels, channels, 1)
        self.key = nn.Conv2d(in_channels, channels, 1)
        self.value = nn.Conv2d(in_channels, channels, 1)
        self.scale = channels**-0.5

    def forward(self, x: Tensor) -> Tensor:
        b, _, h, w = x.shape
        q = self.query(x).flatten(2).transpose(1, 2)  # (B, N, D)
        k = self.key(x).flatten(2)  # (B, D, N)
        v = self.value(x).flatten(2).transpose(1, 2)  # (B, N, D)
        attention = torch.softmax(q @ k * self.scale, dim=-1)
        return (attention @ v).transpose(1, 2).reshape(b, -1, h, w)


class Broadbent(MerModel):
    """Broadbent attention CNN.

    Input: ``frames`` float32 (B, 1, H, W) in [0, 1] (one frame per row: the engine expands each
    clip into its frames). Output: logits (B, K).
    """

    def __init__(self, config: BroadbentConfig, n_classes: int) -> None:
        super().__init__()
        self.config = config
        momentum, eps = (0.01, 1e-3) if config.batchnorm == "keras" else (0.1, 1e-5)
        layers: list[nn.Module] = []
        channels = 1
        for filters in config.filters:
            layers += [
                nn.Conv2d(channels, filters, 3, padding=1),
                nn.ReLU(inplace=True),
                nn.BatchNorm2d(filters, eps=eps, momentum=momentum),
                nn.MaxPool2d(2),
            ]
            channels = filters
        self.features = nn.Sequential(*layers)
        self.attention = SelfAttention2d(channels, config.attention_channels)
        self.classifier = classifier_head(
            config.attention_channels, n_classes, config.dense, config.dropout
        )
        apply_init(self, config.init)

    def forward(self, inputs: Mapping[str, Tensor]) -> Tensor:
        frames = self._input(inputs, "frames")
        if frames.shape[1] != 1:
            raise ValueError(
                f"Broadbent takes one frame per row (B, 1, H, W), got "
                f"{tuple(frames.shape)}: expand the clips into frames (unit='frame')"
            )
        attended = self.attention(self.features(frames))
        return self.classifier(attended.mean(dim=(2, 3)))


def build_broadbent(
    config: BroadbentConfig, n_classes: int, shapes: Mapping[str, tuple[int, ...]]
) -> Broadbent:
    """Broadbent CNN; global pooling makes it independent of the frame size."""
    height, width = shapes["frames"][-2:]
    minimum = 2 ** len(config.filters)
    if height < minimum or width < minimum:
        raise ValueError(
            f"Broadbent with {len(config.filters)} pooling stages needs frames of at "
            f"least {minimum}x{minimum}, got {height}x{width}"
        )
    return Broadbent(config, n_classes)


register_model(
    family_spec(
        "broadbent",
        BroadbentConfig,
        build_broadbent,
        description="2-D CNN with Q/K/V self-attention over single frames.",
        needs=lambda config: (frames_need(min_size=2 ** len(config.filters)),),
        unit_of=lambda _config: "frame",
        paper_input=PaperInput("frames", (64, 64), source="001 Sec. III-D, Table II"),
        training=keras_preset(epochs=25),
        variants={
            "plain": VariantPreset(
                augmented=True,
                description="the recipe's own brightness/contrast copies, frames as samples",
            )
        },
    )
)
