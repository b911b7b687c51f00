"""Learning-curve extrapolation for early termination (Domhan, Springenberg, Hutter, "Speeding up Automatic
Hyperparameter Optimization of Deep Neural Networks by Extrapolation of Learning Curves", IJCAI 2015).

The paper models a partial validation-accuracy curve ``y_1..y_t`` (accuracy in [0, 1], epochs ``x = 1..t``) by
an ensemble of parametric increasing, saturating curve families, predicts the distribution of the accuracy
``y_m`` after all ``m`` epochs, and terminates a run when ``P(y_m >= y_best) < delta`` (``delta = 0.05``), with
``y_best`` the best final accuracy seen so far.  The families (paper Table 1 plus ``exp3`` of its code):
vapor pressure, pow3, log-log linear, Hill3, log power, pow4, MMF, exp3, exp4, Janoschek, Weibull, ilog2.

Deviation (documented, deliberate): the paper weights the models in one linear combination and samples
weights, parameters and noise jointly by MCMC (emcee).  Here every family is fitted separately by bounded
least squares (``scipy.optimize.least_squares``), which is its maximum-likelihood fit under Gaussian noise;
the posterior of each fit is approximated by a Laplace (Gaussian) approximation: parameter covariance
``s^2 (J^T J)^+`` propagated to ``y_m`` by the delta method, plus the observation noise ``s^2``; the families
are combined by Bayesian model averaging with BIC weights ``exp(-BIC_k / 2)``.  The paper's prior constraints
are applied per family: a family is dropped when its fit does not converge, when ``f(m) < f(1)`` (a decreasing
prediction) or when ``f(m)`` leaves [0, 1]; each Gaussian is truncated to [0, 1].  This is deterministic and
orders of magnitude cheaper than MCMC, at the price of Gaussian (not sampled) parameter uncertainty.
``ilog2`` uses ``log(x + 1)`` so that epoch 1 is defined (as the authors' code does).
"""

from __future__ import annotations

import math
import warnings
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares
from scipy.special import ndtr

from nasmeta.blackbox.stopping import StoppingRule, _curve
from nasmeta.scheduling import Decision
from nasmeta.search.context import StopContext

Array = np.ndarray


@dataclass(frozen=True)
class CurveModel:
    """One parametric family ``f(x; theta)``, its starting point from the data and its box bounds."""

    name: str
    params: tuple[str, ...]
    f: Callable[..., Array]
    init: Callable[[Array, Array], Sequence[float]]
    lower: tuple[float, ...]
    upper: tuple[float, ...]

    def __call__(self, x: Array, theta: Sequence[float]) -> Array:
        with np.errstate(all="ignore"):
            return self.f(np.asarray(x, dtype=float), *theta)


def _top(y: Array) -> float:
    return float(min(1.0, y.max() + 0.05))


def _linear_fit(columns: list[Array], target: Array) -> Array:
    design = np.stack(columns, axis=1)
    return np.linalg.lstsq(design, target, rcond=None)[0]


def _half_point(x: Array, y: Array, top: float) -> float:
    return float(x[int(np.argmin(np.abs(y - top / 2)))])


def _init_vap(x: Array, y: Array) -> list[float]:
    return list(_linear_fit([np.ones_like(x), 1 / x, np.log(x)], np.log(np.clip(y, 1e-4, None))))


def _init_pow3(x: Array, y: Array) -> list[float]:
    c, a = _linear_fit([np.ones_like(x), -(x**-0.5)], y)
    return [c, a, 0.5]


def _init_loglog(x: Array, y: Array) -> list[float]:
    a, b = _linear_fit([np.log(x), np.ones_like(x)], np.exp(y))
    return [a, b]


def _init_ilog2(x: Array, y: Array) -> list[float]:
    c, a = _linear_fit([np.ones_like(x), -1 / np.log(x + 1)], y)
    return [c, a]


def _init_exp3(x: Array, y: Array) -> list[float]:
    c, a = _top(y), 3.0 / x[-1]
    return [c, a, math.log(max(c - y[0], 1e-3)) + a]


def _init_exp4(x: Array, y: Array) -> list[float]:
    c, a = _top(y), 3.0 / x[-1]
    return [c, a, 1.0, math.log(max(c - y[0], 1e-3)) + a]


def _init_saturating(x: Array, y: Array) -> list[float]:
    # (alpha, beta, kappa, delta) for MMF / Janoschek / Weibull: asymptote, start, rate, shape
    return [_top(y), float(y[0]) - 0.05, 1.0 / _half_point(x, y, _top(y)), 1.0]


_BIG = 100.0
CURVE_MODELS: dict[str, CurveModel] = {
    m.name: m
    for m in [
        CurveModel(
            "vap",
            ("a", "b", "c"),
            lambda x, a, b, c: np.exp(a + b / x + c * np.log(x)),
            _init_vap,
            (-10.0, -10.0, -2.0),
            (2.0, 10.0, 2.0),
        ),
        CurveModel(
            "pow3",
            ("c", "a", "alpha"),
            lambda x, c, a, alpha: c - a * x ** (-alpha),
            _init_pow3,
            (0.0, -1.0, 1e-3),
            (1.5, 10.0, 10.0),
        ),
        CurveModel(
            "loglog_linear",
            ("a", "b"),
            lambda x, a, b: np.log(a * np.log(x) + b),
            _init_loglog,
            (0.0, 1e-6),
            (_BIG, _BIG),
        ),
        CurveModel(
            "hill3",
            ("ymax", "eta", "kappa"),
            lambda x, ymax, eta, kappa: ymax * x**eta / (kappa**eta + x**eta),
            lambda x, y: [_top(y), 1.0, _half_point(x, y, _top(y))],
            (1e-3, 1e-3, 1e-3),
            (1.5, 10.0, 1e4),
        ),
        CurveModel(
            "log_power",
            ("a", "b", "c"),
            lambda x, a, b, c: a / (1.0 + (x / np.exp(b)) ** c),
            lambda x, y: [_top(y), math.log(_half_point(x, y, _top(y))), -1.0],
            (1e-3, -5.0, -10.0),
            (1.5, 15.0, 0.0),
        ),
        CurveModel(
            "pow4",
            ("c", "a", "b", "alpha"),
            lambda x, c, a, b, alpha: c - (a * x + b) ** (-alpha),
            lambda x, y: [_top(y), 1.0, 1.0, 0.5],
            (0.0, 1e-6, 1e-6, 1e-3),
            (1.5, _BIG, _BIG, 10.0),
        ),
        CurveModel(
            "mmf",
            ("alpha", "beta", "kappa", "delta"),
            lambda x, alpha, beta, kappa, delta: alpha - (alpha - beta) / (1.0 + (kappa * x) ** delta),
            _init_saturating,
            (0.0, -1.0, 1e-6, 1e-3),
            (1.5, 1.5, _BIG, 10.0),
        ),
        CurveModel(
            "exp3",
            ("c", "a", "b"),
            lambda x, c, a, b: c - np.exp(-a * x + b),
            _init_exp3,
            (0.0, 0.0, -20.0),
            (1.5, _BIG, 5.0),
        ),
        CurveModel(
            "exp4",
            ("c", "a", "alpha", "b"),
            lambda x, c, a, alpha, b: c - np.exp(-a * x**alpha + b),
            _init_exp4,
            (0.0, 0.0, 1e-3, -20.0),
            (1.5, _BIG, 5.0, 5.0),
        ),
        CurveModel(
            "janoschek",
            ("alpha", "beta", "kappa", "delta"),
            lambda x, alpha, beta, kappa, delta: alpha - (alpha - beta) * np.exp(-kappa * x**delta),
            _init_saturating,
            (0.0, -1.0, 0.0, 1e-3),
            (1.5, 1.5, _BIG, 5.0),
        ),
        CurveModel(
            "weibull",
            ("alpha", "beta", "kappa", "delta"),
            lambda x, alpha, beta, kappa, delta: alpha - (alpha - beta) * np.exp(-((kappa * x) ** delta)),
            _init_saturating,
            (0.0, -1.0, 1e-6, 1e-3),
            (1.5, 1.5, _BIG, 5.0),
        ),
        CurveModel(
            "ilog2",
            ("c", "a"),
            lambda x, c, a: c - a / np.log(x + 1.0),
            _init_ilog2,
            (0.0, 0.0),
            (1.5, 10.0),
        ),
    ]
}


@dataclass(frozen=True)
class ModelFit:
    """A fitted family: parameters, predicted ``y_m`` with its standard deviation, and the BIC."""

    name: str
    theta: tuple[float, ...]
    mean: float
    std: float
    bic: float


def fit_curve_model(model: CurveModel, y: Array, max_epochs: int, min_sigma: float = 1e-3) -> ModelFit | None:
    """Least-squares fit of ``model`` to ``y`` (values in [0, 1] at epochs 1..len(y)) and its Laplace
    predictive for epoch ``max_epochs``; ``None`` where the fit fails or breaks the paper's constraints."""
    n, p = len(y), len(model.params)
    if n <= p:
        return None
    x = np.arange(1, n + 1, dtype=float)
    lower, upper = np.array(model.lower), np.array(model.upper)
    with np.errstate(all="ignore"):
        theta0 = np.asarray(model.init(x, y), dtype=float)
    if not np.all(np.isfinite(theta0)):
        return None
    # a starting point strictly inside the box, as least_squares requires
    span = upper - lower
    theta0 = np.clip(theta0, lower + 1e-6 * span, upper - 1e-6 * span)

    def residuals(theta: Array) -> Array:
        r = model(x, theta) - y
        return np.where(np.isfinite(r), r, 1e3)

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = least_squares(
                residuals,
                theta0,
                bounds=(lower, upper),
                method="trf",
                max_nfev=200 * p,
                x_scale="jac",
                ftol=1e-6,
                xtol=1e-6,
                gtol=1e-6,
            )
    except (ValueError, np.linalg.LinAlgError, FloatingPointError):
        return None
    theta = result.x
    fitted = model(x, theta)
    final = float(model(np.array([float(max_epochs)]), theta)[0])
    first = float(model(np.array([1.0]), theta)[0])
    if not (np.all(np.isfinite(fitted)) and math.isfinite(final)):
        return None
    if final < first or not 0.0 <= final <= 1.0:
        return None
    rss = max(float(np.sum((fitted - y) ** 2)), n * min_sigma**2)
    s2 = rss / max(n - p, 1)
    jac = result.jac
    cov = s2 * np.linalg.pinv(jac.T @ jac)
    grad = np.empty(p)
    for j in range(p):
        h = 1e-6 * max(1.0, abs(theta[j]))
        up, down = theta.copy(), theta.copy()
        up[j] += h
        down[j] -= h
        grad[j] = (model(np.array([float(max_epochs)]), up)[0] - model(np.array([float(max_epochs)]), down)[0]) / (
            2 * h
        )
    var = float(grad @ cov @ grad) + s2
    if not math.isfinite(var):
        return None
    bic = n * math.log(rss / n) + p * math.log(n)
    return ModelFit(model.name, tuple(float(t) for t in theta), final, math.sqrt(max(var, 0.0)), bic)


@dataclass(frozen=True)
class Extrapolation:
    """The BIC-weighted mixture of the families' truncated Gaussian predictions of ``y_m`` (in [0, 1])."""

    fits: tuple[ModelFit, ...]
    weights: tuple[float, ...]

    @property
    def mean(self) -> float:
        return float(sum(w * f.mean for w, f in zip(self.weights, self.fits, strict=True)))

    def prob_greater(self, value: float) -> float:
        """``P(y_m > value)`` under the mixture, each component truncated to [0, 1]."""
        if value >= 1.0:
            return 0.0
        if value < 0.0:
            return 1.0
        total = 0.0
        for w, fit in zip(self.weights, self.fits, strict=True):
            s = max(fit.std, 1e-12)
            top, bottom = ndtr((1.0 - fit.mean) / s), ndtr((0.0 - fit.mean) / s)
            mass = top - bottom
            if mass <= 1e-300:  # all mass outside [0, 1]: the component sits on the nearer bound
                total += w * float(fit.mean > value)
            else:
                total += w * float(np.clip((top - ndtr((value - fit.mean) / s)) / mass, 0.0, 1.0))
        return float(total)


def extrapolate(
    curve: Sequence[float],
    max_epochs: int,
    models: Sequence[str] | None = None,
    scale: float = 100.0,
    min_sigma: float = 1e-3,
) -> Extrapolation | None:
    """Fit the families to ``curve`` (accuracies in ``[0, scale]``) and predict epoch ``max_epochs``;
    ``None`` when no family gives an admissible fit.  Returned values are in [0, 1] (divide by ``scale``)."""
    values = _curve(curve) / scale
    if max_epochs < len(values):
        raise ValueError(f"max_epochs={max_epochs} is shorter than the curve ({len(values)} epochs)")
    names = list(CURVE_MODELS) if models is None else list(models)
    unknown = [m for m in names if m not in CURVE_MODELS]
    if unknown:
        raise ValueError(f"unknown curve model(s) {unknown}; known: {', '.join(CURVE_MODELS)}")
    fits = [fit_curve_model(CURVE_MODELS[m], values, max_epochs, min_sigma) for m in names]
    fits = [f for f in fits if f is not None]
    if not fits:
        return None
    bics = np.array([f.bic for f in fits])
    w = np.exp(-0.5 * (bics - bics.min()))
    return Extrapolation(tuple(fits), tuple(float(v) for v in w / w.sum()))


class DomhanStopper(StoppingRule):
    """Stop a run when ``P(final > best so far) < threshold`` under the extrapolation (Domhan et al. 2015).

    Decisions start at ``min_epochs`` and repeat every ``every`` epochs; without a completed run there is no
    best to beat and the run continues.  Extrapolations are cached by curve prefix, so replaying the same runs
    in other orders refits nothing."""

    name = "domhan"

    def __init__(
        self,
        threshold: float = 0.05,
        min_epochs: int = 5,
        every: int = 1,
        models: Sequence[str] | None = None,
        scale: float = 100.0,
        cache_size: int = 100_000,
    ) -> None:
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold must lie in (0, 1), got {threshold!r}")
        if isinstance(min_epochs, bool) or not isinstance(min_epochs, int) or min_epochs < 2:
            raise ValueError(f"min_epochs must be an integer >= 2, got {min_epochs!r}")
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be an integer >= 1, got {every!r}")
        if not scale > 0:
            raise ValueError(f"scale must be > 0, got {scale!r}")
        unknown = [m for m in (models or []) if m not in CURVE_MODELS]
        if unknown:
            raise ValueError(f"unknown curve model(s) {unknown}; known: {', '.join(CURVE_MODELS)}")
        self.threshold = float(threshold)
        self.min_epochs = min_epochs
        self.every = every
        self.models = None if models is None else tuple(models)
        self.scale = float(scale)
        self._cache: OrderedDict[tuple[bytes, int], Extrapolation | None] = OrderedDict()
        self._cache_size = cache_size

    def extrapolation(self, curve: Sequence[float], max_epochs: int) -> Extrapolation | None:
        values = _curve(curve)
        key = (values.tobytes(), int(max_epochs))
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        result = extrapolate(values, max_epochs, self.models, self.scale)
        self._cache[key] = result
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return result

    def predict_final(self, curve: Sequence[float], context: StopContext) -> float:
        """Mean predicted accuracy at ``context.max_epochs`` (in the curve's unit); the last observed value
        when no family gives an admissible fit."""
        ex = self.extrapolation(curve, context.max_epochs)
        return float(_curve(curve)[-1]) if ex is None else ex.mean * self.scale

    def decide(self, curve: Sequence[float], context: StopContext) -> Decision:
        values = _curve(curve)
        t, best, m = len(values), context.best_so_far, context.max_epochs
        if best is None or t >= m or t < self.min_epochs or (t - self.min_epochs) % self.every:
            return Decision.CONTINUE
        ex = self.extrapolation(values, m)
        if ex is None:
            return Decision.CONTINUE
        return Decision.STOP if ex.prob_greater(best / self.scale) < self.threshold else Decision.CONTINUE

    def __repr__(self) -> str:
        return f"DomhanStopper(threshold={self.threshold}, min_epochs={self.min_epochs}, every={self.every})"
