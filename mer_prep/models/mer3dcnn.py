"""Paper 004: the single-path 3DCNN (MER-3DCNNST and its DA / SCB / DACWB training variants).

conv3d 64 3x3x3 same (ReLU) -> 2x2x2 max-pool -> dropout 0.5 -> flatten (or global average
pooling) -> dense 128 ReLU -> dropout 0.5 -> dense K. The variants differ only in the training
data (augmented copies, SMOTE, class weights), not in the network. Literal size
(``head="flatten"``) at 16 x 128 x 128: ~268 M parameters.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

from mer_prep.models.layers import (
    Init,
    MerModel,
    apply_init,
    classifier_head,
    conv3d_stem,
    flatten_features,
)
from mer_prep.models.paper_input import PaperInput
from mer_prep.models.registry import (
    VariantPreset,
    family_spec,
    frames_need,
    keras_preset,
    register_model,
)


class MER3DCNNConfig(BaseModel):
    """Switches of the 3DCNN (defaults: the choices of docs/models.md, paper 004).

    head: ``"flatten"`` (literal) or ``"gap"`` (global average pooling: at 16 x 128 x 128,
    10,757 parameters instead of 268,438,021 with 5 classes, about 25,000x fewer).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    head: Literal["flatten", "gap"] = "flatten"
    #: "difference": every frame minus the first (onset) frame, so that the network sees the
    #: motion and not the face's static texture (a choice; the paper feeds the frames)
    inputs: Literal["frames", "difference"] = "frames"
    filters: int = Field(default=64, ge=1)
    kernel: int = Field(default=3, ge=1)
    pool: int = Field(default=2, ge=1)
    dense: int = Field(default=128, ge=1)
    dropout: float = Field(default=0.5, ge=0.0, lt=1.0)
    init: Init = "keras"


class MER3DCNN(MerModel):
    """3DCNN.

    Input: ``frames`` float32 (B, T, H, W) (recipe ``dacwb3d``: 16 x 128 x 128, eyes and mouth
    masked). Output: logits (B, K).
    """

    def __init__(self, config: MER3DCNNConfig, n_classes: int, shape: tuple[int, int, int]) -> None:
        super().__init__()
        self.config = config
        self.conv, self.pool, pooled = conv3d_stem(
            config.filters, config.kernel, config.pool, shape
        )
        self.dropout = nn.Dropout(config.dropout)
        features = config.filters * (
            pooled[0] * pooled[1] * pooled[2] if config.head == "flatten" else 1
        )
        self.classifier = classifier_head(features, n_classes, config.dense, config.dropout)
        apply_init(self, config.init)

    def forward(self, inputs: Mapping[str, Tensor]) -> Tensor:
        x = self._input(inputs, "frames").unsqueeze(1)
        if self.config.inputs == "difference":
            x = x - x[:, :, :1]
        x = self.dropout(self.pool(torch.relu(self.conv(x))))
        return self.classifier(flatten_features(x, self.config.head))


def build_mer3dcnn(
    config: MER3DCNNConfig, n_classes: int, shapes: Mapping[str, tuple[int, ...]]
) -> MER3DCNN:
    """3DCNN sized from the stored ``frames`` shape (T, H, W)."""
    return MER3DCNN(config, n_classes, tuple(shapes["frames"]))


register_model(
    family_spec(
        "mer3dcnn",
        MER3DCNNConfig,
        build_mer3dcnn,
        description="Single-path 3-D CNN (conv 64, pool, dense 128).",
        needs=lambda _config: (frames_need(min_frames=2),),
        paper_input=PaperInput(
            "frames", (128, 128), min_frames=2, source="004 Methodology: 128x128 frames"
        ),
        training=keras_preset(epochs=50),
        variants={
            "plain": VariantPreset(description="MER-3DCNNST"),
            "da": VariantPreset(
                recipe="dacwb3d_aug", augmented=True, description="MER-DA3DCNNST: augmented copies"
            ),
            "scb": VariantPreset(smote=True, description="MER-SCB3DCNNST: SMOTE"),
            "dacwb": VariantPreset(
                recipe="dacwb3d_aug",
                augmented=True,
                class_weights=True,
                description="MER-DACWB3DCNNST: augmented + class weights",
            ),
        },
    )
)
