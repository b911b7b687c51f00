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


def cell_network(
    arch: Architecture | str, num_classes: int, input_shape: tuple[int, int, int], C: int = 8, N: int = 1
) -> nn.Module:
    """The NB201 network of ``arch`` (an NB201 string or Architecture) at ``C`` channels, ``N`` cells per stage."""
    space = get_space("nb201")
    if isinstance(arch, str):
        arch = space.parse(arch)
    return no_running_stats(space.build(arch, num_classes, tuple(input_shape), C=C, N=N))
