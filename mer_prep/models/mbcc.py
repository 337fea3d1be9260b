"""Paper 000: MBCC-CNN, two parallel 2-D branches (3x3 and 5x5 kernels) over 64x64 frames.

Each branch: conv 32 (same, ReLU) -> 2x2 max-pool -> conv 64 (same, ReLU) -> 2x2 max-pool ->
flatten; the two are concatenated -> dense 128 ReLU -> dropout 0.5 -> dense K (logits). At
64x64 that is 16,384 features per branch and ~4.3 M parameters (4,265,989 with 5 classes).

What is built is the dual-branch network the paper specifies layer by layer (its Sec. 3.4 and
Fig. 7, and the 3x3 / 5x5 kernels of the text before its experiments). What is NOT built: the
residual module (Module 1), the network-in-network module (Module 2), the tree-like module
(Module 3), the cross-connections between branches and the pooling before the classifier that
the title, abstract and Sec. 3.3 name. The paper describes them in prose only, with no layer
counts, filter numbers, kernel sizes (except Module 3's 3x3) or wiring, so any version of them
would be this project's invention under the paper's name; docs/models.md has the reasoning.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import Tensor

from mer_prep.models.layers import Init, MerModel, apply_init, classifier_head, conv_pool_stream
from mer_prep.models.paper_input import PaperInput
from mer_prep.models.registry import (
    ArrayNeed,
    VariantPreset,
    family_spec,
    frames_need,
    keras_preset,
    register_model,
)


class MBCCConfig(BaseModel):
    """Switches of the MBCC-CNN (defaults: the paper's reading, see docs/models.md).

    inputs: ``"apex"`` the apex frame into both branches; ``"onset_apex"`` onset into the 3x3
    branch, apex into the 5x5 branch; ``"difference"`` apex - onset into both.
    unit: ``"clip"`` one row per clip; ``"frame"`` frames as samples (the engine expands the
    clip into its frames after the onset, since the neutral onset frame would be trained with
    the clip's emotion label; on ``mbcc64`` that is the apex alone; the model gets ``frames``
    (B, 1, H, W) and feeds that frame to both branches).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    inputs: Literal["apex", "onset_apex", "difference"] = "apex"
    unit: Literal["clip", "frame"] = "clip"
    init: Init = "keras"
    filters: tuple[int, int] = (32, 64)
    dense: int = Field(default=128, ge=1)
    dropout: float = Field(default=0.5, ge=0.0, lt=1.0)

    @model_validator(mode="after")
    def _one_frame_for_frame_unit(self) -> MBCCConfig:
        if self.unit == "frame" and self.inputs != "apex":
            raise ValueError(
                f"unit='frame' feeds one frame to both branches: inputs must be "
                f"'apex', not {self.inputs!r}"
            )
        return self


class MBCC(MerModel):
    """MBCC-CNN.

    Input: ``frames`` float32 (B, T, H, W) in [0, 1]; frame 0 is the onset and frame 1 the
    apex (recipe ``mbcc64``: T = 2); with ``unit="frame"`` T is 1. Output: logits (B, K).
    """

    def __init__(self, config: MBCCConfig, n_classes: int, height: int, width: int) -> None:
        super().__init__()
        if height < 4 or width < 4:
            raise ValueError(f"MBCC needs frames of at least 4x4 pixels, got {height}x{width}")
        self.config = config
        self.branch3 = conv_pool_stream(config.filters, 3)
        self.branch5 = conv_pool_stream(config.filters, 5)
        features = 2 * config.filters[1] * (height // 4) * (width // 4)
        self.classifier = classifier_head(features, n_classes, config.dense, config.dropout)
        apply_init(self, config.init)

    def _branch_inputs(self, frames: Tensor) -> tuple[Tensor, Tensor]:
        if self.config.unit == "frame":
            if frames.shape[1] != 1:
                raise ValueError(
                    f"MBCC with unit='frame' takes one frame per row (B, 1, H, W), "
                    f"got {tuple(frames.shape)}: expand the clips into frames"
                )
            return frames, frames
        apex = frames[:, 1:2] if frames.shape[1] > 1 else frames[:, :1]
        if self.config.inputs == "apex":
            return apex, apex
        if frames.shape[1] < 2:
            raise ValueError(
                f"MBCC inputs={self.config.inputs!r} needs onset and apex frames, "
                f"got {tuple(frames.shape)}"
            )
        onset = frames[:, :1]
        if self.config.inputs == "onset_apex":
            return onset, apex
        return apex - onset, apex - onset

    def forward(self, inputs: Mapping[str, Tensor]) -> Tensor:
        small, large = self._branch_inputs(self._input(inputs, "frames"))
        features = torch.cat([self.branch3(small), self.branch5(large)], dim=1)
        return self.classifier(features)


def build_mbcc(config: MBCCConfig, n_classes: int, shapes: Mapping[str, tuple[int, ...]]) -> MBCC:
    """MBCC sized from the stored ``frames`` shape (T, H, W)."""
    height, width = shapes["frames"][-2:]
    return MBCC(config, n_classes, height, width)


def _needs(config: MBCCConfig) -> tuple[ArrayNeed, ...]:
    two = config.unit == "clip" and config.inputs != "apex"
    return (frames_need(min_frames=2 if two else 1, min_size=4),)


register_model(
    family_spec(
        "mbcc",
        MBCCConfig,
        build_mbcc,
        description="Two parallel 2-D branches (3x3, 5x5) over the apex (or onset and apex).",
        needs=_needs,
        unit_of=lambda config: config.unit,
        frame_unit_skips_onset=True,
        paper_input=PaperInput("frames", (64, 64), source="000 Sec. 3.1 and Fig. 7"),
        training=keras_preset(epochs=20),  # batch 32: 000 gives none, Keras' fit() default
        variants={
            "apex": VariantPreset(description="the apex frame into both branches"),
            "onset_apex": VariantPreset(
                {"inputs": "onset_apex"}, description="onset into 3x3, apex into 5x5"
            ),
            "difference": VariantPreset(
                {"inputs": "difference"}, description="apex - onset into both branches"
            ),
            "frames": VariantPreset(
                {"unit": "frame"},
                description="single images as samples, as the paper (every frame after the onset)",
            ),
        },
    )
)
