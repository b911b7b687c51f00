"""NAS-Bench-Macro: a chain ("global") space of 8 MobileNetV2-style layers.

Su et al. 2021, "Prioritized Architecture Sampling with Monte-Carlo Tree Search" (CVPR), benchmark and training
code at xiusu/NAS-Bench-Macro.  Each of the 8 searchable layers is one of

- ``0`` identity (a Conv1x1 + BN projection where the layer has stride 2 or changes channels),
- ``1`` inverted residual, kernel 3, expansion 3 (``ir_3x3_t3``),
- ``2`` inverted residual, kernel 5, expansion 6 (``ir_5x5_t6``),

so the space has 3^8 = 6,561 encodings.  The network (METHODS.md): stem Conv3x3(C_in -> 32, no bias) + BN + ReLU;
stages of [2, 3, 3] layers whose first layer has stride 2 and doubles the channels (32 -> 64 -> 128 -> 256);
head Conv1x1(-> 1280, no bias) + BN + ReLU, global average pooling, Linear.

Canonical form (``arch_id``).  A stride-1 identity layer inside a stage is a true no-op, so only the *order of
the non-identity layers* after a stage's first layer matters: '10' and '01' in the last two slots of a stage
are the same network.  ``canonical`` therefore moves each stage's stride-1 identities to the end of the stage,
exactly the normalisation the benchmark's own training script applies before training (``get_real_arch``), so
isomorphic encodings share an id: 3,969 distinct networks among the 6,561 encodings, and the table gives
identical results to every encoding of one network.  The first layer of a stage is never moved (its identity is
a Conv1x1 + BN projection, a different network).

Encoding: a tuple of 8 ints in {0, 1, 2}; human form: the 8-character string of the benchmark, e.g. '02012100'.
``enumerate`` yields encodings in lexicographic order ('00000000', '00000001', ..., '22222222'), not in the
JSON file's order.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from nasmeta.spaces import register_space
from nasmeta.spaces.base import Architecture, SearchSpace
from nasmeta.spaces.ops import ConvBN, InvertedResidual

#: layers per stage; each stage's first layer has stride 2 and doubles the channels
STAGES: tuple[int, ...] = (2, 3, 3)
NUM_LAYERS = sum(STAGES)
MACRO_OPS: tuple[str, ...] = ("identity", "ir_3x3_t3", "ir_5x5_t6")
#: (kernel, expansion) of the inverted-residual choices
_IR_CONFIG = {1: (3, 3), 2: (5, 6)}
#: node labels of ``graph`` beyond the layer ops
GRAPH_INPUT, GRAPH_OUTPUT = len(MACRO_OPS), len(MACRO_OPS) + 1


def _stage_starts() -> tuple[int, ...]:
    return tuple(int(s) for s in np.cumsum((0, *STAGES[:-1])))


@register_space("macro")
class MacroSpace(SearchSpace):
    """The NAS-Bench-Macro chain space (8 layers x 3 choices)."""

    name = "macro"
    ops = MACRO_OPS

    # -- text and validation -------------------------------------------------------------------------
    def parse(self, text: str) -> Architecture:
        if not isinstance(text, str):
            raise ValueError(f"a Macro architecture string must be a str, got {type(text).__name__}: {text!r}")
        value = text.strip()
        bad = sorted({c for c in value if c not in "012"})
        if bad:
            raise ValueError(f"Macro architecture {text!r} has characters {bad} outside '0', '1', '2'")
        if len(value) != NUM_LAYERS:
            raise ValueError(f"Macro architecture {text!r} has {len(value)} layers, expected {NUM_LAYERS}")
        return Architecture(self.name, tuple(int(c) for c in value))

    def to_str(self, arch: Architecture) -> str:
        self._check_space(arch)
        return "".join(str(c) for c in arch.encoding)

    def from_encoding(self, encoding: Sequence) -> Architecture:
        if isinstance(encoding, str):
            return self.parse(encoding)
        try:
            values = list(encoding)
        except TypeError:
            raise ValueError(f"Macro encoding must be a sequence of {NUM_LAYERS} ints, got {encoding!r}") from None
        if len(values) != NUM_LAYERS:
            raise ValueError(f"Macro encoding {encoding!r} has length {len(values)}, expected {NUM_LAYERS}")
        choices = []
        for value in values:
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or int(value) not in (0, 1, 2):
                raise ValueError(f"Macro encoding {encoding!r} has choice {value!r}; each must be 0, 1 or 2")
            choices.append(int(value))
        return Architecture(self.name, tuple(choices))

    # -- identity --------------------------------------------------------------------------------------
    def canonical(self, arch: Architecture) -> list[int]:
        """Stride-1 identities of each stage moved to the stage's end (the benchmark's ``get_real_arch``)."""
        self._check_space(arch)
        out: list[int] = []
        for start, length in zip(_stage_starts(), STAGES, strict=True):
            first, *rest = arch.encoding[start : start + length]
            kept = [c for c in rest if c != 0]
            out += [first, *kept, *([0] * (len(rest) - len(kept)))]
        return out

    # -- sampling ----------------------------------------------------------------------------------------
    def sample(self, rng: np.random.Generator) -> Architecture:
        return Architecture(self.name, tuple(int(c) for c in rng.integers(0, len(MACRO_OPS), size=NUM_LAYERS)))

    def mutate(self, arch: Architecture, rng: np.random.Generator) -> Architecture:
        """Change one uniformly chosen layer to one of its two other choices (uniformly)."""
        self._check_space(arch)
        choices = list(arch.encoding)
        layer = int(rng.integers(NUM_LAYERS))
        others = [c for c in range(len(MACRO_OPS)) if c != choices[layer]]
        choices[layer] = others[int(rng.integers(len(others)))]
        return Architecture(self.name, tuple(choices))

    @property
    def size(self) -> int:
        return len(MACRO_OPS) ** NUM_LAYERS

    def enumerate(self) -> Iterator[Architecture]:
        """All 6,561 encodings in lexicographic order of their strings."""
        for choices in itertools.product(range(len(MACRO_OPS)), repeat=NUM_LAYERS):
            yield Architecture(self.name, choices)

    # -- encodings for predictors ---------------------------------------------------------------------------
    def tokens(self, arch: Architecture) -> list[int]:
        self._check_space(arch)
        return list(arch.encoding)

    @property
    def vocab_size(self) -> int:
        return len(MACRO_OPS)

    def graph(self, arch: Architecture) -> tuple[np.ndarray, list[int]]:
        """A chain input -> layer 1 -> ... -> layer 8 -> output; node labels are the layer choices, then
        ``GRAPH_INPUT`` (3) for the input and ``GRAPH_OUTPUT`` (4) for the output node."""
        self._check_space(arch)
        n = NUM_LAYERS + 2
        adjacency = np.zeros((n, n), dtype=np.int64)
        adjacency[np.arange(n - 1), np.arange(1, n)] = 1
        return adjacency, [GRAPH_INPUT, *arch.encoding, GRAPH_OUTPUT]

    def features(self, arch: Architecture) -> np.ndarray:
        """One-hot of each layer's choice: 8 x 3 = 24 floats."""
        self._check_space(arch)
        onehot = np.zeros((NUM_LAYERS, len(MACRO_OPS)), dtype=np.float32)
        onehot[np.arange(NUM_LAYERS), list(arch.encoding)] = 1.0
        return onehot.ravel()

    # -- networks ------------------------------------------------------------------------------------------
    def build(
        self,
        arch: Architecture,
        num_classes: int,
        input_shape: tuple[int, int, int] = (3, 32, 32),
        stem_channels: int = 32,
        head_channels: int = 1280,
        **size: Any,
    ) -> Any:
        """The benchmark network; ``stem_channels`` (doubled per stage) and ``head_channels`` shrink it."""
        self._check_space(arch)
        if size:
            raise ValueError(f"unknown Macro size arguments {sorted(size)}; use stem_channels, head_channels")
        return MacroNet(arch.encoding, num_classes, input_shape, stem_channels, head_channels)


class MacroNet(nn.Module):
    """The NAS-Bench-Macro network for one encoding (a plain module, no search machinery)."""

    def __init__(
        self,
        choices: Sequence[int],
        num_classes: int,
        input_shape: tuple[int, int, int] = (3, 32, 32),
        stem_channels: int = 32,
        head_channels: int = 1280,
    ) -> None:
        super().__init__()
        for label, value in (("num_classes", num_classes), ("stem_channels", stem_channels)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{label} must be a positive int, got {value!r}")
        if not isinstance(head_channels, int) or head_channels < 1:
            raise ValueError(f"head_channels must be a positive int, got {head_channels!r}")
        if len(input_shape) != 3:
            raise ValueError(f"input_shape must be (C, H, W), got {input_shape!r}")
        self.stem = nn.Sequential(
            nn.Conv2d(input_shape[0], stem_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(stem_channels),
            nn.ReLU(inplace=False),
        )
        layers: list[nn.Module] = []
        channels = stem_channels
        position = 0
        for length in STAGES:
            for index in range(length):
                stride, c_out = (2, channels * 2) if index == 0 else (1, channels)
                layers.append(_layer(choices[position], channels, c_out, stride))
                channels = c_out
                position += 1
        self.layers = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.Conv2d(channels, head_channels, 1, bias=False),
            nn.BatchNorm2d(head_channels),
            nn.ReLU(inplace=False),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(head_channels, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The head's feature map, just before global pooling."""
        return self.head(self.layers(self.stem(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.forward_features(x)), 1))


def _layer(choice: int, c_in: int, c_out: int, stride: int) -> nn.Module:
    if choice == 0:
        return nn.Identity() if stride == 1 and c_in == c_out else ConvBN(c_in, c_out, stride)
    kernel, expansion = _IR_CONFIG[choice]
    return InvertedResidual(c_in, c_out, stride, kernel, expansion)
