"""Performance prediction for early stopping (Baker, Gupta, Raskar, Naik, "Accelerating Neural Architecture
Search using Performance Prediction", ICLR 2018 workshop; arXiv:1705.10823).

Sequential regression models (SRMs): for every number of observed epochs ``tau`` one nu-SVR (RBF kernel,
scikit-learn ``NuSVR``) predicts the final validation accuracy from
- the time series: the observed accuracies ``y_1..y_tau``, their first and second differences;
- the architecture: the space's fixed-length features (``get_space(space).features(arch)``) and
  ``log10`` of the parameter count and FLOPs where the store has them.
``C`` and ``nu`` are chosen per SRM by cross-validation (the paper searches them randomly).  A run is terminated
when the probability that it beats the best final accuracy so far, ``P(y_T >= y_best)`` under a Gaussian
centred on the prediction, falls below ``threshold`` — i.e. when "predicted final + uncertainty < best".

Deviations, all for the leave-one-dataset-out setting of the LCRankNet comparison:
- the SRMs are trained offline on other datasets' curves (``fit(meta.without(target))``) instead of online on the
  first configurations of the running search;
- they regress the remaining gain ``y_T - y_tau`` (and add ``y_tau`` back): the same model of ``y_T`` for the
  SVR, but it transfers across datasets whose accuracy levels differ;
- the predictive standard deviation of each SRM is the spread of its out-of-fold residuals, folds grouped by
  dataset (leave-dataset-out) when there are several, so it measures the error on an unseen dataset.

Scaling (not in the paper, whose SRMs saw at most a few hundred curves): each SRM costs a grid search of
``len(C) x len(nu) x n_folds`` SVR fits, and an SVR fit grows between quadratically and cubically with the
number of curves.  ``max_runs`` fits on a seeded subsample of at most that many runs (drawn evenly from every
dataset); ``retune_every=k`` runs the grid search only for every k-th SRM and refits the others with the
hyper-parameters chosen last (the best ``C`` / ``nu`` change slowly with the observed length).  The defaults
(``None``, ``1``) are the exact method.

Persistence: the fitted SRMs are saved as plain arrays (scaler mean / scale, support vectors, dual
coefficients, intercept, RBF ``gamma``) in an ``.npz`` read with ``allow_pickle=False``, and predicted with the
RBF kernel expansion that NuSVR computes, so loading a component never unpickles anything.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import numpy as np
from scipy.special import ndtr
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, GroupKFold, KFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import NuSVR

from nasmeta.blackbox.stopping import _curve
from nasmeta.scheduling import Decision
from nasmeta.search.context import StopContext
from nasmeta.transfer.base import Stopper

_PARAM_GRID = {"nusvr__C": [1.0, 10.0, 100.0], "nusvr__nu": [0.25, 0.5, 0.75]}


@dataclass(frozen=True)
class KernelSRM:
    """A fitted ``StandardScaler -> NuSVR(kernel="rbf")`` pipeline as its arrays:
    ``predict(x) = sum_i dual_i * exp(-gamma * |(x - mean) / scale - sv_i|^2) + intercept``."""

    mean: np.ndarray
    scale: np.ndarray
    support_vectors: np.ndarray
    dual_coef: np.ndarray
    intercept: float
    gamma: float

    @classmethod
    def from_pipeline(cls, pipeline: Any) -> KernelSRM:
        scaler, svr = pipeline.named_steps["standardscaler"], pipeline.named_steps["nusvr"]
        return cls(
            mean=np.asarray(scaler.mean_, dtype=float),
            scale=np.asarray(scaler.scale_, dtype=float),
            support_vectors=np.asarray(svr.support_vectors_, dtype=float),
            dual_coef=np.asarray(svr.dual_coef_, dtype=float).ravel(),
            intercept=float(np.asarray(svr.intercept_).ravel()[0]),
            gamma=float(svr._gamma),  # the value "scale" resolved to on the training data
        )

    def predict(self, X: np.ndarray) -> np.ndarray:
        z = (np.asarray(X, dtype=float) - self.mean) / self.scale
        sq = (z**2).sum(1)[:, None] + (self.support_vectors**2).sum(1)[None, :] - 2.0 * z @ self.support_vectors.T
        return np.exp(-self.gamma * np.maximum(sq, 0.0)) @ self.dual_coef + self.intercept


def _subsample(groups: np.ndarray, limit: int, seed: int) -> np.ndarray:
    """Sorted indices of at most ``limit`` items, spread as evenly as possible over ``groups``."""
    rng = np.random.default_rng(seed)
    pools = {g: list(rng.permutation(np.flatnonzero(groups == g))) for g in np.unique(groups)}
    chosen: list[int] = []
    while len(chosen) < limit:
        for pool in pools.values():
            if pool and len(chosen) < limit:
                chosen.append(int(pool.pop()))
    return np.sort(np.asarray(chosen))


def curve_features(curve: np.ndarray) -> np.ndarray:
    """``[y_1..y_tau, diff(y), diff(diff(y))]``."""
    return np.concatenate([curve, np.diff(curve, n=1), np.diff(curve, n=2)])


class BakerStopper(Stopper):
    """nu-SVR sequential regression models on curve and architecture features (Baker et al. 2018)."""

    name = "baker"
    # architectures are used when every training run has one (of one space), but are not required
    data_requirements = frozenset({"runs", "curves"})

    def __init__(
        self,
        threshold: float = 0.05,
        min_epochs: int = 3,
        every: int = 1,
        use_arch: bool = True,
        n_folds: int = 3,
        seed: int = 0,
        max_runs: int | None = None,
        retune_every: int = 1,
    ) -> None:
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold must lie in (0, 1), got {threshold!r}")
        if isinstance(min_epochs, bool) or not isinstance(min_epochs, int) or min_epochs < 3:
            raise ValueError(
                f"min_epochs must be an integer >= 3 (second differences need 3 values), got {min_epochs!r}"
            )
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be an integer >= 1, got {every!r}")
        if isinstance(n_folds, bool) or not isinstance(n_folds, int) or n_folds < 2:
            raise ValueError(f"n_folds must be an integer >= 2, got {n_folds!r}")
        if max_runs is not None and (isinstance(max_runs, bool) or not isinstance(max_runs, int) or max_runs < 4):
            raise ValueError(f"max_runs must be None or an integer >= 4, got {max_runs!r}")
        if isinstance(retune_every, bool) or not isinstance(retune_every, int) or retune_every < 1:
            raise ValueError(f"retune_every must be an integer >= 1, got {retune_every!r}")
        self.max_runs = max_runs
        self.retune_every = retune_every
        self.threshold = float(threshold)
        self.min_epochs = min_epochs
        self.every = every
        self.use_arch = bool(use_arch)
        self.n_folds = n_folds
        self.seed = int(seed)
        self.max_epochs: int | None = None
        self.arch_space: str | None = None
        self.use_params = False
        self.use_flops = False
        self._impute: dict[str, float] = {}
        self.models: dict[int, KernelSRM] = {}
        self.sigmas: dict[int, float] = {}

    # -- features ----------------------------------------------------------------------------------------------
    def _arch_features(self, arch: Any, n_params: Any, flops: Any) -> np.ndarray:
        parts = []
        if self.arch_space is not None:
            if arch is None:
                raise ValueError("baker was fitted with architecture features; the context has arch=None")
            if arch.space != self.arch_space:
                raise ValueError(
                    f"baker was fitted on space {self.arch_space!r}, got an architecture of {arch.space!r}"
                )
            from nasmeta.spaces import get_space

            parts.append(np.asarray(get_space(arch.space).features(arch), dtype=float))
        if self.use_params:
            parts.append([math.log10(n_params) if n_params else self._impute["n_params"]])
        if self.use_flops:
            parts.append([math.log10(flops) if flops else self._impute["flops"]])
        return np.concatenate([np.asarray(p, dtype=float) for p in parts]) if parts else np.zeros(0)

    def features(self, curve: Sequence[float], arch: Any = None, n_params: Any = None, flops: Any = None) -> np.ndarray:
        return np.concatenate([curve_features(_curve(curve)), self._arch_features(arch, n_params, flops)])

    # -- training -------------------------------------------------------------------------------------------------
    def fit(self, meta: Any) -> Self:
        """Train one SRM per observed length on a ``MetaDataset`` view or a sequence of ``ReplayRun``."""
        from nasmeta.evaluation.runs import ReplayRun, runs_from_meta

        runs = list(meta) if isinstance(meta, list | tuple) else runs_from_meta(meta)
        if not runs or not all(isinstance(r, ReplayRun) for r in runs):
            raise ValueError("baker needs completed runs with curves to fit on; got none")
        if self.max_runs is not None and len(runs) > self.max_runs:
            keep = _subsample(np.array([r.task_id for r in runs]), self.max_runs, self.seed)
            runs = [runs[i] for i in keep]
        lengths = sorted({r.max_epochs for r in runs})
        if len(lengths) != 1:
            raise ValueError(f"baker needs training curves of one length, got lengths {lengths}")
        T = lengths[0]
        if T <= self.min_epochs:
            raise ValueError(f"curves of {T} epochs are too short for min_epochs={self.min_epochs}")
        self.max_epochs = T
        spaces = {r.arch.space if r.arch is not None else None for r in runs}
        self.arch_space = spaces.pop() if self.use_arch and len(spaces) == 1 and None not in spaces else None
        self.use_params = self.use_arch and all(r.n_params for r in runs)
        self.use_flops = self.use_arch and all(r.flops for r in runs)
        self._impute = {
            "n_params": float(np.mean([math.log10(r.n_params) for r in runs])) if self.use_params else 0.0,
            "flops": float(np.mean([math.log10(r.flops) for r in runs])) if self.use_flops else 0.0,
        }
        arch_x = np.stack([self._arch_features(r.arch, r.n_params, r.flops) for r in runs])
        finals = np.array([r.final_val_acc for r in runs])
        groups = np.array([r.task_id for r in runs])
        n_groups = len(set(groups))
        if n_groups >= 2:
            cv = GroupKFold(n_splits=min(self.n_folds, n_groups))
        else:
            cv = KFold(n_splits=min(self.n_folds, len(runs)), shuffle=True, random_state=self.seed)
        split_groups = groups if n_groups >= 2 else None  # KFold takes no groups (and warns when given them)
        if len(runs) < 2 * cv.get_n_splits():
            raise ValueError(f"baker needs at least {2 * cv.get_n_splits()} training runs, got {len(runs)}")
        self.models, self.sigmas = {}, {}
        best: dict[str, Any] = {}
        for tau in range(self.min_epochs, T):
            X = np.hstack([np.stack([curve_features(r.curve[:tau]) for r in runs]), arch_x])
            last = np.array([r.curve[tau - 1] for r in runs])
            gain = finals - last
            pipeline = make_pipeline(StandardScaler(), NuSVR(kernel="rbf", gamma="scale"))
            if (tau - self.min_epochs) % self.retune_every == 0:
                search = GridSearchCV(pipeline, _PARAM_GRID, cv=cv, scoring="neg_mean_squared_error")
                search.fit(X, gain, groups=split_groups)
                best = search.best_params_
            estimator = pipeline.set_params(**best).fit(X, gain)
            oof = cross_val_predict(clone(estimator), X, gain, cv=cv, groups=split_groups)
            self.models[tau] = KernelSRM.from_pipeline(estimator)
            self.sigmas[tau] = float(max(np.sqrt(np.mean((oof - gain) ** 2)), 1e-6))
        return self

    # -- prediction -------------------------------------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not self.models:
            raise ValueError("baker is not fitted; call fit(meta) first")

    def predictive(self, curve: Sequence[float], context: StopContext) -> tuple[float, float]:
        """Predicted final accuracy and its standard deviation after ``len(curve)`` epochs (``context`` needs
        ``max_epochs`` and, when fitted with them, ``arch`` / ``n_params`` / ``flops``)."""
        self._check_fitted()
        values = _curve(curve)
        tau = len(values)
        if context.max_epochs != self.max_epochs:
            raise ValueError(f"baker was fitted on {self.max_epochs}-epoch curves, got max_epochs={context.max_epochs}")
        if tau not in self.models:
            raise ValueError(f"no SRM for {tau} observed epochs; fitted for {min(self.models)}..{max(self.models)}")
        x = self.features(values, context.arch, context.n_params, context.flops)
        gain = float(self.models[tau].predict(x[None, :])[0])
        return float(values[-1]) + gain, self.sigmas[tau]

    def predict_final(self, curve: Sequence[float], context: StopContext) -> float:
        """Predicted final accuracy after ``len(curve)`` epochs."""
        return self.predictive(curve, context)[0]

    def decide(self, curve: Sequence[float], context: StopContext) -> Decision:
        self._check_fitted()
        values = _curve(curve)
        t, best = len(values), context.best_so_far
        if best is None or t < self.min_epochs or t >= self.max_epochs or (t - self.min_epochs) % self.every:
            return Decision.CONTINUE
        mean, sigma = self.predictive(values, context)
        p_better = float(1.0 - ndtr((best - mean) / sigma))
        return Decision.STOP if p_better < self.threshold else Decision.CONTINUE

    # -- persistence --------------------------------------------------------------------------------------------------
    def _config(self) -> dict[str, Any]:
        return {
            "threshold": self.threshold,
            "min_epochs": self.min_epochs,
            "every": self.every,
            "use_arch": self.use_arch,
            "n_folds": self.n_folds,
            "seed": self.seed,
            "max_runs": self.max_runs,
            "retune_every": self.retune_every,
        }

    def save(self, directory: str | Path) -> Path:
        self._check_fitted()
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        state = {
            "max_epochs": self.max_epochs,
            "arch_space": self.arch_space,
            "use_params": self.use_params,
            "use_flops": self.use_flops,
            "impute": self._impute,
            "sigmas": {str(k): v for k, v in self.sigmas.items()},
        }
        (path / "config.json").write_text(json.dumps({"name": self.name, "config": self._config(), "state": state}))
        arrays = {}
        for tau, srm in self.models.items():
            for field in ("mean", "scale", "support_vectors", "dual_coef"):
                arrays[f"{tau}/{field}"] = getattr(srm, field)
            arrays[f"{tau}/intercept_gamma"] = np.array([srm.intercept, srm.gamma])
        np.savez(path / "srms.npz", **arrays)
        return path

    @classmethod
    def load(cls, directory: str | Path) -> Self:
        path = Path(directory)
        data = json.loads((path / "config.json").read_text())
        if data.get("name") != cls.name:
            raise ValueError(f"{path} holds a {data.get('name')!r} component, not {cls.name!r}")
        obj = cls(**data["config"])
        state = data["state"]
        obj.max_epochs = state["max_epochs"]
        obj.arch_space = state["arch_space"]
        obj.use_params = state["use_params"]
        obj.use_flops = state["use_flops"]
        obj._impute = state["impute"]
        obj.sigmas = {int(k): float(v) for k, v in state["sigmas"].items()}
        with np.load(path / "srms.npz", allow_pickle=False) as arrays:
            taus = sorted({int(name.split("/")[0]) for name in arrays.files})
            for tau in taus:
                intercept, gamma = arrays[f"{tau}/intercept_gamma"]
                obj.models[tau] = KernelSRM(
                    *(arrays[f"{tau}/{field}"] for field in ("mean", "scale", "support_vectors", "dual_coef")),
                    intercept=float(intercept),
                    gamma=float(gamma),
                )
        if sorted(obj.models) != sorted(obj.sigmas):
            raise ValueError(
                f"{path}: srms.npz holds SRMs for {sorted(obj.models)}, config.json for {sorted(obj.sigmas)}"
            )
        return obj

    def __repr__(self) -> str:
        return f"BakerStopper(threshold={self.threshold}, min_epochs={self.min_epochs}, fitted={bool(self.models)})"
