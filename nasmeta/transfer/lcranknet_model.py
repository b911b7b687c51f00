"""The network of LCRankNet (Wistuba & Pedapati, "Learning to Rank Learning Curves", ICML 2020;
arXiv:2006.03361): ``f(x)``, the score of a (possibly partial) training run, and the tensors it reads.

``LCRankNetModel`` concatenates (a) an LSTM code of the architecture's tokens (left out with
``use_architecture=False``, for collections of curves without architectures), (b) a text-CNN code of the
validation-accuracy curve (1-D convolutions of several kernel sizes, ReLU, global max over time), (c) a dataset
embedding and (d) run features, and maps them with an MLP to one score.  The ranking loss, the training loop, the
target-dataset adaptation and the stopper role are in :mod:`nasmeta.transfer.lcranknet`, whose docstring states
the method and its deviations.

Short curves: convolutions are causal, padded on the left with accuracy 0 (the value "before epoch 1"), and the
max runs only over windows that end at an observed epoch, so a 1-epoch curve is encoded too and no value after the
last observed epoch is ever read.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["LCRankNetModel", "RunItems", "init_parameters"]


class LCRankNetModel(nn.Module):
    """``f(x)``: architecture LSTM + curve CNN + dataset embedding + run features -> MLP -> one score."""

    def __init__(
        self,
        vocab_size: int,
        n_datasets: int,
        n_features: int,
        embed_dim: int = 16,
        lstm_hidden: int = 32,
        n_filters: int = 16,
        kernel_sizes: Sequence[int] = (2, 3, 4, 5),
        dataset_dim: int = 8,
        hidden: int = 64,
        use_architecture: bool = True,
    ) -> None:
        super().__init__()
        self.kernel_sizes = tuple(int(k) for k in kernel_sizes)
        self.use_architecture = use_architecture
        if use_architecture:
            self.token_embedding = nn.Embedding(vocab_size + 1, embed_dim, padding_idx=0)  # id 0 pads
            self.lstm = nn.LSTM(embed_dim, lstm_hidden, batch_first=True)
        self.convs = nn.ModuleList(nn.Conv1d(1, n_filters, k) for k in self.kernel_sizes)
        self.dataset_embedding = nn.Embedding(n_datasets, dataset_dim)
        arch_width = lstm_hidden if use_architecture else 0
        width = arch_width + n_filters * len(self.kernel_sizes) + dataset_dim + n_features
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.ReLU(), nn.Linear(hidden, 1))
        # curves enter standardised by the training curves' mean and spread (set by fit, saved with the weights)
        self.register_buffer("curve_shift", torch.tensor(0.0))
        self.register_buffer("curve_scale", torch.tensor(1.0))

    def encode_arch(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        packed = nn.utils.rnn.pack_padded_sequence(
            self.token_embedding(tokens), lengths.cpu(), batch_first=True, enforce_sorted=False
        )
        _, (h, _) = self.lstm(packed)
        return h[-1]

    def encode_curve(self, curves: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        T = curves.shape[1]
        # zero every value after the observed length: the encoder must not depend on what padding holds
        observed = torch.arange(T, device=curves.device)[None, :] < lengths[:, None]
        x = ((curves - self.curve_shift) / self.curve_scale * observed).unsqueeze(1)
        before = float(-self.curve_shift / self.curve_scale)  # accuracy 0, the value "before epoch 1"
        parts = []
        for k, conv in zip(self.kernel_sizes, self.convs, strict=True):
            out = F.relu(conv(F.pad(x, (k - 1, 0), value=before)))  # position p = the window ending at epoch p + 1
            parts.append(out.masked_fill(~observed[:, None, :], float("-inf")).amax(dim=2))
        return torch.cat(parts, dim=1)

    def forward(
        self,
        tokens: torch.Tensor,
        token_lengths: torch.Tensor,
        curves: torch.Tensor,
        curve_lengths: torch.Tensor,
        dataset_vectors: torch.Tensor,
        features: torch.Tensor,
    ) -> torch.Tensor:
        parts = [self.encode_arch(tokens, token_lengths)] if self.use_architecture else []
        code = torch.cat([*parts, self.encode_curve(curves, curve_lengths), dataset_vectors, features], dim=1)
        return self.mlp(code).squeeze(1)


def init_parameters(model: nn.Module, generator: torch.Generator) -> None:
    """PyTorch's default initialisations, drawn from ``generator``."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Linear | nn.Conv1d):
                fan_in = module.weight[0].numel()
                bound = 1.0 / math.sqrt(fan_in)
                module.weight.uniform_(-bound, bound, generator=generator)
                module.bias.uniform_(-bound, bound, generator=generator)
            elif isinstance(module, nn.LSTM):
                bound = 1.0 / math.sqrt(module.hidden_size)
                for p in module.parameters():
                    p.uniform_(-bound, bound, generator=generator)
            elif isinstance(module, nn.Embedding):
                module.weight.normal_(0.0, 1.0, generator=generator)
                if module.padding_idx is not None:
                    module.weight[module.padding_idx].zero_()


class RunItems:
    """Runs as tensors: padded token ids, padded curves (store percent / 100), budgets, dataset rows, and the
    z-scored ``log10`` size features; a forward pass picks rows and observed lengths."""

    def __init__(
        self,
        tokens: Sequence[Sequence[int]],
        curves: Sequence[np.ndarray],
        budgets: Sequence[int],
        static: Sequence[Sequence[float]],
        datasets: Sequence[int] | None = None,
    ) -> None:
        n = len(tokens)
        self.token_lengths = torch.tensor([len(t) for t in tokens], dtype=torch.long)
        self.tokens = torch.zeros((n, int(self.token_lengths.max())), dtype=torch.long)
        for i, seq in enumerate(tokens):
            self.tokens[i, : len(seq)] = torch.tensor(list(seq), dtype=torch.long) + 1
        self.lengths = torch.tensor([len(c) for c in curves], dtype=torch.long)
        self.curves = torch.zeros((n, int(self.lengths.max())), dtype=torch.float32)
        for i, c in enumerate(curves):
            self.curves[i, : len(c)] = torch.as_tensor(np.asarray(c, dtype=np.float32) / 100.0)
        self.budgets = torch.tensor(list(budgets), dtype=torch.float32)
        self.static = torch.tensor(np.asarray(static, dtype=np.float32).reshape(n, 2))
        self.datasets = None if datasets is None else torch.tensor(list(datasets), dtype=torch.long)
