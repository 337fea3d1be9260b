"""HTNet (Wang, Zhang, Luo, Sankaranarayana, Neurocomputing 2024): a hierarchical transformer
over four facial areas (left eye, right eye, left lip, right lip) of the onset -> apex motion.

Network, as built here (a NesT-style hierarchy, which the paper follows): the apex frame's u, v
and strain map (B, 3, H, W) is cut into p x p patches, each embedded to ``dim`` by a linear
map (a p x p stride-p convolution), on a G x G token grid (G = H / p). Level i of the
L = len(depths) levels splits the grid into 2^(L-1-i) x 2^(L-1-i) blocks and runs ``depths[i]``
pre-norm transformer layers (multi-head self-attention + MLP, ratio 4, GELU) *within* each
block, with a learned position embedding per level; between levels an aggregation (3x3
convolution, layer norm over channels, 3x3 max-pool of stride 2) halves the grid. The
second-to-last level's blocks are the face's four quadrants, the paper's four areas; the last
level is one block, the global interaction between eye and lip areas. Mean over the last
tokens -> layer norm -> dense K.

Deviations and choices:
- areas at fixed positions: the face is aligned (eyes level, at 0.36 of the height), so its
  upper quadrants hold the eyes and brows and its lower ones the two halves of the mouth; the
  paper crops its four 28x28 areas around landmarks of a 224x224 face and tiles them into a
  56x56 map. Recipe ``htnet56`` gives that map's size (56x56 flow, 28x28 quadrants);
- defaults as publicly described for the paper's runs (patch 7, dim 256, 3 heads of 64, levels of
  2, 2 and 10 layers), unverified against the paper's text; dropout 0;
- u, v and strain are divided by the training fold's std (the paper used flow images).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

from mer_prep.models.apex_flow import (
    ApexFlowInput,
    ApexFlowModel,
    ApexFlowPaper,
    Channel,
    Normalise,
    apex_flow_spec,
)
from mer_prep.models.registry import register_model


class HTNetConfig(BaseModel):
    """Switches of HTNet: ``depths`` the transformer layers per level (its length the number
    of levels), ``patch`` the patch side in stored pixels, ``dim`` the token width, ``heads``
    the attention heads of ``head_dim`` each."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    channels: tuple[Channel, ...] = ("u", "v", "strain")
    patch: int = Field(default=7, ge=1)
    dim: int = Field(default=256, ge=1)
    heads: int = Field(default=3, ge=1)
    head_dim: int = Field(default=64, ge=1)
    depths: tuple[int, ...] = (2, 2, 10)
    mlp_ratio: int = Field(default=4, ge=1)
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)
    normalise: Normalise = "fold_std"


class SelfAttention(nn.Module):
    """Multi-head self-attention with ``heads`` x ``head_dim`` inner width (need not equal
    ``dim``). (N, S, D) -> (N, S, D)."""

    def __init__(self, dim: int, heads: int, head_dim: int, dropout: float) -> None:
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.qkv = nn.Linear(dim, 3 * heads * head_dim, bias=False)
        self.out = nn.Linear(heads * head_dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        n, s, _ = x.shape
        q, k, v = self.qkv(x).reshape(n, s, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(
            q, k, v, dropout_p=self.dropout if self.training else 0.0
        )
        return self.out(y.transpose(1, 2).reshape(n, s, -1))


class TransformerLayer(nn.Module):
    """Pre-norm transformer layer: x + MHSA(LN(x)), then x + MLP(LN(x)). (N, S, D) -> same."""

    def __init__(self, config: HTNetConfig) -> None:
        super().__init__()
        dim, hidden = config.dim, config.dim * config.mlp_ratio
        self.norm1 = nn.LayerNorm(dim)
        self.attention = SelfAttention(dim, config.heads, config.head_dim, config.dropout)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(
            nn.Linear(dim, hidden),
            nn.GELU(),
            nn.Dropout(config.dropout),
            nn.Linear(hidden, dim),
            nn.Dropout(config.dropout),
        )

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attention(self.norm1(x))
        return x + self.mlp(self.norm2(x))


def to_blocks(x: Tensor, blocks: int) -> Tensor:
    """(B, D, G, G) -> (B * blocks^2, (G / blocks)^2, D): tokens grouped by square block."""
    b, d, g, _ = x.shape
    s = g // blocks
    x = x.reshape(b, d, blocks, s, blocks, s).permute(0, 2, 4, 3, 5, 1)
    return x.reshape(b * blocks * blocks, s * s, d)


def from_blocks(x: Tensor, batch: int, blocks: int) -> Tensor:
    """The inverse of :func:`to_blocks`: (B * blocks^2, s^2, D) -> (B, D, G, G)."""
    _, tokens, d = x.shape
    s = int(round(tokens**0.5))
    x = x.reshape(batch, blocks, blocks, s, s, d).permute(0, 5, 1, 3, 2, 4)
    return x.reshape(batch, d, blocks * s, blocks * s)


class Aggregate(nn.Module):
    """Between levels: 3x3 conv, layer norm over channels, 3x3 max-pool stride 2.
    (B, D, G, G) -> (B, D, G/2, G/2)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(dim, dim, 3, padding=1)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: Tensor) -> Tensor:
        x = self.norm(self.conv(x).permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return F.max_pool2d(x, 3, stride=2, padding=1)


class HTNet(ApexFlowModel):
    """HTNet.

    Input: ``flow`` float32 (B, T, H, W, 2) and ``strain`` (B, T, H, W) (when a channel), the
    last frame the apex; H = W, divisible by ``patch``, H / patch divisible by 2^(levels-1)
    (``htnet56``: 56 / 7 = 8 tokens a side, levels of 4x4, 2x2 (the areas) and 1 block).
    Output: logits (B, K).
    """

    def __init__(self, config: HTNetConfig, n_classes: int, height: int, width: int) -> None:
        super().__init__()
        levels = len(config.depths)
        grid, rest = divmod(height, config.patch)
        if height != width or rest or levels < 1 or grid % 2 ** (levels - 1):
            raise ValueError(
                f"HTNet needs a square map whose side / patch ({config.patch}) "
                f"is divisible by {2 ** (levels - 1)}, got {height}x{width}"
            )
        self.config = config
        self.input = ApexFlowInput(config.channels, config.normalise)
        self.embed = nn.Conv2d(len(config.channels), config.dim, config.patch, config.patch)
        self.blocks = [2 ** (levels - 1 - i) for i in range(levels)]
        self.positions = nn.ParameterList()
        self.levels = nn.ModuleList()
        self.aggregates = nn.ModuleList()
        for i, depth in enumerate(config.depths):
            side = (grid >> i) // self.blocks[i]
            self.positions.append(
                nn.Parameter(torch.randn(1, self.blocks[i] ** 2, side * side, config.dim) * 0.02)
            )
            self.levels.append(nn.Sequential(*(TransformerLayer(config) for _ in range(depth))))
            if i < levels - 1:
                self.aggregates.append(Aggregate(config.dim))
        self.norm = nn.LayerNorm(config.dim)
        self.classifier = nn.Linear(config.dim, n_classes)

    def forward(self, inputs: Mapping[str, Tensor]) -> Tensor:
        x = self.embed(self.apex_map(inputs))  # (B, D, G, G)
        batch = x.shape[0]
        for i, level in enumerate(self.levels):
            blocks = self.blocks[i]
            tokens = to_blocks(x, blocks)  # (B*n, s^2, D)
            position = self.positions[i].expand(batch, -1, -1, -1).flatten(0, 1)
            x = from_blocks(level(tokens + position), batch, blocks)
            if i < len(self.aggregates):
                x = self.aggregates[i](x)
        return self.classifier(self.norm(x.flatten(2).mean(-1)))


PAPER = ApexFlowPaper("htnet", 56, "HTNet: four 28x28 areas tiled 56x56", lr=5e-5, epochs=800)
DESCRIPTION = "Hierarchical transformer: local attention in four facial areas, then global."
register_model(apex_flow_spec(HTNet, HTNetConfig, PAPER, DESCRIPTION))
