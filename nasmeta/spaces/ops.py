"""Primitive operations shared by every space, their standalone networks and their supernets.

Follows the definitions of the reference implementations (NAS-Bench-201: Dong & Yang 2020, "NAS-Bench-201";
DARTS: Liu et al. 2019; NAS-Bench-Macro: Su et al. 2021, "Prioritized Architecture Sampling"), written anew.
Every op maps ``(N, C_in, H, W) -> (N, C_out, H/stride, W/stride)``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


class ReLUConvBN(nn.Sequential):
    """ReLU -> Conv (no bias) -> BN: the NB201 ``nor_conv`` op and DARTS' preprocessing."""

    def __init__(
        self, c_in: int, c_out: int, kernel: int, stride: int, padding: int, dilation: int = 1, affine: bool = True
    ) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, dilation=dilation, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )


class DilConv(nn.Sequential):
    """ReLU -> depthwise dilated conv -> pointwise conv -> BN (DARTS ``dil_conv``)."""

    def __init__(
        self, c_in: int, c_out: int, kernel: int, stride: int, padding: int, dilation: int, affine: bool = True
    ) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_in, kernel, stride, padding, dilation=dilation, groups=c_in, bias=False),
            nn.Conv2d(c_in, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )


class SepConv(nn.Sequential):
    """Two stacked dilation-1 ``DilConv`` blocks, the first carrying the stride (DARTS ``sep_conv``)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int, affine: bool = True) -> None:
        super().__init__(
            DilConv(c_in, c_in, kernel, stride, padding, 1, affine),
            DilConv(c_in, c_out, kernel, 1, padding, 1, affine),
        )


class Identity(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class Zero(nn.Module):
    """The ``none`` op: zeros of the output shape (keeps the graph connected for supernets)."""

    def __init__(self, stride: int = 1, c_out: int | None = None) -> None:
        super().__init__()
        self.stride = stride
        self.c_out = c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        if self.c_out is not None and self.c_out != x.shape[1]:
            shape = (x.shape[0], self.c_out, *x.shape[2:])
            return x.new_zeros(shape)
        return x.mul(0.0)


class Noise(nn.Module):
    """RobustDARTS S4 ``noise`` op: fresh N(0, 1) of the (strided) input's shape, ignoring its values."""

    def __init__(self, stride: int = 1) -> None:
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        return torch.randn_like(x)


class FactorizedReduce(nn.Module):
    """Halve the resolution with two offset stride-2 1x1 convs, concatenated (DARTS)."""

    def __init__(self, c_in: int, c_out: int, affine: bool = True) -> None:
        super().__init__()
        if c_out % 2:
            raise ValueError(f"FactorizedReduce needs an even number of output channels, got {c_out}")
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.conv_2 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(c_out, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        # the second path is shifted by one pixel so the two halves see different positions
        y = nn.functional.pad(x[:, :, 1:, 1:], (0, 1, 0, 1))
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(y)], dim=1))


class NB201Pool(nn.Module):
    """NB201 ``avg_pool_3x3``: 3x3, stride 1, pad 1, count_include_pad=False (1x1 ReLUConvBN first if C changes)."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1, affine: bool = True) -> None:
        super().__init__()
        self.preprocess = None if c_in == c_out else ReLUConvBN(c_in, c_out, 1, 1, 0, affine=affine)
        self.pool = nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.preprocess is not None:
            x = self.preprocess(x)
        return self.pool(x)


class ResNetBasicBlock(nn.Module):
    """NB201's residual reduction block between stages.

    ReLUConvBN 3x3 (stride) -> ReLUConvBN 3x3, plus a shortcut AvgPool2d(2, 2) -> Conv1x1 (no bias).
    """

    def __init__(self, c_in: int, c_out: int, stride: int = 2, affine: bool = True) -> None:
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, stride, 1, affine=affine)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, 1, 1, affine=affine)
        if stride == 2:
            self.downsample: nn.Module | None = nn.Sequential(
                nn.AvgPool2d(kernel_size=2, stride=2, padding=0), nn.Conv2d(c_in, c_out, 1, bias=False)
            )
        elif c_in != c_out:
            self.downsample = ReLUConvBN(c_in, c_out, 1, 1, 0, affine=affine)
        else:
            self.downsample = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        return residual + self.conv_b(self.conv_a(x))


class InvertedResidual(nn.Module):
    """MobileNetV2 block (NAS-Bench-Macro choices 1 and 2).

    Conv1x1 expand + BN + ReLU, depthwise kxk + BN + ReLU, Conv1x1 project + BN; residual when stride 1 and
    ``c_in == c_out``.
    """

    def __init__(self, c_in: int, c_out: int, stride: int, kernel: int, expansion: int) -> None:
        super().__init__()
        hidden = c_in * expansion
        self.use_residual = stride == 1 and c_in == c_out
        self.block = nn.Sequential(
            nn.Conv2d(c_in, hidden, 1, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU(inplace=False),
            nn.Conv2d(hidden, hidden, kernel, stride, kernel // 2, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU(inplace=False),
            nn.Conv2d(hidden, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        return x + out if self.use_residual else out


class ConvBN(nn.Sequential):
    """Conv1x1 (no bias) + BN: NAS-Bench-Macro's identity when the stride or channel count changes."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))


# --- op factories by name: (c_in, c_out, stride, affine) -> module ---------------------------------------------
OpFactory = Callable[[int, int, int, bool], nn.Module]

NB201_OPS: dict[str, OpFactory] = {
    "none": lambda ci, co, s, a: Zero(s, co),
    "skip_connect": lambda ci, co, s, a: Identity() if s == 1 and ci == co else FactorizedReduce(ci, co, a),
    "nor_conv_1x1": lambda ci, co, s, a: ReLUConvBN(ci, co, 1, s, 0, affine=a),
    "nor_conv_3x3": lambda ci, co, s, a: ReLUConvBN(ci, co, 3, s, 1, affine=a),
    "avg_pool_3x3": lambda ci, co, s, a: NB201Pool(ci, co, s, a),
}


def _darts_pool(kind: str) -> OpFactory:
    def make(ci: int, co: int, s: int, a: bool) -> nn.Module:
        if ci != co:
            raise ValueError(f"DARTS {kind}_pool_3x3 keeps channels; got {ci} -> {co}")
        if kind == "max":
            return nn.MaxPool2d(3, stride=s, padding=1)
        return nn.AvgPool2d(3, stride=s, padding=1, count_include_pad=False)

    return make


DARTS_OPS: dict[str, OpFactory] = {
    "none": lambda ci, co, s, a: Zero(s, co),
    "max_pool_3x3": _darts_pool("max"),
    "avg_pool_3x3": _darts_pool("avg"),
    "skip_connect": lambda ci, co, s, a: Identity() if s == 1 else FactorizedReduce(ci, co, a),
    "sep_conv_3x3": lambda ci, co, s, a: SepConv(ci, co, 3, s, 1, a),
    "sep_conv_5x5": lambda ci, co, s, a: SepConv(ci, co, 5, s, 2, a),
    "dil_conv_3x3": lambda ci, co, s, a: DilConv(ci, co, 3, s, 2, 2, a),
    "dil_conv_5x5": lambda ci, co, s, a: DilConv(ci, co, 5, s, 4, 2, a),
    "noise": lambda ci, co, s, a: Noise(s),
}


def make_op(
    family: dict[str, OpFactory], name: str, c_in: int, c_out: int, stride: int, affine: bool = True
) -> nn.Module:
    """Build op ``name`` from an op family; an unknown name raises ``ValueError`` naming it."""
    if name not in family:
        raise ValueError(f"unknown op {name!r}; expected one of {sorted(family)}")
    return family[name](c_in, c_out, stride, affine)
