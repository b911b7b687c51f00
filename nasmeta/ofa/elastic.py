"""The elastic Once-for-All network: every sub-network of an :class:`~nasmeta.spaces.ofa.OFASpace` in one set of
weights (Cai et al. 2020, "Once-for-All", ICLR; reference code mit-han-lab/once-for-all).

- Elastic kernel: each depthwise convolution keeps one ``k_max x k_max`` kernel; a smaller kernel is the centre of
  the next larger one multiplied by a *kernel transformation matrix* (``k^2 x k^2``, one per layer and per step,
  shared by all channels, initialised to the identity): 7 -> 5 with a 25 x 25 matrix, then 5 -> 3 with a 9 x 9 one
  (OFA's ``DynamicSeparableConv2d``, transform mode 1).
- Elastic depth: a stage runs its first ``d`` blocks.
- Elastic expansion (width): a block uses the first ``mid`` middle channels of its 1x1 expand, depthwise and
  1x1 project convolutions and their BatchNorms; :func:`sort_channels` orders middle channels by importance (L1
  norm of the project weights) before the width phase, as OFA's ``re_organize_middle_weights`` does, so the
  first channels are the most important.
- Elastic resolution: the stem resizes the input to the active resolution.

:func:`extract_subnet` copies one configuration's weights (sliced channels, transformed kernels, sliced BN
statistics) into the plain :class:`~nasmeta.spaces.ofa.OFASubnet` that ``space.build`` gives; in eval mode both
compute the same outputs.  :func:`recalibrate_bn` resets a sub-network's BN statistics from training images
(OFA's ``set_running_statistics``): shared running statistics of the elastic net do not fit any one sub-network.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from nasmeta.spaces.base import Architecture
from nasmeta.spaces.ofa import Head, OFASpace, OFASubnet, Stem, activation


def _bn(bn: nn.BatchNorm2d, x: torch.Tensor) -> torch.Tensor:
    """BatchNorm over the first ``x.shape[1]`` channels (sliced statistics are views: training updates them)."""
    c = x.shape[1]
    if c == bn.num_features:
        return bn(x)
    return F.batch_norm(
        x,
        bn.running_mean[:c],
        bn.running_var[:c],
        bn.weight[:c],
        bn.bias[:c],
        bn.training,
        0.1 if bn.momentum is None else bn.momentum,
        bn.eps,
    )


class _ConvBN(nn.Module):
    """Holder of a max-size conv weight and BN (names match ``ConvBNAct`` of the plain sub-network)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, groups: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(c_out)


class _ElasticDepthwise(_ConvBN):
    """Depthwise conv with a ``k_max`` kernel and the transformation matrices to every smaller kernel."""

    def __init__(self, channels: int, kernels: Sequence[int]) -> None:
        self.kernels = sorted(kernels, reverse=True)
        super().__init__(channels, channels, self.kernels[0], groups=channels)
        for big, small in zip(self.kernels, self.kernels[1:], strict=False):
            self.register_parameter(f"transform_{big}to{small}", nn.Parameter(torch.eye(small * small)))

    def kernel(self, size: int, channels: int) -> torch.Tensor:
        """The ``(channels, 1, size, size)`` kernel: centre crops chained through the transformation matrices."""
        if size not in self.kernels:
            raise ValueError(f"kernel size {size} is not one of {self.kernels}")
        weight = self.conv.weight[:channels]
        for big, small in zip(self.kernels, self.kernels[1:], strict=False):
            if big == size:
                break
            start = (big - small) // 2
            centre = weight[:, :, start : start + small, start : start + small].reshape(channels, small * small)
            weight = F.linear(centre, getattr(self, f"transform_{big}to{small}")).reshape(channels, 1, small, small)
        return weight


class ElasticBlock(nn.Module):
    """An inverted-residual block with elastic kernel and middle width (and the stage's elastic depth above)."""

    def __init__(self, c_in: int, c_out: int, kernels: Sequence[int], max_mid: int, stride: int, act: str) -> None:
        super().__init__()
        self.stride = stride
        self.expand = _ConvBN(c_in, max_mid, 1)
        self.depthwise = _ElasticDepthwise(max_mid, kernels)
        self.project = _ConvBN(max_mid, c_out, 1)
        self.act = activation(act)
        self.residual = stride == 1 and c_in == c_out
        self.active_kernel = max(kernels)
        self.active_mid = max_mid

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mid, k = self.active_mid, self.active_kernel
        out = self.act(_bn(self.expand.bn, F.conv2d(x, self.expand.conv.weight[:mid])))
        weight = self.depthwise.kernel(k, mid)
        out = self.act(_bn(self.depthwise.bn, F.conv2d(out, weight, None, self.stride, k // 2, 1, mid)))
        out = self.project.bn(F.conv2d(out, self.project.conv.weight[:, :mid]))
        return out + x if self.residual else out


class ElasticOFANet(nn.Module):
    """The elastic network of ``space``; :meth:`set_active` selects the sub-network that ``forward`` runs."""

    def __init__(self, space: OFASpace, num_classes: int, input_shape: tuple[int, int, int] = (3, 32, 32)) -> None:
        super().__init__()
        if not isinstance(space, OFASpace):
            raise ValueError(f"the elastic OFA network needs an OFA space, got {space!r}")
        self.space = space
        self.num_classes = num_classes
        self.input_shape = tuple(input_shape)
        c = space.config
        self.stem = Stem(input_shape[0], c, max(c.resolutions))
        stages = []
        c_in = c.stem_channels
        for s, width in enumerate(c.widths):
            blocks = []
            for j in range(c.max_depth):
                stride = c.strides[s] if j == 0 else 1
                max_mid = c.mid_channels(c_in, max(c.expands))
                blocks.append(ElasticBlock(c_in, width, c.kernels, max_mid, stride, c.activations[s]))
                c_in = width
            stages.append(nn.ModuleList(blocks))
        self.stages = nn.ModuleList(stages)
        self.head = Head(c_in, c, num_classes)
        self.active_depths = [c.max_depth] * c.n_stages
        self.active: Architecture = space.largest()
        self.set_active(self.active)

    def set_active(self, arch: Architecture) -> None:
        """Run ``arch`` from now on (resolution, depths, kernels, middle widths)."""
        c = self.space.config
        resolution, depths, _, _ = self.space.decode(arch)
        self.stem.resize.resolution = int(resolution)
        self.active_depths = list(depths)
        c_in = c.stem_channels
        for s, stage in enumerate(self.space.active_blocks(arch)):
            for j, (kernel, expand) in enumerate(stage):
                block = self.stages[s][j]
                block.active_kernel = kernel
                block.active_mid = c.mid_channels(c_in, expand)
                c_in = c.widths[s]
        self.active = arch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for stage, depth in zip(self.stages, self.active_depths, strict=True):
            for block in stage[:depth]:
                x = block(x)
        return self.head(x)


@torch.no_grad()
def sort_channels(net: ElasticOFANet) -> None:
    """Order every block's middle channels by the L1 norm of their project weights, largest first (OFA's
    ``re_organize_middle_weights``); the largest sub-network computes the same function afterwards."""
    for stage in net.stages:
        for block in stage:
            importance = block.project.conv.weight.abs().sum(dim=(0, 2, 3))
            order = torch.argsort(importance, descending=True)
            block.project.conv.weight.copy_(block.project.conv.weight[:, order])
            block.expand.conv.weight.copy_(block.expand.conv.weight[order])
            block.depthwise.conv.weight.copy_(block.depthwise.conv.weight[order])
            for bn in (block.expand.bn, block.depthwise.bn):
                for tensor in (bn.weight, bn.bias, bn.running_mean, bn.running_var):
                    tensor.copy_(tensor[order])


def _bn_state(bn: nn.BatchNorm2d, channels: int, prefix: str) -> dict[str, torch.Tensor]:
    return {
        f"{prefix}.weight": bn.weight[:channels],
        f"{prefix}.bias": bn.bias[:channels],
        f"{prefix}.running_mean": bn.running_mean[:channels],
        f"{prefix}.running_var": bn.running_var[:channels],
        f"{prefix}.num_batches_tracked": bn.num_batches_tracked,
    }


@torch.no_grad()
def subnet_state_dict(net: ElasticOFANet, arch: Architecture) -> dict[str, torch.Tensor]:
    """The state dict of ``space.build(arch)`` holding the elastic network's weights for ``arch``."""
    c = net.space.config
    state = {f"stem.{k}": v for k, v in net.stem.state_dict().items()}
    state.update({f"head.{k}": v for k, v in net.head.state_dict().items()})
    c_in = c.stem_channels
    for s, stage in enumerate(net.space.active_blocks(arch)):
        for j, (kernel, expand) in enumerate(stage):
            block, prefix, mid = net.stages[s][j], f"stages.{s}.{j}", c.mid_channels(c_in, expand)
            state[f"{prefix}.expand.conv.weight"] = block.expand.conv.weight[:mid]
            state.update(_bn_state(block.expand.bn, mid, f"{prefix}.expand.bn"))
            state[f"{prefix}.depthwise.conv.weight"] = block.depthwise.kernel(kernel, mid)
            state.update(_bn_state(block.depthwise.bn, mid, f"{prefix}.depthwise.bn"))
            state[f"{prefix}.project.conv.weight"] = block.project.conv.weight[:, :mid]
            state.update(_bn_state(block.project.bn, c.widths[s], f"{prefix}.project.bn"))
            c_in = c.widths[s]
    return {k: v.detach().clone() for k, v in state.items()}


def extract_subnet(net: ElasticOFANet, arch: Architecture) -> OFASubnet:
    """``arch`` as a plain module with the elastic network's weights (no retraining)."""
    model = net.space.build(arch, net.num_classes, net.input_shape)
    model.load_state_dict(subnet_state_dict(net, arch))
    return model.to(next(net.parameters()).device)


@torch.no_grad()
def recalibrate_bn(model: nn.Module, images: torch.Tensor, batch_size: int = 256) -> nn.Module:
    """Reset every BatchNorm's running statistics and re-estimate them as the exact average over ``images``
    (``momentum=None``), in train mode without gradients; returns ``model`` in eval mode."""
    if len(images) < 2:
        raise ValueError(f"BN recalibration needs at least 2 images, got {len(images)}")
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    saved = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    try:
        for start in range(0, len(images), batch_size):
            chunk = images[start : start + batch_size]
            if len(chunk) > 1:
                model(chunk)
    finally:
        for m, momentum in zip(norms, saved, strict=True):
            m.momentum = momentum
    return model.eval()
