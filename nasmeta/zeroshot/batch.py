"""The one batch every proxy of a zero-shot search sees (the reference implementations score on a single
random training batch).  Data-independent proxies use only its shape."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from nasmeta.data.types import TaskData


@dataclass(frozen=True)
class Batch:
    """Images ``x`` ``(N, C, H, W)``, int64 labels ``y`` in ``range(num_classes)``."""

    x: torch.Tensor
    y: torch.Tensor
    num_classes: int

    def __post_init__(self) -> None:
        if self.x.ndim < 2:
            raise ValueError(f"batch x must be (N, ...) with a feature shape, got shape {tuple(self.x.shape)}")
        if len(self.x) != len(self.y):
            raise ValueError(f"batch has {len(self.x)} inputs but {len(self.y)} labels")
        if len(self.x) == 0:
            raise ValueError("batch is empty")
        if self.num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {self.num_classes}")

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(s) for s in self.x.shape[1:])

    def __len__(self) -> int:
        return len(self.x)

    def head(self, n: int) -> Batch:
        """The first ``n`` rows (all of them when the batch is smaller)."""
        return self if n >= len(self) else Batch(self.x[:n], self.y[:n], self.num_classes)

    @classmethod
    def from_task(cls, task: TaskData, size: int = 128, seed: int = 42, split: str = "train") -> Batch:
        """``size`` rows of ``split`` drawn without replacement with a seeded generator."""
        if split not in {"train", "val", "test"}:
            raise ValueError(f"split must be train, val or test, got {split!r}")
        x, y = getattr(task, f"x_{split}"), getattr(task, f"y_{split}")
        if size < 1 or size > len(x):
            raise ValueError(f"batch size {size} not in 1..{len(x)} (rows of the {split} split)")
        gen = torch.Generator().manual_seed(seed)
        idx = torch.randperm(len(x), generator=gen)[:size]
        return cls(x[idx].float(), y[idx].long(), task.num_classes)

    @classmethod
    def random(cls, input_shape: tuple[int, ...], num_classes: int, size: int = 128, seed: int = 42) -> Batch:
        """Gaussian inputs and uniform labels: for data-independent proxies or when no task is at hand."""
        if size < 1:
            raise ValueError(f"batch size must be >= 1, got {size}")
        gen = torch.Generator().manual_seed(seed)
        x = torch.randn((size, *input_shape), generator=gen)
        y = torch.randint(0, num_classes, (size,), generator=gen)
        return cls(x, y, num_classes)
