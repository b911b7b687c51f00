"""The TAP network of TAPAS (Istrate et al., AAAI 2019) and its per-step input encoding.

TAP reads an architecture one layer (here: one token of ``space.tokens``) at a time.  Step ``t``'s input is

- the token's learned embedding (the layer's encoding),
- three cumulative cost features of the prefix ``tokens[: t + 1]``: depth, FLOPs and parameters,
- the dataset characterisation number (DCN) of the dataset the accuracy refers to,

an LSTM runs over the steps, and an MLP on the last hidden state (concatenated with the DCN once more) predicts
the (normalised) accuracy.

Cost features (:func:`prefix_cost_features`) come from the *built* benchmark networks, not from a hand-written
formula: for each position ``i`` and choice ``c`` the marginal FLOPs / parameters are
``X(base with position i set to c) - X(base)``, counted on networks built on the ``meta`` device with
``torch.utils.flop_counter`` (via :func:`nasmeta.cost.count_flops`) and :func:`nasmeta.cost.count_params` at the
CIFAR input (3x32x32, 10 classes).  Both supported spaces are additive in these marginals, so the prefix sums are
the exact cost of the prefix's ops and the last step's sums equal the built network's cost minus the base
network's (a test checks this):

- ``nb201``: the 6 edges in ``EDGES`` order, base = all ``none``; every cell of the 15-cell skeleton carries the
  same op on an edge, so an edge's cost is the same whatever the other edges hold.  Depth of the prefix = the
  longest input-to-node path over the edges seen so far, counting convolutions and pools as 1, ``skip_connect``
  as 0 and ignoring ``none`` edges (they carry nothing); divided by 3, the longest path a cell can have.
- ``macro``: the 8 chain layers, base = all identity; each layer's input and output shapes are fixed by its
  position, so its cost depends only on (position, choice).  Depth = layers that compute something (an inverted
  residual, or the Conv1x1 projection a stage's first identity layer is), divided by 8.

FLOPs and parameters are divided by the largest network's (all ``nor_conv_3x3`` / all ``ir_5x5_t6``) so the
features lie in [0, 1]; resolution and class count only rescale these costs, which the division removes.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from nasmeta.spaces.base import Architecture

#: spaces whose prefix costs are defined (additive per token; module docstring)
COST_SPACES: tuple[str, ...] = ("nb201", "macro")
N_COST_FEATURES = 3
_REFERENCE_SHAPE = (3, 32, 32)
_REFERENCE_CLASSES = 10


def _network_costs(space_name: str, encoding: Sequence) -> tuple[float, float]:
    """(forward FLOPs, parameters) of the benchmark network of ``encoding`` at the CIFAR input."""
    from nasmeta.cost import count_flops, count_params
    from nasmeta.spaces import get_space

    space = get_space(space_name)
    arch = space.from_encoding(encoding)
    with torch.device("meta"):
        model = space.build(arch, _REFERENCE_CLASSES, _REFERENCE_SHAPE)
    return float(count_flops(model, _REFERENCE_SHAPE)), float(count_params(model))


def _choices(space_name: str) -> tuple[tuple, object]:
    """(choice values an encoding position takes, in token-id order; the base choice)."""
    from nasmeta.spaces import get_space

    space = get_space(space_name)
    if space_name == "nb201":
        return tuple(space.ops), "none"
    if space_name == "macro":
        return tuple(range(len(space.ops))), 0
    raise ValueError(f"TAP cost features are defined for spaces {list(COST_SPACES)}, got {space_name!r}")


@functools.cache
def marginal_costs(space_name: str) -> tuple[np.ndarray, np.ndarray]:
    """Per (position, token id): marginal forward FLOPs and parameters over the base network (module doc)."""
    from nasmeta.spaces import get_space

    choices, base_choice = _choices(space_name)
    space = get_space(space_name)
    length = len(space.tokens(space.sample(np.random.default_rng(0))))
    base = [base_choice] * length
    base_flops, base_params = _network_costs(space_name, base)
    flops = np.zeros((length, len(choices)))
    params = np.zeros((length, len(choices)))
    if space_name == "nb201":
        # every edge of every cell carries the same op, so one uniform network per op gives all positions
        for j, choice in enumerate(choices):
            f, p = _network_costs(space_name, [choice] * length)
            flops[:, j], params[:, j] = (f - base_flops) / length, (p - base_params) / length
    else:
        for i in range(length):
            for j, choice in enumerate(choices):
                encoding = list(base)
                encoding[i] = choice
                f, p = _network_costs(space_name, encoding)
                flops[i, j], params[i, j] = f - base_flops, p - base_params
    return flops, params


def _nb201_prefix_depth(tokens: Sequence[int]) -> np.ndarray:
    from nasmeta.spaces.nb201 import EDGES, NUM_NODES, OPS

    none_id, skip_id = OPS.index("none"), OPS.index("skip_connect")
    depth = [0.0] + [-np.inf] * (NUM_NODES - 1)
    out = np.zeros(len(tokens))
    for t, ((dst, src), token) in enumerate(zip(EDGES, tokens, strict=True)):
        if token != none_id and np.isfinite(depth[src]):
            depth[dst] = max(depth[dst], depth[src] + (0.0 if token == skip_id else 1.0))
        out[t] = max(d for d in depth if np.isfinite(d)) / (NUM_NODES - 1)
    return out


def _macro_prefix_depth(tokens: Sequence[int]) -> np.ndarray:
    from nasmeta.spaces.macro import _stage_starts

    starts = set(_stage_starts())
    computes = [1.0 if (token != 0 or i in starts) else 0.0 for i, token in enumerate(tokens)]
    return np.cumsum(computes) / len(tokens)


def prefix_cost_features(space_name: str, tokens_batch: np.ndarray) -> np.ndarray:
    """``(n, L, 3)`` float32: cumulative depth, FLOPs and parameters of each prefix, each in [0, 1]."""
    tokens_batch = np.asarray(tokens_batch, dtype=np.int64)
    flops, params = marginal_costs(space_name)
    if tokens_batch.ndim != 2 or tokens_batch.shape[1] != flops.shape[0]:
        raise ValueError(f"expected tokens of shape (n, {flops.shape[0]}) for {space_name}, got {tokens_batch.shape}")
    positions = np.arange(flops.shape[0])
    step_flops = flops[positions, tokens_batch]
    step_params = params[positions, tokens_batch]
    depth_fn = _nb201_prefix_depth if space_name == "nb201" else _macro_prefix_depth
    depth = np.stack([depth_fn(row) for row in tokens_batch]) if len(tokens_batch) else np.zeros((0, len(positions)))
    features = np.stack(
        [
            depth,
            np.cumsum(step_flops, axis=1) / flops.max(axis=1).sum(),
            np.cumsum(step_params, axis=1) / params.max(axis=1).sum(),
        ],
        axis=-1,
    )
    return features.astype(np.float32)


def encode(archs: Sequence[Architecture]) -> tuple[np.ndarray, np.ndarray]:
    """(tokens ``(n, L)`` int64, cost features ``(n, L, 3)`` float32) of architectures of one space."""
    from nasmeta.spaces import get_space

    if not archs:
        raise ValueError("no architectures to encode")
    spaces = sorted({a.space for a in archs})
    if len(spaces) != 1:
        raise ValueError(f"TAP encodes architectures of one space at a time, got spaces {spaces}")
    space = get_space(spaces[0])
    tokens = np.array([space.tokens(a) for a in archs], dtype=np.int64)
    return tokens, prefix_cost_features(spaces[0], tokens)


class TAPNetwork(nn.Module):
    """Embedding + cost features + DCN per step -> LSTM -> MLP(last hidden state, DCN) -> one scalar."""

    def __init__(self, vocab_size: int, embedding_dim: int = 16, hidden_size: int = 32, mlp_size: int = 32) -> None:
        super().__init__()
        for label, value in (
            ("vocab_size", vocab_size),
            ("embedding_dim", embedding_dim),
            ("hidden_size", hidden_size),
            ("mlp_size", mlp_size),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{label} must be a positive integer, got {value!r}")
        self.embedding = nn.Embedding(vocab_size, embedding_dim)
        self.lstm = nn.LSTM(embedding_dim + N_COST_FEATURES + 1, hidden_size, batch_first=True)
        self.head = nn.Sequential(nn.Linear(hidden_size + 1, mlp_size), nn.ReLU(), nn.Linear(mlp_size, 1))

    def forward(self, tokens: torch.Tensor, costs: torch.Tensor, dcn: torch.Tensor) -> torch.Tensor:
        """``tokens (B, L)`` long, ``costs (B, L, 3)``, ``dcn (B,)`` -> ``(B,)``."""
        steps = tokens.shape[1]
        dcn_steps = dcn[:, None, None].expand(-1, steps, 1)
        x = torch.cat([self.embedding(tokens), costs, dcn_steps], dim=-1)
        _, (hidden, _) = self.lstm(x)
        return self.head(torch.cat([hidden[-1], dcn[:, None]], dim=-1)).squeeze(-1)
