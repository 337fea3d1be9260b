"""Paper 002: the dual-path 3-D CNN family over the upper and lower face halves.

Each path: conv3d ``filters`` 3x3x3 same (ReLU) -> 2x2x2 max-pool -> [attention] -> flatten (or
global average pooling) -> dense ReLU -> dropout; the two paths are concatenated -> [SE] ->
dense ReLU -> dropout -> dense K. The four variants differ in the attention:

=============  ======================================  ===============================
model          in each path, after the pooling          after the merge
=============  ======================================  ===============================
``dp3dnet``    nothing                                 nothing
``ha3dnet``    hybrid attention (spatial + temporal)   nothing
``se3dnet``    squeeze-excitation                      nothing
``ha3dsenet``  hybrid attention                        squeeze-excitation (on 2 x dense)
=============  ======================================  ===============================

Literal size (``head="flatten"``) at 16 x 64 x 128 halves: ~134 M parameters per path
(268,473,187 for ``ha3dnet`` with 5 classes; 54,115 with ``head="gap"``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

from mer_prep.models.layers import (
    HybridAttention3d,
    Init,
    MerModel,
    SqueezeExcite,
    apply_init,
    classifier_head,
    conv3d_stem,
    dense_layers,
    flatten_features,
)
from mer_prep.models.paper_input import PaperInput
from mer_prep.models.registry import (
    ArrayNeed,
    VariantPreset,
    family_spec,
    keras_preset,
    register_model,
)

Head = Literal["flatten", "gap"]
PATHS = ("upper", "lower")


class HA3DConfig(BaseModel):
    """Switches of the dual-path 3-D family (defaults: the choices of docs/models.md, paper 002).

    head: ``"flatten"`` (literal: every pooled voxel into the dense layer) or ``"gap"`` (global
    average pooling: at 16 x 64 x 128 halves ``ha3dnet`` has 54,115 parameters instead of
    268,473,187, about 5,000x fewer). se_residual: SE output ``x + x * s`` instead of
    the standard ``x * s`` (the paper calls its rescale "residual").
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    head: Head = "flatten"
    filters: int = Field(default=64, ge=1)
    kernel: int = Field(default=3, ge=1)
    pool: int = Field(default=2, ge=1)
    dense: int = Field(default=128, ge=1)
    merge_dense: int = Field(default=128, ge=1)
    dropout: float = Field(default=0.5, ge=0.0, lt=1.0)
    se_reduction: int = Field(default=16, ge=1)
    se_residual: bool = False
    spatial_kernel: int = Field(default=7, ge=1)
    temporal_reduction: int = Field(default=2, ge=1)
    init: Init = "keras"


class Path3d(nn.Module):
    """One path: ``(B, T, H, W)`` -> ``(B, dense)``.

    conv3d 1 -> filters (same padding, ReLU) -> max-pool -> [HA] -> [SE] -> flatten|gap ->
    dense ReLU -> dropout.
    """

    def __init__(
        self, config: HA3DConfig, shape: tuple[int, int, int], *, attention: bool, squeeze: bool
    ) -> None:
        super().__init__()
        self.conv, self.pool, pooled = conv3d_stem(
            config.filters, config.kernel, config.pool, shape
        )
        self.attention = (
            HybridAttention3d(pooled[0], config.spatial_kernel, config.temporal_reduction)
            if attention
            else nn.Identity()
        )
        self.squeeze = (
            SqueezeExcite(config.filters, config.se_reduction, config.se_residual)
            if squeeze
            else nn.Identity()
        )
        self.head = config.head
        features = config.filters * (
            pooled[0] * pooled[1] * pooled[2] if config.head == "flatten" else 1
        )
        self.dense = nn.Sequential(*dense_layers(features, (config.dense,), config.dropout))

    def forward(self, x: Tensor) -> Tensor:
        x = self.pool(torch.relu(self.conv(x.unsqueeze(1))))
        x = self.squeeze(self.attention(x))
        return self.dense(flatten_features(x, self.head))


class DualPath3DNet(MerModel):
    """Dual-path 3-D CNN (DP-3DNet, HA-3DNet, SE-3DNet or HA-3DSENet).

    Input: ``upper`` and ``lower`` float32 (B, T, H/2, W) (the recipe ``ha3d`` stores
    16 x 64 x 128). Output: logits (B, K).
    """

    def __init__(
        self,
        config: HA3DConfig,
        n_classes: int,
        shapes: Mapping[str, tuple[int, int, int]],
        *,
        attention: bool,
        squeeze: Literal["none", "path", "merge"],
    ) -> None:
        super().__init__()
        self.config = config
        self.paths = nn.ModuleDict(
            {
                name: Path3d(
                    config, tuple(shapes[name]), attention=attention, squeeze=squeeze == "path"
                )
                for name in PATHS
            }
        )
        merged = 2 * config.dense
        self.merge_se = (
            SqueezeExcite(merged, config.se_reduction, config.se_residual)
            if squeeze == "merge"
            else nn.Identity()
        )
        self.classifier = classifier_head(merged, n_classes, config.merge_dense, config.dropout)
        apply_init(self, config.init)

    def forward(self, inputs: Mapping[str, Tensor]) -> Tensor:
        merged = torch.cat([self.paths[name](self._input(inputs, name)) for name in PATHS], dim=1)
        return self.classifier(self.merge_se(merged))


_VARIANTS: dict[str, tuple[bool, Literal["none", "path", "merge"]]] = {
    "dp3dnet": (False, "none"),
    "ha3dnet": (True, "none"),
    "se3dnet": (False, "path"),
    "ha3dsenet": (True, "merge"),
}


def build_dual_path(
    variant: str, config: HA3DConfig, n_classes: int, shapes: Mapping[str, tuple[int, ...]]
) -> DualPath3DNet:
    """One of ``dp3dnet``, ``ha3dnet``, ``se3dnet``, ``ha3dsenet`` sized from the halves' shapes."""
    attention, squeeze = _VARIANTS[variant]
    return DualPath3DNet(config, n_classes, shapes, attention=attention, squeeze=squeeze)


def _half(name: str) -> ArrayNeed:
    return ArrayNeed(
        name, ("frame", "y_half", "x"), minimum=(("frame", 2), ("y_half", 2), ("x", 2))
    )


_TRAINING = keras_preset(epochs=200, batch_size=80, selection="validation", validation_metric="uf1")
_TRAINING_VARIANTS = {
    "plain": VariantPreset(class_weights=True, description="class weights W_k = N/n_k"),
    "augmented": VariantPreset(
        recipe="ha3d_aug",
        augmented=True,
        class_weights=True,
        description="augmented copies (recipe ha3d_aug) + class "
        "weights, as in all of 002's experiments",
    ),
}

for _name, _title in (
    ("dp3dnet", "Dual Path-3DNet (no attention)"),
    ("ha3dnet", "Hybrid Attention-3DNet (spatial + temporal per path)"),
    ("se3dnet", "SE Block-3DNet (squeeze-excitation per path)"),
    ("ha3dsenet", "Hybrid Attention-3DSENet (HA per path, SE after merge)"),
):
    register_model(
        family_spec(
            _name,
            HA3DConfig,
            lambda config, k, shapes, _name=_name: build_dual_path(_name, config, k, shapes),
            family="ha3d",
            description=_title,
            needs=lambda _config: (_half("upper"), _half("lower")),
            paper_input=PaperInput(
                "upper",
                (64, 128),
                min_frames=2,
                source="002 Sec. 3.1 and 3.3: 128x128 faces, 128x64 halves",
            ),
            training=_TRAINING,
            variants=_TRAINING_VARIANTS,
        )
    )
