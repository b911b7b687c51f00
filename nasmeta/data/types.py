"""The loaded form of a task: tensors for train / val / test plus what a network builder needs."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class TaskData:
    """Normalised float images ``(N, C, H, W)`` and int64 labels in ``range(num_classes)``.

    Normalisation statistics come from the train split only.
    """

    task_id: str
    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int

    @property
    def input_shape(self) -> tuple[int, int, int]:
        c, h, w = self.x_train.shape[1:]
        return int(c), int(h), int(w)

    def __post_init__(self) -> None:
        for split in ("train", "val", "test"):
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            if x.ndim != 4:
                raise ValueError(f"x_{split} must be (N, C, H, W), got shape {tuple(x.shape)}")
            if len(x) != len(y):
                raise ValueError(f"x_{split} has {len(x)} rows but y_{split} has {len(y)}")
