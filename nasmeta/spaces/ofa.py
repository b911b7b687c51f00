"""The Once-for-All space: an elastic MobileNetV3-like chain of inverted-residual stages.

Cai et al. 2020, "Once-for-All: Train One Network and Specialize it for Efficient Deployment" (ICLR), reference
code mit-han-lab/once-for-all (``OFAMobileNetV3``).  A network is a stem, a fixed first block, ``S`` stages of
inverted-residual (MBConv) blocks and a head; a sub-network chooses

- the input resolution (OFA: 128..224 in steps of 4),
- per stage its depth (OFA: {2, 3, 4}; the first ``d`` blocks are kept),
- per block its kernel size (OFA: {3, 5, 7}) and expansion ratio (OFA: {3, 4, 6}).

The elastic network that holds every sub-network and the kernel transformation matrices (7 -> 5 -> 3) is
:class:`nasmeta.ofa.elastic.ElasticOFANet`; this module is the space contract and the *plain* sub-network
(:class:`OFASubnet`, no elastic machinery) that ``build`` returns and that
:func:`nasmeta.ofa.elastic.extract_subnet` fills with the elastic network's weights.

Spaces: ``ofa`` has the paper's MobileNetV3 sizes (stem 16, stages of widths 24/40/80/112/160 with strides
2/2/2/1/2, head 960 -> 1280, ReLU in the first two stages, h-swish after); ``ofa-small`` is a CPU size for 32 px
images (stem 8 stride 2, stages 16/24/32, depth {1, 2, 3}, resolution {16, 24, 32}, head 64 -> 128).  Any other
size is an :class:`OFAConfig` given to :class:`OFASpace` (and :func:`register_ofa_space` to name it).

Deviations from the reference: no squeeze-and-excitation modules (OFA-MobileNetV3 has them in stages 2, 4 and
5); the input is resized to the sub-network's resolution *inside* the network (bilinear), where OFA resizes in the
data loader, so a sub-network is one module that takes the task's images as they are.  Middle channels are
``make_divisible(round(c_in * e), 8)`` as in OFA.

Encoding: a flat tuple ``(resolution, d_1..d_S, k_1..k_L, e_1..e_L)`` with ``L = S * max(depths)`` block slots;
slots beyond a stage's depth keep their values but are inactive, so ``canonical`` (hence ``arch_id``) ignores
them.  Human form: ``r32:d213:k735.357.553:e364.446.666`` (digits per slot, stages separated by ``.``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import nn
from torch.nn import functional as F

from nasmeta.spaces import register_space
from nasmeta.spaces.base import Architecture, SearchSpace

Activation = Literal["relu", "hswish"]


def make_divisible(value: float, divisor: int = 8) -> int:
    """OFA's channel rounding: nearest multiple of ``divisor``, never below 90 % of ``value``."""
    out = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if out < 0.9 * value:
        out += divisor
    return out


class OFAConfig(BaseModel):
    """Sizes and choices of an OFA space (defaults: the paper's OFA-MobileNetV3)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    widths: tuple[int, ...] = (24, 40, 80, 112, 160)
    strides: tuple[int, ...] = (2, 2, 2, 1, 2)
    activations: tuple[Activation, ...] = ("relu", "relu", "hswish", "hswish", "hswish")
    depths: tuple[int, ...] = (2, 3, 4)
    expands: tuple[int, ...] = (3, 4, 6)
    kernels: tuple[int, ...] = (3, 5, 7)
    resolutions: tuple[int, ...] = tuple(range(128, 225, 4))
    stem_channels: int = Field(16, ge=1)
    stem_stride: int = Field(2, ge=1)
    head_channels: int = Field(960, ge=1)
    feature_channels: int = Field(1280, ge=1)
    divisor: int = Field(8, ge=1)

    @model_validator(mode="after")
    def _check(self) -> OFAConfig:
        n = len(self.widths)
        if n < 1 or len(self.strides) != n or len(self.activations) != n:
            raise ValueError(
                f"widths {self.widths}, strides {self.strides} and activations {self.activations} must have one "
                "entry per stage"
            )
        for label, values, low, high in (
            ("depths", self.depths, 1, 9),
            ("expands", self.expands, 1, 9),
            ("kernels", self.kernels, 1, 9),
            ("widths", self.widths, 1, 1 << 16),
            ("strides", self.strides, 1, 4),
            ("resolutions", self.resolutions, 4, 4096),
        ):
            bad = [v for v in values if not low <= v <= high]
            repeated = label not in ("widths", "strides") and len(set(values)) != len(values)
            if not values or bad or repeated:
                raise ValueError(f"{label} must be distinct ints in [{low}, {high}], got {values}")
        if any(k % 2 == 0 for k in self.kernels):
            raise ValueError(f"kernels must be odd, got {self.kernels}")
        for name in ("depths", "expands", "kernels", "resolutions"):
            object.__setattr__(self, name, tuple(sorted(getattr(self, name))))
        return self

    @property
    def n_stages(self) -> int:
        return len(self.widths)

    @property
    def max_depth(self) -> int:
        return max(self.depths)

    @property
    def n_slots(self) -> int:
        return self.n_stages * self.max_depth

    def mid_channels(self, c_in: int, expand: int) -> int:
        return make_divisible(round(c_in * expand), self.divisor)

    def stage_inputs(self) -> list[int]:
        """Input channels of each stage (the first block's output is the stem width)."""
        return [self.stem_channels, *self.widths[:-1]]


#: the CPU size used here: 32 px images, three narrow stages
SMALL_CONFIG = OFAConfig(
    widths=(16, 24, 32),
    strides=(2, 2, 2),
    activations=("relu", "hswish", "hswish"),
    depths=(1, 2, 3),
    expands=(3, 4, 6),
    kernels=(3, 5, 7),
    resolutions=(16, 24, 32),
    stem_channels=8,
    stem_stride=2,
    head_channels=64,
    feature_channels=128,
)


class OFASpace(SearchSpace):
    """Sub-networks of one elastic OFA network (module docstring)."""

    def __init__(self, name: str = "ofa", config: OFAConfig | None = None) -> None:
        self.name = name
        self.config = config or OFAConfig()
        self.ops = tuple(f"mb_k{k}_e{e}" for k in self.config.kernels for e in self.config.expands)

    # -- layout ----------------------------------------------------------------------------------------------
    def decode(self, arch: Architecture) -> tuple[int, tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
        """(resolution, depths per stage, kernel per slot, expansion per slot)."""
        self._check_space(arch)
        c = self.config
        enc = arch.encoding
        s, n = c.n_stages, c.n_slots
        return enc[0], enc[1 : 1 + s], enc[1 + s : 1 + s + n], enc[1 + s + n :]

    def active_blocks(self, arch: Architecture) -> list[list[tuple[int, int]]]:
        """Per stage, the (kernel, expansion) of each active block."""
        _, depths, kernels, expands = self.decode(arch)
        m = self.config.max_depth
        return [[(kernels[s * m + j], expands[s * m + j]) for j in range(d)] for s, d in enumerate(depths)]

    def encode(
        self, resolution: int, depths: Sequence[int], kernels: Sequence[int], expands: Sequence[int]
    ) -> Architecture:
        """Validate and wrap the four parts (the inverse of :meth:`decode`)."""
        return self.from_encoding((resolution, *depths, *kernels, *expands))

    def largest(self) -> Architecture:
        c = self.config
        n = c.n_slots
        return self.encode(max(c.resolutions), [c.max_depth] * c.n_stages, [max(c.kernels)] * n, [max(c.expands)] * n)

    def smallest(self) -> Architecture:
        c = self.config
        n = c.n_slots
        return self.encode(min(c.resolutions), [min(c.depths)] * c.n_stages, [min(c.kernels)] * n, [min(c.expands)] * n)

    # -- text and validation -------------------------------------------------------------------------------
    def parse(self, text: str) -> Architecture:
        if not isinstance(text, str):
            raise ValueError(f"an OFA architecture string must be a str, got {type(text).__name__}: {text!r}")
        parts = text.strip().split(":")
        if len(parts) != 4 or [p[:1] for p in parts] != ["r", "d", "k", "e"]:
            raise ValueError(f"OFA architecture {text!r} is not of the form 'r32:d213:k735.357.553:e364.446.666'")
        c = self.config
        try:
            resolution = int(parts[0][1:])
            depths = [int(ch) for ch in parts[1][1:]]
            kernel_groups = parts[2][1:].split(".")
            expand_groups = parts[3][1:].split(".")
            if len(kernel_groups) != c.n_stages or len(expand_groups) != c.n_stages:
                raise ValueError(f"OFA architecture {text!r} needs {c.n_stages} stage groups separated by '.'")
            if any(len(g) != c.max_depth for g in (*kernel_groups, *expand_groups)):
                raise ValueError(f"OFA architecture {text!r} needs {c.max_depth} digits per stage group")
            kernels = [int(ch) for g in kernel_groups for ch in g]
            expands = [int(ch) for g in expand_groups for ch in g]
        except ValueError as err:
            if "OFA architecture" in str(err):
                raise
            raise ValueError(f"OFA architecture {text!r} has a non-digit choice: {err}") from None
        return self.encode(resolution, depths, kernels, expands)

    def to_str(self, arch: Architecture) -> str:
        resolution, depths, kernels, expands = self.decode(arch)
        m = self.config.max_depth

        def groups(values: Sequence[int]) -> str:
            return ".".join("".join(str(v) for v in values[i : i + m]) for i in range(0, len(values), m))

        return f"r{resolution}:d{''.join(str(d) for d in depths)}:k{groups(kernels)}:e{groups(expands)}"

    def from_encoding(self, encoding: Sequence) -> Architecture:
        if isinstance(encoding, str):
            return self.parse(encoding)
        c = self.config
        try:
            values = list(encoding)
        except TypeError:
            raise ValueError(f"OFA encoding must be a sequence of ints, got {encoding!r}") from None
        expected = 1 + c.n_stages + 2 * c.n_slots
        if len(values) != expected:
            raise ValueError(f"OFA encoding {encoding!r} has length {len(values)}, expected {expected}")
        for v in values:
            if isinstance(v, bool) or not isinstance(v, int | np.integer):
                raise ValueError(f"OFA encoding {encoding!r} has non-integer choice {v!r}")
        values = [int(v) for v in values]
        s, n = c.n_stages, c.n_slots
        checks = [
            ("resolution", values[:1], c.resolutions),
            ("depth", values[1 : 1 + s], c.depths),
            ("kernel", values[1 + s : 1 + s + n], c.kernels),
            ("expansion", values[1 + s + n :], c.expands),
        ]
        for label, got, allowed in checks:
            for v in got:
                if v not in allowed:
                    raise ValueError(f"OFA {label} {v} is not one of {list(allowed)} (space {self.name!r})")
        return Architecture(self.name, tuple(values))

    # -- identity ---------------------------------------------------------------------------------------------
    def canonical(self, arch: Architecture) -> list[Any]:
        """Resolution and the (kernel, expansion) of active blocks only: inactive slots do not change the net."""
        resolution = self.decode(arch)[0]
        return [resolution, [[list(b) for b in stage] for stage in self.active_blocks(arch)]]

    # -- sampling ---------------------------------------------------------------------------------------------
    def sample(self, rng: np.random.Generator) -> Architecture:
        c = self.config

        def pick(choices: Sequence[int], n: int) -> list[int]:
            return [int(choices[i]) for i in rng.integers(0, len(choices), size=n)]

        return self.encode(
            pick(c.resolutions, 1)[0],
            pick(c.depths, c.n_stages),
            pick(c.kernels, c.n_slots),
            pick(c.expands, c.n_slots),
        )

    def _genes(self, arch: Architecture) -> list[tuple[int, tuple[int, ...]]]:
        """(encoding position, allowed values) of every choice that changes the network."""
        c = self.config
        _, depths, _, _ = self.decode(arch)
        s, n, m = c.n_stages, c.n_slots, c.max_depth
        genes: list[tuple[int, tuple[int, ...]]] = [(0, c.resolutions)]
        genes += [(1 + i, c.depths) for i in range(s)]
        for stage, d in enumerate(depths):
            for j in range(d):
                slot = stage * m + j
                genes += [(1 + s + slot, c.kernels), (1 + s + n + slot, c.expands)]
        return [(pos, allowed) for pos, allowed in genes if len(allowed) > 1]

    def mutate(self, arch: Architecture, rng: np.random.Generator) -> Architecture:
        """Change one uniformly chosen active choice (resolution, a depth, an active block's kernel or expansion)."""
        genes = self._genes(arch)
        if not genes:
            raise ValueError(f"space {self.name!r} has a single architecture; nothing to mutate")
        values = list(arch.encoding)
        pos, allowed = genes[int(rng.integers(len(genes)))]
        others = [v for v in allowed if v != values[pos]]
        values[pos] = int(others[int(rng.integers(len(others)))])
        return Architecture(self.name, tuple(values))

    @property
    def size(self) -> int:
        c = self.config
        return len(c.resolutions) * len(c.depths) ** c.n_stages * (len(c.kernels) * len(c.expands)) ** c.n_slots

    # -- encodings for predictors ---------------------------------------------------------------------------------
    def _vocab(self) -> tuple[int, int, int, int]:
        c = self.config
        r, d, k = len(c.resolutions), len(c.depths), len(c.kernels)
        return 0, r, r + d, r + d + k  # offsets of resolution, depth, kernel, expansion tokens

    def tokens(self, arch: Architecture) -> list[int]:
        """Resolution, depths, then per slot kernel and expansion; inactive slots get the ``inactive`` token
        (the last id), so isomorphic encodings share tokens."""
        c = self.config
        resolution, depths, kernels, expands = self.decode(arch)
        r0, d0, k0, e0 = self._vocab()
        inactive = self.vocab_size - 1
        out = [r0 + c.resolutions.index(resolution), *(d0 + c.depths.index(d) for d in depths)]
        for slot in range(c.n_slots):
            if slot % c.max_depth < depths[slot // c.max_depth]:
                out += [k0 + c.kernels.index(kernels[slot]), e0 + c.expands.index(expands[slot])]
            else:
                out += [inactive, inactive]
        return out

    @property
    def vocab_size(self) -> int:
        c = self.config
        return len(c.resolutions) + len(c.depths) + len(c.kernels) + len(c.expands) + 1

    def graph(self, arch: Architecture) -> tuple[np.ndarray, list[int]]:
        """A chain input -> active blocks -> output; a block's label is its op id (kernel-major, ``ops``), the
        input ``len(ops)`` and the output ``len(ops) + 1``."""
        c = self.config
        blocks = [b for stage in self.active_blocks(arch) for b in stage]
        labels = [c.kernels.index(k) * len(c.expands) + c.expands.index(e) for k, e in blocks]
        n = len(labels) + 2
        adjacency = np.zeros((n, n), dtype=np.int64)
        adjacency[np.arange(n - 1), np.arange(1, n)] = 1
        return adjacency, [len(self.ops), *labels, len(self.ops) + 1]

    def features(self, arch: Architecture) -> np.ndarray:
        """OFA's accuracy-predictor encoding: one-hot resolution, one-hot depth per stage, and per slot one-hot
        kernel and expansion (all zeros for an inactive slot)."""
        c = self.config
        resolution, depths, kernels, expands = self.decode(arch)
        parts = [np.eye(len(c.resolutions), dtype=np.float32)[c.resolutions.index(resolution)]]
        parts += [np.eye(len(c.depths), dtype=np.float32)[c.depths.index(d)] for d in depths]
        for slot in range(c.n_slots):
            k_hot = np.zeros(len(c.kernels), dtype=np.float32)
            e_hot = np.zeros(len(c.expands), dtype=np.float32)
            if slot % c.max_depth < depths[slot // c.max_depth]:
                k_hot[c.kernels.index(kernels[slot])] = 1.0
                e_hot[c.expands.index(expands[slot])] = 1.0
            parts += [k_hot, e_hot]
        return np.concatenate(parts)

    # -- networks ---------------------------------------------------------------------------------------------------
    def build(
        self, arch: Architecture, num_classes: int, input_shape: tuple[int, int, int] = (3, 32, 32), **size: Any
    ) -> OFASubnet:
        """The plain sub-network (random init); sizes come from the space's :class:`OFAConfig`."""
        self._check_space(arch)
        if size:
            raise ValueError(f"OFA sizes are fixed by the space's OFAConfig; unknown build arguments {sorted(size)}")
        return OFASubnet(self.config, self.decode(arch)[0], self.active_blocks(arch), num_classes, input_shape)


def register_ofa_space(name: str, config: OFAConfig) -> OFASpace:
    """Register an OFA space of another size under ``name`` (so ``get_space(name)`` and exported sub-networks
    of it resolve in this process) and return it."""
    from nasmeta.spaces import get_space

    register_space(name)(lambda: OFASpace(name, config))
    space = get_space(name)
    if not isinstance(space, OFASpace) or space.config != config:
        raise ValueError(f"space name {name!r} is already taken by another space")
    return space


register_space("ofa")(lambda: OFASpace("ofa", OFAConfig()))
register_space("ofa-small")(lambda: OFASpace("ofa-small", SMALL_CONFIG))


# -- the plain sub-network ------------------------------------------------------------------------------------------
def activation(name: str) -> nn.Module:
    return nn.ReLU() if name == "relu" else nn.Hardswish()


class ConvBNAct(nn.Sequential):
    """Conv (no bias) -> BN -> optional activation; ``conv`` / ``bn`` / ``act`` names shared with the elastic net."""

    def __init__(
        self, c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1, act: str | None = "relu"
    ) -> None:
        super().__init__()
        self.add_module("conv", nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, groups=groups, bias=False))
        self.add_module("bn", nn.BatchNorm2d(c_out))
        if act is not None:
            self.add_module("act", activation(act))


class MBBlock(nn.Module):
    """Inverted residual: 1x1 expand -> kxk depthwise (stride) -> 1x1 project; residual when shapes match."""

    def __init__(self, c_in: int, c_out: int, kernel: int, mid: int, stride: int, act: str) -> None:
        super().__init__()
        self.expand = ConvBNAct(c_in, mid, 1, act=act)
        self.depthwise = ConvBNAct(mid, mid, kernel, stride, groups=mid, act=act)
        self.project = ConvBNAct(mid, c_out, 1, act=None)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.project(self.depthwise(self.expand(x)))
        return out + x if self.residual else out


class FirstBlock(nn.Module):
    """OFA's fixed first block: 3x3 depthwise -> 1x1 project (expansion 1), residual."""

    def __init__(self, channels: int, act: str) -> None:
        super().__init__()
        self.depthwise = ConvBNAct(channels, channels, 3, groups=channels, act=act)
        self.project = ConvBNAct(channels, channels, 1, act=None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.project(self.depthwise(x))


class Resize(nn.Module):
    """Bilinear resize to the sub-network's resolution (a no-op when the input already has it)."""

    def __init__(self, resolution: int) -> None:
        super().__init__()
        self.resolution = int(resolution)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] == self.resolution and x.shape[-2] == self.resolution:
            return x
        return F.interpolate(x, size=(self.resolution, self.resolution), mode="bilinear", align_corners=False)


class Head(nn.Module):
    """1x1 conv (BN, act) -> global average pool -> 1x1 feature conv (act, no BN) -> linear, as OFA-MobileNetV3."""

    def __init__(self, c_in: int, config: OFAConfig, num_classes: int) -> None:
        super().__init__()
        self.final = ConvBNAct(c_in, config.head_channels, 1, act="hswish")
        self.feature = nn.Conv2d(config.head_channels, config.feature_channels, 1, bias=False)
        self.act = nn.Hardswish()
        self.classifier = nn.Linear(config.feature_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.final(x).mean((2, 3), keepdim=True)
        return self.classifier(torch.flatten(self.act(self.feature(x)), 1))


class Stem(nn.Sequential):
    """Resize -> 3x3 conv (stride) BN h-swish -> first block."""

    def __init__(self, c_in: int, config: OFAConfig, resolution: int) -> None:
        super().__init__()
        self.add_module("resize", Resize(resolution))
        self.add_module("conv", ConvBNAct(c_in, config.stem_channels, 3, config.stem_stride, act="hswish"))
        self.add_module("first", FirstBlock(config.stem_channels, config.activations[0]))


class OFASubnet(nn.Module):
    """One sub-network as a plain module: ``stem``, ``stages`` (``ModuleList`` of ``Sequential``), ``head``."""

    def __init__(
        self,
        config: OFAConfig,
        resolution: int,
        blocks: Sequence[Sequence[tuple[int, int]]],
        num_classes: int,
        input_shape: tuple[int, int, int] = (3, 32, 32),
    ) -> None:
        super().__init__()
        if not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
        if len(input_shape) != 3:
            raise ValueError(f"input_shape must be (C, H, W), got {input_shape!r}")
        self.resolution = int(resolution)
        self.stem = Stem(input_shape[0], config, resolution)
        stages = []
        c_in = config.stem_channels
        for s, stage_blocks in enumerate(blocks):
            layers = []
            for j, (kernel, expand) in enumerate(stage_blocks):
                stride = config.strides[s] if j == 0 else 1
                mid = config.mid_channels(c_in, expand)
                layers.append(MBBlock(c_in, config.widths[s], kernel, mid, stride, config.activations[s]))
                c_in = config.widths[s]
            stages.append(nn.Sequential(*layers))
        self.stages = nn.ModuleList(stages)
        self.head = Head(c_in, config, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return self.head(x)


def feature_size(config: OFAConfig, resolution: int) -> list[int]:
    """Spatial size entering each stage and after the last one, for a square input of ``resolution``."""
    size = math.ceil(resolution / config.stem_stride)
    out = [size]
    for stride in config.strides:
        size = math.ceil(size / stride)
        out.append(size)
    return out
