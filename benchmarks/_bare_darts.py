"""A bare PyTorch first-order DARTS loop on the NAS-Bench-201 supernet, written without any nasmeta code: the
yardstick :mod:`benchmarks.oneshot_cost` measures the library's one-shot loop against (``--loop-vs-bare``).

Same network (NB201 skeleton, 5 candidate ops per edge with BN ``affine=False``), same steps (per step: one Adam
step of alpha on a validation batch, one SGD step of the weights on a train batch with gradient clipping, cosine
lr), same per-epoch validation pass as the library loop; written the way the DARTS reference code writes it
(``sum(w * op(x))`` over every candidate, the weight step with alpha still requiring gradients).
"""

from __future__ import annotations

import time

import torch
from torch import nn
from torch.nn import functional as F

EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))


class _Zero(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mul(0.0)


def _relu_conv_bn(c_in: int, c_out: int, k: int, stride: int, affine: bool) -> nn.Sequential:
    return nn.Sequential(
        nn.ReLU(), nn.Conv2d(c_in, c_out, k, stride, k // 2, bias=False), nn.BatchNorm2d(c_out, affine=affine)
    )


class _Mixed(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.ops = nn.ModuleList(
            [
                _Zero(),
                nn.Identity(),
                _relu_conv_bn(c, c, 1, 1, False),
                _relu_conv_bn(c, c, 3, 1, False),
                nn.AvgPool2d(3, 1, 1, count_include_pad=False),
            ]
        )

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        return sum(w * op(x) for w, op in zip(weights, self.ops, strict=True))


class _Cell(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.edges = nn.ModuleList(_Mixed(c) for _ in EDGES)

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        for j in range(1, 4):
            nodes.append(sum(self.edges[k](nodes[i], weights[k]) for k, (d, i) in enumerate(EDGES) if d == j))
        return nodes[-1]


class _Reduce(nn.Module):
    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.a = _relu_conv_bn(c_in, c_out, 3, 2, True)
        self.b = _relu_conv_bn(c_out, c_out, 3, 1, True)
        self.down = nn.Sequential(nn.AvgPool2d(2, 2), nn.Conv2d(c_in, c_out, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(x) + self.b(self.a(x))


class BareNB201Supernet(nn.Module):
    def __init__(self, C: int, N: int, num_classes: int) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, C, 3, padding=1, bias=False), nn.BatchNorm2d(C))
        layers: list[nn.Module] = []
        c_prev = C
        for stage in range(3):
            c = C * 2**stage
            if stage:
                layers.append(_Reduce(c_prev, c))
            layers += [_Cell(c) for _ in range(N)]
            c_prev = c
        self.layers = nn.ModuleList(layers)
        self.last = nn.Sequential(nn.BatchNorm2d(c_prev), nn.ReLU())
        self.head = nn.Linear(c_prev, num_classes)
        self.alpha = nn.Parameter(1e-3 * torch.randn(len(EDGES), 5))

    def weights(self) -> list[nn.Parameter]:
        return [p for n, p in self.named_parameters() if n != "alpha"]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = F.softmax(self.alpha, dim=-1)
        x = self.stem(x)
        for layer in self.layers:
            x = layer(x, w) if isinstance(layer, _Cell) else layer(x)
        return self.head(self.last(x).mean((2, 3)))


def bare_darts_search(
    x: torch.Tensor, y: torch.Tensor, num_classes: int, epochs: int, batch_size: int, C: int, N: int, seed: int = 0
) -> list[float]:
    """First-order DARTS on the train split ``(x, y)`` halved; returns the seconds of each epoch."""
    torch.manual_seed(seed)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    cut = len(x) // 2
    xt, yt, xv, yv = x[order[:cut]], y[order[:cut]], x[order[cut:]], y[order[cut:]]
    model = BareNB201Supernet(C, N, num_classes)
    w_opt = torch.optim.SGD(model.weights(), lr=0.025, momentum=0.9, weight_decay=3e-4)
    a_opt = torch.optim.Adam([model.alpha], lr=3e-4, betas=(0.5, 0.999), weight_decay=1e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(w_opt, float(epochs), eta_min=0.001)
    g = torch.Generator().manual_seed(seed)
    seconds = []
    for _ in range(epochs):
        start = time.perf_counter()
        model.train()
        pt, pv = torch.randperm(len(xt), generator=g), torch.randperm(len(xv), generator=g)
        steps = len(xt) // batch_size
        for s in range(steps):
            it = pt[s * batch_size : (s + 1) * batch_size]
            iv = pv[(s % (len(xv) // batch_size)) * batch_size :][:batch_size]
            a_opt.zero_grad()
            F.cross_entropy(model(xv[iv]), yv[iv]).backward()
            a_opt.step()
            w_opt.zero_grad()
            loss = F.cross_entropy(model(xt[it]), yt[it])
            loss.backward()
            nn.utils.clip_grad_norm_(model.weights(), 5.0)
            w_opt.step()
        sched.step()
        with torch.no_grad():
            for i in range(0, len(xv), 256):
                F.cross_entropy(model(xv[i : i + 256]), yv[i : i + 256])
        seconds.append(time.perf_counter() - start)
    return seconds
