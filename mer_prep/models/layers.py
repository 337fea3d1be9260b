"""Building blocks shared by the model families.

Every tensor is float32 unless stated. Shapes use ``B`` batch, ``C`` channels, ``T`` frames,
``H`` height and ``W`` width; 3-D feature maps are ``(B, C, T, H, W)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

Init = Literal["keras", "torch"]

_WEIGHTED = (
    nn.Linear,
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.ConvTranspose1d,
    nn.ConvTranspose2d,
    nn.ConvTranspose3d,
)


class MerModel(nn.Module):
    """Base class of every model: ``forward(inputs) -> logits (B, K)`` plus the engine's hooks.

    ``inputs`` is a ``dict[str, Tensor]`` keyed by stored array name, each with a leading batch
    dim. Subclasses implement ``forward``; the defaults below serve single-output models.
    """

    def loss(
        self, inputs: Mapping[str, Tensor], targets: Tensor, weight: Tensor | None = None
    ) -> Tensor:
        """Mean cross-entropy of ``forward(inputs)`` against int64 ``targets`` (B,).

        ``weight`` (K,) float32: optional per-class weights (W_k = N / n_k).
        """
        return F.cross_entropy(self(inputs), targets, weight=weight)

    def fit_input_statistics(self, inputs: Mapping[str, Tensor]) -> None:  # noqa: ARG002 - the hook's signature, which subclasses read
        """Called once per fold with (a sample of) the training inputs; no-op by default."""
        return

    def _input(self, inputs: Mapping[str, Tensor], name: str) -> Tensor:
        """``inputs[name]`` in the dtype and on the device of the model's parameters."""
        try:
            tensor = inputs[name]
        except KeyError:
            raise KeyError(
                f"{type(self).__name__} needs input array {name!r}; got {sorted(inputs)}"
            ) from None
        param = next(self.parameters())
        return tensor.to(device=param.device, dtype=param.dtype)


def keras_init_(module: nn.Module) -> nn.Module:
    """Keras defaults in place: Glorot-uniform weights, zero biases (convs, deconvs, dense).

    Fans follow Keras: fan_in = in_channels x kernel volume, fan_out = out_channels x kernel
    volume, which is also what ``nn.init.xavier_uniform_`` computes. Norm layers keep
    weight 1 / bias 0 (also the Keras default).
    """
    for layer in module.modules():
        if isinstance(layer, _WEIGHTED):
            nn.init.xavier_uniform_(layer.weight)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
    return module


def apply_init(module: nn.Module, init: Init) -> nn.Module:
    """``init="keras"``: :func:`keras_init_`; ``"torch"``: leave PyTorch's default init."""
    if init == "keras":
        keras_init_(module)
    elif init != "torch":
        raise ValueError(f"init must be 'keras' or 'torch', not {init!r}")
    return module


def conv_out(size: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    """Output length of a convolution or pooling along one axis (floor mode)."""
    return (size + 2 * padding - kernel) // stride + 1


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation over channels (Hu et al. 2018).

    Input ``(B, C, *spatial)`` (any number of spatial dims, or none: a feature vector
    ``(B, C)``). Squeeze: mean over the spatial dims; excite: FC C -> C/r, ReLU, FC -> C,
    sigmoid; output ``x * s`` (``residual=True``: ``x + x * s``), same shape and dtype.
    """

    def __init__(self, channels: int, reduction: int = 16, residual: bool = False) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)
        self.fc1 = nn.Linear(channels, hidden)
        self.fc2 = nn.Linear(hidden, channels)
        self.residual = residual

    def forward(self, x: Tensor) -> Tensor:
        squeezed = x.flatten(2).mean(-1) if x.dim() > 2 else x
        scale = torch.sigmoid(self.fc2(F.relu(self.fc1(squeezed))))
        scale = scale.view(*scale.shape, *([1] * (x.dim() - 2)))
        return x + x * scale if self.residual else x * scale


class SpatialGate3d(nn.Module):
    """CBAM-style spatial gate per frame: channel mean and max -> conv 1xkxk -> sigmoid.

    Input/output ``(B, C, T, H, W)``; the gate ``(B, 1, T, H, W)`` multiplies every channel.
    """

    def __init__(self, kernel: int = 7) -> None:
        super().__init__()
        self.conv = nn.Conv3d(2, 1, (1, kernel, kernel), padding=(0, kernel // 2, kernel // 2))

    def forward(self, x: Tensor) -> Tensor:
        pooled = torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.conv(pooled))


class TemporalGate(nn.Module):
    """Frame weights: mean over C, H, W -> FC T -> T/r -> T -> sigmoid, times each frame.

    Input/output ``(B, C, T, H, W)`` with ``T == frames`` (fixed when the model is built).
    """

    def __init__(self, frames: int, reduction: int = 2) -> None:
        super().__init__()
        hidden = max(1, frames // reduction)
        self.frames = frames
        self.fc1 = nn.Linear(frames, hidden)
        self.fc2 = nn.Linear(hidden, frames)

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[2] != self.frames:
            raise ValueError(f"TemporalGate was built for {self.frames} frames, got {x.shape[2]}")
        pooled = x.mean(dim=(1, 3, 4))
        gate = torch.sigmoid(self.fc2(F.relu(self.fc1(pooled))))
        return x * gate[:, None, :, None, None]


class HybridAttention3d(nn.Module):
    """Hybrid attention (paper 002's "HA"): :class:`SpatialGate3d` then :class:`TemporalGate`.

    Input/output ``(B, C, T, H, W)``.
    """

    def __init__(self, frames: int, spatial_kernel: int = 7, temporal_reduction: int = 2) -> None:
        super().__init__()
        self.spatial = SpatialGate3d(spatial_kernel)
        self.temporal = TemporalGate(frames, temporal_reduction)

    def forward(self, x: Tensor) -> Tensor:
        return self.temporal(self.spatial(x))


class PooledBatchNorm3d(nn.BatchNorm3d):
    """BatchNorm3d for pooled ``(B, C, 1, 1, 1)`` descriptors.

    In training a batch of one such descriptor has one value per channel, where plain batch
    norm raises; this layer then normalises with its running statistics instead.
    """

    def forward(self, x: Tensor) -> Tensor:
        if self.training and x.shape[0] * x[0, 0].numel() <= 1:
            return F.batch_norm(
                x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps
            )
        return super().forward(x)


def conv_pool_stream(filters: tuple[int, int], kernel: int) -> nn.Sequential:
    """Two same-padded ``kernel`` x ``kernel`` convolutions (1 -> filters[0] -> filters[1]
    channels), each with ReLU and 2x2 max-pooling, flattened: (B, 1, H, W) ->
    (B, filters[1] * (H // 4) * (W // 4)) for odd ``kernel``. MBCC's branches and OFF-ApexNet's
    streams."""
    return nn.Sequential(
        nn.Conv2d(1, filters[0], kernel, padding=kernel // 2),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
        nn.Conv2d(filters[0], filters[1], kernel, padding=kernel // 2),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
        nn.Flatten(),
    )


def conv3d_stem(
    filters: int, kernel: int, pool: int, shape: tuple[int, ...]
) -> tuple[nn.Conv3d, nn.MaxPool3d, tuple[int, ...]]:
    """A 3-D CNN's first stage for (T, H, W) inputs of ``shape``: a same-padded ``kernel``^3
    convolution 1 -> ``filters`` channels, a ``pool``^3 max-pooling, and the pooled (T, H, W);
    ValueError when ``shape`` is smaller than the pooling. MER-3DCNN's and HA3D's stem."""
    pooled = tuple(size // pool for size in shape)
    if min(pooled) < 1:
        raise ValueError(f"a {shape} input is smaller than the {pool}x{pool}x{pool} pooling")
    return nn.Conv3d(1, filters, kernel, padding=kernel // 2), nn.MaxPool3d(pool), pooled


def dense_layers(in_features: int, widths: tuple[int, ...], dropout: float) -> list[nn.Module]:
    """Per width: ``Linear(in, width)`` -> ReLU -> ``Dropout(dropout)``, chained; (B, in) float32
    -> (B, widths[-1]). A list, so that callers can prepend or append layers in one
    ``nn.Sequential`` whose state-dict keys (``0.weight``...) are the layers' positions."""
    layers: list[nn.Module] = []
    for width in widths:
        layers += [nn.Linear(in_features, width), nn.ReLU(inplace=True), nn.Dropout(dropout)]
        in_features = width
    return layers


def classifier_head(
    in_features: int, n_classes: int, hidden: int | tuple[int, ...], dropout: float
) -> nn.Sequential:
    """The dense classifier most families end with: :func:`dense_layers` of ``hidden`` (one
    width or several) then ``Linear(hidden[-1], n_classes)``; (B, in_features) -> logits (B, K).
    E.g. ``classifier_head(f, K, 128, 0.5)``: dense 128 ReLU -> dropout 0.5 -> dense K."""
    widths = (hidden,) if isinstance(hidden, int) else tuple(hidden)
    return nn.Sequential(
        *dense_layers(in_features, widths, dropout),
        nn.Linear(widths[-1] if widths else in_features, n_classes),
    )


def flatten_features(x: Tensor, head: Literal["flatten", "gap"]) -> Tensor:
    """``(B, C, *spatial)`` -> ``(B, C * prod(spatial))`` (flatten) or ``(B, C)`` (gap)."""
    return x.flatten(1) if head == "flatten" else x.flatten(2).mean(-1)
