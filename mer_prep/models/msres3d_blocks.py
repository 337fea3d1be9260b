"""Blocks of the multi-scale 3-D ResNet (paper 003): residual blocks, RC1/RC2/RC3 multi-scale
modules, channel attention (CAM) and iterative attentional feature fusion (iAFF).

All blocks map ``(B, C, T, H, W)`` float32 feature maps; kernel sizes are written (T, H, W),
so the paper's "1x1x7, 1x7x1, 7x1x1" are the W, H and T factors of a 7x7x7 kernel.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mer_prep.models.layers import PooledBatchNorm3d

Kernel = int | tuple[int, int, int]


def _triple(kernel: Kernel) -> tuple[int, int, int]:
    return (kernel,) * 3 if isinstance(kernel, int) else tuple(kernel)


def conv_bn_relu(cin: int, cout: int, kernel: Kernel = 1, stride: int = 1) -> nn.Sequential:
    """Conv3d (same padding for odd kernels, no bias) -> BatchNorm3d -> ReLU."""
    k = _triple(kernel)
    return nn.Sequential(
        nn.Conv3d(cin, cout, k, stride, padding=tuple(s // 2 for s in k), bias=False),
        nn.BatchNorm3d(cout),
        nn.ReLU(inplace=True),
    )


def _shortcut(cin: int, cout: int, stride: int) -> nn.Module:
    if stride == 1 and cin == cout:
        return nn.Identity()
    return nn.Sequential(nn.Conv3d(cin, cout, 1, stride, bias=False), nn.BatchNorm3d(cout))


class BasicBlock3d(nn.Module):
    """Two 3x3x3 convolutions and a shortcut (ResNet-18/34 layout); out channels = planes."""

    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = conv_bn_relu(cin, planes, 3, stride)
        self.conv2 = nn.Conv3d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm3d(planes)
        self.shortcut = _shortcut(cin, planes, stride)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.bn2(self.conv2(self.conv1(x))) + self.shortcut(x))


class Bottleneck3d(nn.Module):
    """1x1x1 -> 3x3x3 (strided) -> 1x1x1 convolutions and a shortcut (ResNet-50 layout);
    out channels = 4 x planes."""

    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        cout = planes * self.expansion
        self.reduce = conv_bn_relu(cin, planes, 1)
        self.conv = conv_bn_relu(planes, planes, 3, stride)
        self.expand = nn.Conv3d(planes, cout, 1, bias=False)
        self.bn = nn.BatchNorm3d(cout)
        self.shortcut = _shortcut(cin, cout, stride)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.bn(self.expand(self.conv(self.reduce(x)))) + self.shortcut(x))


def make_stage(
    block: type[BasicBlock3d | Bottleneck3d], cin: int, planes: int, blocks: int, stride: int
) -> nn.Sequential:
    """``blocks`` residual blocks, the first one strided."""
    layers = [block(cin, planes, stride)]
    layers += [block(planes * block.expansion, planes) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


class GlobalBranch(nn.Module):
    """Global context: average pool -> 1x1x1 conv (bias) -> ReLU, broadcast back to the map.

    No batch norm: a pooled descriptor of a batch of one has one value per channel.
    """

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.Conv3d(cin, cout, 1)

    def forward(self, x: Tensor) -> Tensor:
        pooled = F.relu(self.conv(F.adaptive_avg_pool3d(x, 1)))
        return pooled.expand(-1, -1, *x.shape[2:])


def _factorised(cin: int, cout: int, size: int) -> list[nn.Module]:
    """A size^3 kernel as 1x1xs, 1xsx1, sx1x1 convolutions (W, H, then T)."""
    return [
        conv_bn_relu(cin, cout, (1, 1, size)),
        conv_bn_relu(cout, cout, (1, size, 1)),
        conv_bn_relu(cout, cout, (size, 1, 1)),
    ]


class _MultiScale(nn.Module):
    """Shared machinery: branches give ``n`` maps of ``width`` channels, fused by learnable
    scalars (Eq. 3.8/3.9: K = sum alpha_i X_i), projected back to C by 1x1x1 conv + BN + ReLU,
    optionally added to the input (``residual``)."""

    def __init__(
        self, channels: int, width: int, outputs: int, weight_init: float, residual: bool
    ) -> None:
        super().__init__()
        self.fusion = nn.Parameter(torch.full((outputs,), float(weight_init)))
        self.project = conv_bn_relu(width, channels, 1)
        self.residual = residual

    def branch_outputs(self, x: Tensor) -> Sequence[Tensor]:
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        outputs = self.branch_outputs(x)
        fused = sum(w * out for w, out in zip(self.fusion, outputs, strict=True))
        projected = self.project(fused)
        return x + projected if self.residual else projected


class _StackedBranches(_MultiScale):
    """RC1's and RC2's layout: 1x1x1 | 1x1x1 -> ``stack`` | 1x1x1 -> ``stack`` -> ``stack`` |
    global pool (4 outputs). A subclass names the two stacked branches (``stacked``: their
    attribute and state-dict names) and gives the ``stack`` of layers on ``width`` channels."""

    stacked: tuple[str, str]

    @staticmethod
    def stack(width: int) -> list[nn.Module]:
        raise NotImplementedError

    def __init__(
        self, channels: int, width: int, weight_init: float = 0.25, residual: bool = False
    ) -> None:
        super().__init__(channels, width, 4, weight_init, residual)
        self.point = conv_bn_relu(channels, width, 1)
        for depth, name in enumerate(self.stacked, start=1):
            layers: list[nn.Module] = [conv_bn_relu(channels, width, 1)]
            for _ in range(depth):
                layers += self.stack(width)
            self.add_module(name, nn.Sequential(*layers))
        self.pooled = GlobalBranch(channels, width)

    def branch_outputs(self, x: Tensor) -> Sequence[Tensor]:
        deep = [self.get_submodule(name)(x) for name in self.stacked]
        return [self.point(x), *deep, self.pooled(x)]


class RC1(_StackedBranches):
    """RC1: 1x1x1 | 1x1x1 -> 3x3x3 | 1x1x1 -> 3x3x3 -> 3x3x3 | global pool (4 outputs)."""

    stacked = ("conv3", "conv5")

    @staticmethod
    def stack(width: int) -> list[nn.Module]:
        return [conv_bn_relu(width, width, 3)]


class RC2(_StackedBranches):
    """RC2: 1x1x1 | 1x1x1 -> factorised 7^3 | 1x1x1 -> two factorised 7^3 (~9^3) | global pool."""

    stacked = ("conv7", "conv9")

    @staticmethod
    def stack(width: int) -> list[nn.Module]:
        return _factorised(width, width, 7)


class _Directions(nn.Module):
    """Three parallel directional convolutions 1x1x3 (W), 1x3x1 (H), 3x1x1 (T): 3 outputs."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.convs = nn.ModuleList(
            [conv_bn_relu(width, width, k) for k in ((1, 1, 3), (1, 3, 1), (3, 1, 1))]
        )

    def forward(self, x: Tensor) -> list[Tensor]:
        return [conv(x) for conv in self.convs]


class RC3(_MultiScale):
    """RC3: eight outputs from four branches (Eq. 3.9).

    Branch 1: 1x1x1 -> factorised 3^3 -> three directional convs (3 outputs); branch 2:
    1x1x1 -> three directional convs (3 outputs); branch 3: 1x1x1; branch 4: global pool.
    """

    def __init__(
        self, channels: int, width: int, weight_init: float = 0.25, residual: bool = False
    ) -> None:
        super().__init__(channels, width, 8, weight_init, residual)
        self.large = nn.Sequential(conv_bn_relu(channels, width, 1), *_factorised(width, width, 3))
        self.large_directions = _Directions(width)
        self.small = conv_bn_relu(channels, width, 1)
        self.small_directions = _Directions(width)
        self.point = conv_bn_relu(channels, width, 1)
        self.pooled = GlobalBranch(channels, width)

    def branch_outputs(self, x: Tensor) -> Sequence[Tensor]:
        return [
            *self.large_directions(self.large(x)),
            *self.small_directions(self.small(x)),
            self.point(x),
            self.pooled(x),
        ]


class ChannelAttention3d(nn.Module):
    """CAM (Eq. 3.10): weights M = sigmoid(L(avgpool X) + L'(maxpool X)) of shape (B, C, 1, 1, 1),
    each L a 1x1x1 conv to C/r -> BN -> ReLU -> 1x1x1 conv to C -> BN."""

    def __init__(self, channels: int, reduction: int = 4) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)

        def mlp() -> nn.Sequential:
            return nn.Sequential(
                nn.Conv3d(channels, hidden, 1, bias=False),
                PooledBatchNorm3d(hidden),
                nn.ReLU(inplace=True),
                nn.Conv3d(hidden, channels, 1, bias=False),
                PooledBatchNorm3d(channels),
            )

        self.average = mlp()
        self.maximum = mlp()

    def forward(self, x: Tensor) -> Tensor:
        return torch.sigmoid(
            self.average(F.adaptive_avg_pool3d(x, 1)) + self.maximum(F.adaptive_max_pool3d(x, 1))
        )


class IterativeAFF(nn.Module):
    """Iterative attentional feature fusion (Eq. 3.11, applied ``iterations`` times):
    Z_0 = X + Y, M_i = CAM_i(Z_{i-1}), Z_i = M_i X + (1 - M_i) Y. X, Y, Z: (B, C, T, H, W)."""

    def __init__(self, channels: int, reduction: int = 4, iterations: int = 2) -> None:
        super().__init__()
        self.attentions = nn.ModuleList(
            [ChannelAttention3d(channels, reduction) for _ in range(iterations)]
        )

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        z = x + y
        for attention in self.attentions:
            m = attention(z)
            z = m * x + (1 - m) * y
        return z


def match_size(x: Tensor, size: Sequence[int]) -> Tensor:
    """Crop (from the end) or zero-pad (at the end) the T, H, W dims of ``x`` to ``size``."""
    x = x[..., : size[0], : size[1], : size[2]]
    pad: list[int] = []
    for have, want in zip(reversed(x.shape[2:]), reversed(tuple(size)), strict=True):
        pad += [0, want - have]
    return F.pad(x, pad) if any(pad) else x


class Upsample3d(nn.Module):
    """Transposed conv (stride 2) from ``cin`` to ``cout`` channels -> BN -> ReLU, then
    crop/pad to the target T, H, W (the next lower block's size)."""

    def __init__(self, cin: int, cout: int, kernel: int = 2) -> None:
        super().__init__()
        self.deconv = nn.ConvTranspose3d(
            cin, cout, kernel, stride=2, padding=(kernel - 1) // 2, bias=False
        )
        self.bn = nn.BatchNorm3d(cout)

    def forward(self, x: Tensor, size: Sequence[int]) -> Tensor:
        return match_size(F.relu(self.bn(self.deconv(x))), size)
