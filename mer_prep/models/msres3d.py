"""Paper 003: multi-scale 3-D ResNet over optical flow (+ optional optical strain).

Layout (kernel sizes (T, H, W)):

- block 1 (stem): conv 3x7x7 stride (1, 2, 2) -> BN -> ReLU -> max-pool 3x3x3 stride 2, then
  spatial + temporal attention;
- blocks 2-5: residual stages of ``depth`` blocks (bottleneck: ResNet-50; basic: ResNet-34,
  which is what "6, 8, 12, 6 convolutions in pairs" describes), stride 2 from block 3 on; the
  multi-scale modules RC1, RC2, RC3 follow blocks 2, 3 and 4;
- temporal fusion: X5 is the first output; each higher map is upsampled by a transposed
  convolution to the next lower block and fused with it by iterative attentional feature fusion
  (``fusion="pairwise"``: up(X5)+X4, up(X4)+X3, up(X3)+X2; ``"top_down"``: each fusion feeds
  the next);
- four heads, each global average pooling -> FC 256 -> ReLU -> dropout 0.5 -> FC K.

``forward`` returns log(mean of the four heads' softmaxes), so argmax is the prediction;
``loss`` is the sum of the four heads' cross-entropies. Literal size (bottleneck, width 1)
~80 M parameters: a GPU model; ``width`` / ``depth`` give tiny CPU variants.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

from mer_prep.models.layers import (
    HybridAttention3d,
    Init,
    MerModel,
    apply_init,
    classifier_head,
    conv_out,
)
from mer_prep.models.msres3d_blocks import (
    RC1,
    RC2,
    RC3,
    BasicBlock3d,
    Bottleneck3d,
    IterativeAFF,
    Upsample3d,
    make_stage,
)
from mer_prep.models.paper_input import PaperInput
from mer_prep.models.registry import (
    TORCH_EPS,
    ArrayNeed,
    TrainingPreset,
    VariantPreset,
    family_spec,
    register_model,
)

BASE_PLANES = (64, 128, 256, 512)


class MSRes3DConfig(BaseModel):
    """Switches of the multi-scale 3-D ResNet (defaults: the choices of docs/models.md, paper 003).

    strain: add the optical strain as a third input channel. normalise: ``"fold_std"`` divides
    the flow (u and v share one std, keeping flow directions) and the strain by the training
    fold's std (set by :meth:`MSRes3D.fit_input_statistics`); ``"none"`` feeds them raw.
    width: channel multiplier of every stage (1.0 = ResNet widths 64..512); depth: blocks per
    stage. rc_width: RC branch width as a fraction of the block's channels; rc_residual: add
    the RC output to its input instead of replacing it.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    strain: bool = False
    normalise: Literal["fold_std", "none"] = "fold_std"
    block: Literal["bottleneck", "basic"] = "bottleneck"
    depth: tuple[int, int, int, int] = (3, 4, 6, 3)
    width: float = Field(default=1.0, gt=0.0)
    attention: bool = True
    spatial_kernel: int = Field(default=7, ge=1)
    temporal_reduction: int = Field(default=2, ge=1)
    rc_width: float = Field(default=0.25, gt=0.0, le=1.0)
    rc_weight_init: float = 0.25
    rc_residual: bool = False
    deconv_kernel: Literal[2, 3] = 2
    fusion: Literal["pairwise", "top_down"] = "pairwise"
    cam_reduction: int = Field(default=4, ge=1)
    aff_iterations: int = Field(default=2, ge=1)
    head_hidden: int = Field(default=256, ge=1)
    head_dropout: float = Field(default=0.5, ge=0.0, lt=1.0)
    init: Init = "torch"


def _head(channels: int, hidden: int, dropout: float, n_classes: int) -> nn.Sequential:
    return nn.Sequential(
        nn.AdaptiveAvgPool3d(1),
        nn.Flatten(),
        *classifier_head(channels, n_classes, hidden, dropout),
    )


class MSRes3D(MerModel):
    """Multi-scale 3-D ResNet.

    Input: ``flow`` float32 (B, T, H, W, 2) (u, v last; recipe ``msres3d``: 16 x 134 x 134) and,
    with ``strain=True``, ``strain`` (B, T, H, W). Output: logits (B, K) = log of the mean of
    the four heads' softmaxes. Buffers ``flow_scale`` and ``strain_scale`` (scalars, 1 until
    :meth:`fit_input_statistics`) travel with the state dict.
    """

    def __init__(self, config: MSRes3DConfig, n_classes: int, shape: tuple[int, int, int]) -> None:
        super().__init__()
        self.config = config
        block = Bottleneck3d if config.block == "bottleneck" else BasicBlock3d
        stem = max(4, round(64 * config.width))
        self.stem = nn.Sequential(
            nn.Conv3d(3 if config.strain else 2, stem, (3, 7, 7), (1, 2, 2), (1, 3, 3), bias=False),
            nn.BatchNorm3d(stem),
            nn.ReLU(inplace=True),
            nn.MaxPool3d(3, 2, 1),
        )
        frames = conv_out(shape[0], 3, 2, 1)
        self.attention = (
            HybridAttention3d(frames, config.spatial_kernel, config.temporal_reduction)
            if config.attention
            else nn.Identity()
        )
        planes = [max(4, round(p * config.width)) for p in BASE_PLANES]
        channels = [p * block.expansion for p in planes]
        inputs = [stem, *channels[:3]]
        self.stages = nn.ModuleList(
            [
                make_stage(block, cin, p, n, 1 if i == 0 else 2)
                for i, (cin, p, n) in enumerate(zip(inputs, planes, config.depth, strict=True))
            ]
        )
        self.multiscale = nn.ModuleList(
            [
                rc(c, max(1, round(c * config.rc_width)), config.rc_weight_init, config.rc_residual)
                for rc, c in zip((RC1, RC2, RC3), channels[:3], strict=True)
            ]
        )
        # up[i] maps block i+3's channels to block i+2's (i = 0..2); aff[i] fuses at block i+2.
        self.up = nn.ModuleList(
            [Upsample3d(channels[i + 1], channels[i], config.deconv_kernel) for i in range(3)]
        )
        self.fuse = nn.ModuleList(
            [
                IterativeAFF(channels[i], config.cam_reduction, config.aff_iterations)
                for i in range(3)
            ]
        )
        self.heads = nn.ModuleList(
            [
                _head(c, config.head_hidden, config.head_dropout, n_classes)
                for c in (channels[3], channels[2], channels[1], channels[0])
            ]
        )
        self.register_buffer("flow_scale", torch.tensor(1.0))
        self.register_buffer("strain_scale", torch.tensor(1.0))
        apply_init(self, config.init)

    def _network_input(self, inputs: Mapping[str, Tensor]) -> Tensor:
        flow = self._input(inputs, "flow")
        if flow.dim() != 5 or flow.shape[-1] != 2:
            raise ValueError(f"MSRes3D takes flow (B, T, H, W, 2), got {tuple(flow.shape)}")
        channels = [flow.permute(0, 4, 1, 2, 3) / self.flow_scale]
        if self.config.strain:
            channels.append(self._input(inputs, "strain").unsqueeze(1) / self.strain_scale)
        return torch.cat(channels, dim=1)

    def forward_heads(self, inputs: Mapping[str, Tensor]) -> list[Tensor]:
        """Logits (B, K) of the four heads: X5, then the fusions at blocks 4, 3 and 2."""
        x = self.attention(self.stem(self._network_input(inputs)))
        blocks = []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i < 3:
                x = self.multiscale[i](x)
            blocks.append(x)  # X2, X3, X4, X5
        outputs = [blocks[3]]
        higher = blocks[3]
        for i in (2, 1, 0):  # fuse at X4, X3, X2
            lower = blocks[i]
            fused = self.fuse[i](self.up[i](higher, lower.shape[2:]), lower)
            outputs.append(fused)
            higher = fused if self.config.fusion == "top_down" else lower
        return [head(out) for head, out in zip(self.heads, outputs, strict=True)]

    def forward(self, inputs: Mapping[str, Tensor]) -> Tensor:
        """log(mean_h softmax(head_h)) (B, K): the prediction is its argmax."""
        log_probs = torch.stack([F.log_softmax(h, dim=1) for h in self.forward_heads(inputs)])
        return torch.logsumexp(log_probs, dim=0) - math.log(log_probs.shape[0])

    def loss(
        self, inputs: Mapping[str, Tensor], targets: Tensor, weight: Tensor | None = None
    ) -> Tensor:
        """Sum of the four heads' (optionally class-weighted) mean cross-entropies."""
        return sum(F.cross_entropy(h, targets, weight=weight) for h in self.forward_heads(inputs))

    @torch.no_grad()
    def fit_input_statistics(self, inputs: Mapping[str, Tensor]) -> None:
        """Set ``flow_scale`` (one std over u and v) and ``strain_scale`` from training inputs."""
        if self.config.normalise == "none":
            return
        names = ("flow", "strain") if self.config.strain else ("flow",)
        for name in names:
            values = inputs[name].detach().to(torch.float64)
            std = float(values.std()) if values.numel() > 1 else 0.0
            getattr(self, f"{name}_scale").fill_(std if math.isfinite(std) and std > 1e-12 else 1.0)


def build_msres3d(
    config: MSRes3DConfig, n_classes: int, shapes: Mapping[str, tuple[int, ...]]
) -> MSRes3D:
    """MSRes3D sized from the stored ``flow`` shape (T, H, W, 2)."""
    return MSRes3D(config, n_classes, tuple(shapes["flow"][:3]))


def _needs(config: MSRes3DConfig) -> tuple[ArrayNeed, ...]:
    flow = ArrayNeed("flow", ("frame", "y", "x", "uv"), sizes=(("uv", 2),))
    if not config.strain:
        return (flow,)
    return flow, ArrayNeed("strain", ("frame", "y", "x"), same_grid_as="flow")


register_model(
    family_spec(
        "msres3d",
        MSRes3DConfig,
        build_msres3d,
        description="Multi-scale 3-D ResNet on optical flow with four fused heads.",
        needs=_needs,
        paper_input=PaperInput(
            "flow", (134, 134), min_frames=4, source="003 Sec. 3.3.1: 134x134x16"
        ),
        training=TrainingPreset(
            lr=1e-5, eps=TORCH_EPS, epochs=100, batch_size=8
        ),  # 003 gives none: our choice
        variants={
            "plain": VariantPreset(description="flow u, v"),
            "strain": VariantPreset({"strain": True}, description="flow u, v + strain"),
            "augmented": VariantPreset(
                recipe="msres3d_aug",
                augmented=True,
                description="paper 003's box-shift and flip copies",
            ),
        },
    )
)
