"""The networks few-shot meta-learning adapts: MAML's 4-conv net and a fixed NB201 cell network.

Finn et al., ICML 2017: 4 blocks of [3x3 conv with ``filters`` channels, BN, ReLU, 2x2 max-pool], then a linear
head (64 filters on Omniglot, 32 on Mini-ImageNet).  BN keeps no running statistics (``track_running_stats=False``):
MAML normalises with the statistics of the batch at meta-train and meta-test time alike, and a network without
buffers is a pure function of its parameters, which ``torch.func.functional_call`` needs.

Deviation: max-pooling uses ``ceil_mode`` so images smaller than 16x16 still leave a 1x1 map after four pools
(at 28x28 the maps are 14, 7, 4, 2, where MAML's floor pooling gives 14, 7, 3, 1).
"""

from __future__ import annotations

import torch
from torch import nn

from nasmeta.spaces import get_space
from nasmeta.spaces.base import Architecture


class ConvNet4(nn.Module):
    """MAML's 4-conv classifier for ``(in_channels, image_size, image_size)`` inputs."""

    def __init__(self, in_channels: int, num_classes: int, filters: int = 64, image_size: int = 28) -> None:
        super().__init__()
        for label, value in (
            ("in_channels", in_channels),
            ("num_classes", num_classes),
            ("filters", filters),
            ("image_size", image_size),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{label} must be a positive integer, got {value!r}")
        blocks: list[nn.Module] = []
        c = in_channels
        for _ in range(4):
            blocks += [
                nn.Conv2d(c, filters, 3, padding=1),
                nn.BatchNorm2d(filters, track_running_stats=False),
                nn.ReLU(),
                nn.MaxPool2d(2, ceil_mode=True),
            ]
            c = filters
        self.features = nn.Sequential(*blocks)
        side = image_size
        for _ in range(4):
            side = -(-side // 2)
        self.head = nn.Linear(filters * side * side, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1))


def no_running_stats(module: nn.Module) -> nn.Module:
    """Make every BN layer normalise by batch statistics only (MAML's transductive BN); returns ``module``."""
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.track_running_stats = False
            m.running_mean = None
            m.running_var = None
            m.num_batches_tracked = None
    return module


class BatchStatNorm2d(nn.Module):
    """Batch-statistics BN written with elementary ops, so it can be differentiated to any order.

    ``torch.batch_norm`` has no third derivative; second-order T-NAS needs one, because alpha' (a gradient) depends
    on w and the w step then differentiates through it.  Parameter names (``weight``, ``bias``) match ``BatchNorm2d``.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, affine: bool = True) -> None:
        super().__init__()
        self.eps = eps
        if affine:
            self.weight = nn.Parameter(torch.ones(num_features))
            self.bias = nn.Parameter(torch.zeros(num_features))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=(0, 2, 3), keepdim=True)
        var = ((x - mean) ** 2).mean(dim=(0, 2, 3), keepdim=True)
        y = (x - mean) / torch.sqrt(var + self.eps)
        if self.weight is not None:
            y = y * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)
        return y


def composite_batch_norm(module: nn.Module) -> nn.Module:
    """Replace every ``BatchNorm2d`` in ``module`` by :class:`BatchStatNorm2d` (same parameters); returns it."""
    for parent in list(module.modules()):
        for name, child in list(parent._modules.items()):
            if isinstance(child, nn.BatchNorm2d):
                new = BatchStatNorm2d(child.num_features, child.eps, child.affine)
                if child.affine:
                    new.weight.data.copy_(child.weight.data)
                    new.bias.data.copy_(child.bias.data)
                parent._modules[name] = new
    return module


def cell_network(
    arch: Architecture | str, num_classes: int, input_shape: tuple[int, int, int], C: int = 8, N: int = 1
) -> nn.Module:
    """The NB201 network of ``arch`` (an NB201 string or Architecture) at ``C`` channels, ``N`` cells per stage."""
    space = get_space("nb201")
    if isinstance(arch, str):
        arch = space.parse(arch)
    return no_running_stats(space.build(arch, num_classes, tuple(input_shape), C=C, N=N))
