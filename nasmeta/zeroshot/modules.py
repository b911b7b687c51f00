"""Finding the layers proxies measure, generically, in any built network of any space.

Proxies look for module types, not names: weight layers are ``Conv*d`` / ``Linear``; ReLUs are the ReLU
family of ``nn`` modules (a functional ``F.relu`` inside a ``forward`` is invisible to hooks, so spaces that
want NASWOT / TE-NAS regions must use ``nn.ReLU`` modules — all of nasmeta's spaces do); BatchNorm is any
``_BatchNorm`` subclass.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.conv import _ConvNd

from nasmeta.zeroshot.registry import ProxyNotApplicable

WEIGHT_LAYER_TYPES = (_ConvNd, nn.Linear)
# every member has its kink at 0, so "input > 0" is the unit's linear piece
RELU_TYPES = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.RReLU)
BN_TYPES = (_BatchNorm,)


def weight_layers(model: nn.Module, proxy: str) -> list[nn.Module]:
    layers = [m for m in model.modules() if isinstance(m, WEIGHT_LAYER_TYPES) and m.weight is not None]
    if not layers:
        raise ProxyNotApplicable(f"{proxy}: the network has no Conv/Linear layers")
    return layers


def relu_modules(model: nn.Module, proxy: str) -> list[nn.Module]:
    relus = [m for m in model.modules() if isinstance(m, RELU_TYPES)]
    if not relus:
        raise ProxyNotApplicable(f"{proxy}: the network has no ReLU modules (functional ReLUs cannot be hooked)")
    return relus


def bn_modules(model: nn.Module, proxy: str) -> list[_BatchNorm]:
    bns = [m for m in model.modules() if isinstance(m, BN_TYPES)]
    if not bns:
        raise ProxyNotApplicable(f"{proxy}: the network has no BatchNorm layers")
    return bns


def bypass_batchnorm(model: nn.Module) -> int:
    """Replace every BatchNorm module by ``nn.Identity`` in place; returns how many were replaced."""
    replaced = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, BN_TYPES):
                setattr(parent, name, nn.Identity())
                replaced += 1
    return replaced


def model_device(model: nn.Module) -> torch.device:
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device("cpu")


def gaussian_init(model: nn.Module) -> None:
    """Zen-NAS init: Conv/Linear weights N(0, 1), biases 0; BN gamma 1, beta 0."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, WEIGHT_LAYER_TYPES):
                nn.init.normal_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, BN_TYPES) and m.affine:
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)


def kaiming_init(model: nn.Module, mode: str = "fan_in") -> None:
    """TE-NAS init: Conv/Linear Kaiming normal (``mode`` fan_in / fan_out, ReLU gain), biases 0; BN 1 / 0."""
    if mode not in {"fan_in", "fan_out"}:
        raise ValueError(f"kaiming mode must be fan_in or fan_out, got {mode!r}")
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, WEIGHT_LAYER_TYPES):
                nn.init.kaiming_normal_(m.weight, mode=mode, nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, BN_TYPES) and m.affine:
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
