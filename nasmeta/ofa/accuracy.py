"""OFA's accuracy predictor: sub-networks sampled from the shrunk network, evaluated with its weights (BN
statistics re-estimated per sub-network), and a regressor from the architecture encoding to accuracy (Cai et
al. 2020, Sec. 3.3).

The encoding is :meth:`OFASpace.features` (OFA's: one-hot resolution, depths, and per block kernel and
expansion, zeros for skipped blocks).  OFA fits a 3-layer MLP (400 units) on 16K sub-networks; here the default
is a ridge regression (scikit-learn) because a CPU run evaluates tens, not thousands, of sub-networks and an MLP
of that size overfits them; ``kind="mlp"`` gives OFA's MLP.  :func:`held_out_quality` reports the predictor's
Kendall tau on sub-networks it was not fitted on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from scipy.stats import kendalltau

from nasmeta.data.types import TaskData
from nasmeta.ofa.elastic import ElasticOFANet
from nasmeta.ofa.shrink import evaluate_subnet
from nasmeta.spaces.base import Architecture
from nasmeta.spaces.ofa import OFASpace


def sample_subnets(space: OFASpace, n: int, seed: int) -> list[Architecture]:
    """``n`` sub-networks with distinct ids, drawn uniformly."""
    if n < 1:
        raise ValueError(f"the number of sampled sub-networks must be >= 1, got {n}")
    rng = np.random.default_rng(seed)
    seen: dict[str, Architecture] = {}
    for _ in range(50 * n):
        arch = space.sample(rng)
        seen.setdefault(arch.arch_id, arch)
        if len(seen) == n:
            break
    return list(seen.values())


def measure_accuracies(
    net: ElasticOFANet, archs: Sequence[Architecture], task: TaskData, bn_images: int = 500, split: str = "val"
) -> list[float]:
    """Accuracy (percent) of each sub-network with the elastic network's weights and recalibrated BN."""
    return [evaluate_subnet(net, arch, task, bn_images, split) for arch in archs]


class AccuracyPredictor:
    """Regressor from :meth:`OFASpace.features` to accuracy (percent)."""

    def __init__(self, space: OFASpace, kind: Literal["ridge", "mlp"] = "ridge", seed: int = 0) -> None:
        if kind not in ("ridge", "mlp"):
            raise ValueError(f"accuracy predictor kind must be 'ridge' or 'mlp', got {kind!r}")
        self.space, self.kind, self.seed = space, kind, seed
        self.model: Any = None

    def _features(self, archs: Sequence[Architecture]) -> np.ndarray:
        return np.stack([self.space.features(a) for a in archs])

    def fit(self, archs: Sequence[Architecture], accuracies: Sequence[float]) -> AccuracyPredictor:
        if len(archs) != len(accuracies) or len(archs) < 2:
            raise ValueError(
                f"need >= 2 (architecture, accuracy) pairs of equal count, got {len(archs)}, {len(accuracies)}"
            )
        if self.kind == "ridge":
            from sklearn.linear_model import RidgeCV

            self.model = RidgeCV(alphas=np.logspace(-2, 3, 12))
        else:
            from sklearn.neural_network import MLPRegressor

            self.model = MLPRegressor(hidden_layer_sizes=(400, 400, 400), max_iter=2000, random_state=self.seed)
        self.model.fit(self._features(archs), np.asarray(accuracies, dtype=np.float64))
        return self

    def predict(self, archs: Sequence[Architecture]) -> np.ndarray:
        if self.model is None:
            raise ValueError("the accuracy predictor is not fitted; call fit first")
        return np.asarray(self.model.predict(self._features(archs)), dtype=np.float64)

    def __call__(self, arch: Architecture) -> float:
        return float(self.predict([arch])[0])


def held_out_quality(
    space: OFASpace, archs: Sequence[Architecture], accuracies: Sequence[float], kind: str = "ridge", folds: int = 5
) -> dict[str, float]:
    """Kendall tau and mean absolute error of out-of-fold predictions (``folds``-fold cross-validation)."""
    n = len(archs)
    if n < 2 * folds:
        raise ValueError(f"need at least {2 * folds} sub-networks for {folds}-fold validation, got {n}")
    order = np.random.default_rng(0).permutation(n)
    predicted = np.empty(n)
    acc = np.asarray(accuracies, dtype=np.float64)
    for fold in range(folds):
        test = order[fold::folds]
        train = np.setdiff1d(order, test)
        model = AccuracyPredictor(space, kind).fit([archs[i] for i in train], acc[train])  # type: ignore[arg-type]
        predicted[test] = model.predict([archs[i] for i in test])
    tau = kendalltau(predicted, acc).statistic
    return {"kendall_tau": float(tau), "mae": float(np.mean(np.abs(predicted - acc))), "n": n}
