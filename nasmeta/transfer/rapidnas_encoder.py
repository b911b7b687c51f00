"""RapidNAS / MetaD2A dataset encoder: a fixed image embedding, then a hierarchical set encoder -> one vector per task.

MetaD2A (Lee, Hyung & Hwang, "Rapid Neural Architecture Search by Learning to Generate Graphs from Datasets",
ICLR 2021) encodes a dataset from sampled instances: ``n_per_class`` images per class (20 by default) are embedded,
each class's set is pooled into a class prototype (intra-class pooling), and the set of prototypes is pooled into
the dataset encoding (inter-class pooling).  Both poolings are Set Transformer blocks (Lee et al., ICML 2019): a
self-attention block (SAB) and pooling by multi-head attention (PMA), built here on ``torch.nn.MultiheadAttention``.
The encoding is invariant to the order of the samples within a class and to the order of the classes.

Deviation (stated): MetaD2A embeds images with a ResNet18 pretrained on ImageNet (512-d features).  No pretrained
weights are available offline here, so :class:`FrozenImageEmbedding` is a small convolutional network initialised
randomly from a fixed seed and never trained (random convolutional features keep colour, texture and frequency
statistics, which is what separates the collection's tasks); its weights are saved with the component, so a loaded
component embeds images exactly as the fitted one did.  Images of any size and channel count are first brought to
``image_size`` pixels and three channels (grey replicated), since the collection mixes 8, 16 and 32 px, grey and
colour tasks.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["FrozenImageEmbedding", "MAB", "PMA", "SAB", "SetEncoder", "sample_class_sets"]


class FrozenImageEmbedding(nn.Module):
    """Fixed random conv features: 3 x (conv 3x3 -> ReLU -> 2x2 max-pool), then global mean and max pooling."""

    def __init__(self, out_dim: int = 128, image_size: int = 32, seed: int = 0) -> None:
        super().__init__()
        if out_dim < 2 or out_dim % 2:
            raise ValueError(f"embedding out_dim must be an even integer >= 2, got {out_dim!r}")
        self.image_size = image_size
        widths = (3, out_dim // 8 or 1, out_dim // 4 or 1, out_dim // 2)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.convs = nn.ModuleList(
                nn.Conv2d(a, b, 3, padding=1) for a, b in zip(widths[:-1], widths[1:], strict=True)
            )
        self.requires_grad_(False)
        self.out_dim = out_dim

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4:
            raise ValueError(f"images must be (N, C, H, W), got shape {tuple(x.shape)}")
        x = x.float()
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        elif x.shape[1] != 3:
            raise ValueError(f"images must have 1 or 3 channels, got {x.shape[1]}")
        if x.shape[-2:] != (self.image_size, self.image_size):
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False)
        for conv in self.convs:
            x = F.max_pool2d(F.relu(conv(x)), 2)
        return torch.cat([x.mean(dim=(2, 3)), x.amax(dim=(2, 3))], dim=1)


class MAB(nn.Module):
    """Multihead attention block: ``H = LN(Q + MHA(Q, K, K))``, output ``LN(H + rFF(H))``."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.attention = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.ff = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, dim))

    def forward(self, q: torch.Tensor, k: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        # mask (B, keys): True marks padding that no query may attend to
        h = self.ln1(q + self.attention(q, k, k, key_padding_mask=mask, need_weights=False)[0])
        return self.ln2(h + self.ff(h))


class SAB(nn.Module):
    """Set attention block, ``MAB(X, X)``: permutation-equivariant."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.mab = MAB(dim, heads)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.mab(x, x, mask)


class PMA(nn.Module):
    """Pooling by multihead attention, ``MAB(S, X)`` with ``seeds`` learned queries: permutation-invariant."""

    def __init__(self, dim: int, heads: int, seeds: int = 1) -> None:
        super().__init__()
        self.seeds = nn.Parameter(torch.empty(1, seeds, dim))
        nn.init.xavier_uniform_(self.seeds)
        self.mab = MAB(dim, heads)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.mab(self.seeds.expand(x.shape[0], -1, -1), x, mask)


class SetEncoder(nn.Module):
    """Intra-class SAB + PMA -> class prototypes; inter-class SAB + PMA -> dataset vector (MetaD2A's set encoder).

    ``forward`` takes one task's ``(classes, samples, in_dim)`` and returns ``(out_dim,)``; :meth:`encode_many`
    takes a list of such tensors (tasks may differ in their number of classes) and returns ``(tasks, out_dim)``
    in one batched pass, padding the class sets and masking the padding out of the attention.
    """

    def __init__(self, in_dim: int, hidden_dim: int = 32, out_dim: int = 32, heads: int = 4) -> None:
        super().__init__()
        if hidden_dim % heads:
            raise ValueError(f"set encoder hidden_dim ({hidden_dim}) must be divisible by heads ({heads})")
        self.project = nn.Linear(in_dim, hidden_dim)
        self.intra_sab, self.intra_pma = SAB(hidden_dim, heads), PMA(hidden_dim, heads)
        self.inter_sab, self.inter_pma = SAB(hidden_dim, heads), PMA(hidden_dim, heads)
        self.out = nn.Linear(hidden_dim, out_dim)

    def forward(self, sets: torch.Tensor) -> torch.Tensor:
        if sets.ndim != 3:
            raise ValueError(f"a task's sets must be (classes, samples, dim), got shape {tuple(sets.shape)}")
        return self.encode_many([sets])[0]

    def encode_many(self, sets: list[torch.Tensor]) -> torch.Tensor:
        counts = [s.shape[0] for s in sets]
        if len({s.shape[1:] for s in sets}) != 1:
            raise ValueError(
                f"every task needs the same samples per class and dim, got {[tuple(s.shape) for s in sets]}"
            )
        h = self.project(torch.cat(sets))
        prototypes = self.intra_pma(self.intra_sab(h)).squeeze(1)
        width = max(counts)
        padded = torch.zeros(len(sets), width, prototypes.shape[-1])
        mask = torch.ones(len(sets), width, dtype=torch.bool)
        for i, chunk in enumerate(torch.split(prototypes, counts)):
            padded[i, : counts[i]] = chunk
            mask[i, : counts[i]] = False
        # a key padding mask with nothing to hide only slows attention down
        key_mask = mask if bool(mask.any()) else None
        pooled = self.inter_pma(self.inter_sab(padded, key_mask), key_mask).squeeze(1)
        return self.out(pooled)


def sample_class_sets(features: torch.Tensor, labels: torch.Tensor, n_per_class: int, rng: np.random.Generator) -> Any:
    """``(classes, n_per_class, dim)``: ``n_per_class`` rows of ``features`` per label, drawn without replacement
    (with replacement for a class that has fewer), classes in ascending label order."""
    if isinstance(n_per_class, bool) or not isinstance(n_per_class, int) or n_per_class < 1:
        raise ValueError(f"n_per_class must be a positive integer, got {n_per_class!r}")
    labels_np = labels.cpu().numpy()
    rows = []
    for label in np.unique(labels_np):
        members = np.flatnonzero(labels_np == label)
        replace = len(members) < n_per_class
        rows.append(rng.choice(members, size=n_per_class, replace=replace))
    return features[torch.from_numpy(np.stack(rows))]
