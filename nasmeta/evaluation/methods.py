"""The scheduler registry: ``make_method(name, train, **params)`` builds an early-stopping method (a scheduler) for
one search or one LODO fold.

A method is either a ``nasmeta.search.schedulers.Scheduler`` (successive halving, Hyperband, ASHA) or any object
with ``decide(curve, context) -> Decision`` (the stopping rules and the transfer ``Stopper`` role, run per epoch by
``StoppingScheduler``).  A factory receives the training data (``meta.without(task)``, a ``MetaDataset`` view) and
the method's parameters; methods that learn nothing ignore the data.  The same names compose with search methods:
``nasmeta search target --methods blackbox-re+hyperband``.

Adding a method is one decorator, ``@register_method("name")`` on a factory ``(train, **params) -> method``,
or, for a transfer stopper, no code here at all: an unknown name ``x`` is looked up in ``nasmeta.transfer.x``,
whose ``Stopper`` subclass with ``name == "x"`` is built as ``cls(**params).fit(train)`` (how LCRankNet plugs
in).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

MethodFactory = Callable[..., Any]

_REGISTRY: dict[str, MethodFactory] = {}


def register_method(name: str) -> Callable[[MethodFactory], MethodFactory]:
    """Decorator: ``@register_method("median")`` on ``factory(train, **params) -> method``."""

    def deco(factory: MethodFactory) -> MethodFactory:
        _REGISTRY[name] = factory
        return factory

    return deco


@register_method("none")
def _none(train: Any = None, **params: Any) -> Any:
    from nasmeta.blackbox.stopping import NoTermination

    return NoTermination(**params)


@register_method("median")
def _median(train: Any = None, **params: Any) -> Any:
    from nasmeta.blackbox.stopping import MedianStoppingRule

    return MedianStoppingRule(**params)


@register_method("percentile")
def _percentile(train: Any = None, **params: Any) -> Any:
    from nasmeta.blackbox.stopping import PercentileRule

    return PercentileRule(**params)


@register_method("sh")
def _sh(train: Any = None, **params: Any) -> Any:
    from nasmeta.search.schedulers import SuccessiveHalving

    return SuccessiveHalving(**params)


@register_method("hyperband")
def _hyperband(train: Any = None, **params: Any) -> Any:
    from nasmeta.search.schedulers import Hyperband

    return Hyperband(**params)


@register_method("asha")
def _asha(train: Any = None, **params: Any) -> Any:
    from nasmeta.search.schedulers import ASHAScheduler

    return ASHAScheduler(**params)


@register_method("domhan")
def _domhan(train: Any = None, **params: Any) -> Any:
    from nasmeta.blackbox.domhan import DomhanStopper

    return DomhanStopper(**params)


@register_method("baker")
def _baker(train: Any = None, **params: Any) -> Any:
    from nasmeta.blackbox.baker import BakerStopper

    if train is None:
        raise ValueError("method 'baker' learns from metadata: pass the fold's training data")
    return BakerStopper(**params).fit(train)


@register_method("lcranknet-tuned")
def _lcranknet_tuned(train: Any = None, **params: Any) -> Any:
    """LCRankNet whose grace period and threshold an inner leave-tasks-out on ``train`` chose."""
    from nasmeta.transfer.lcranknet_policy import tuned_lcranknet

    if train is None:
        raise ValueError("method 'lcranknet-tuned' learns from metadata: pass the fold's training data")
    return tuned_lcranknet(train, **params)


def _transfer_factory(name: str) -> MethodFactory | None:
    """A factory for transfer component ``name`` when it has the stopper role (``nasmeta.transfer.registry``)."""
    from nasmeta.transfer.base import Stopper
    from nasmeta.transfer.registry import component_class

    try:
        cls = component_class(name)
    except ValueError:
        return None
    if not issubclass(cls, Stopper):
        return None

    def factory(train: Any = None, **params: Any) -> Any:
        if train is None:
            raise ValueError(f"method {name!r} learns from metadata: pass the fold's training data")
        return cls(**params).fit(train)

    return factory


def known_methods() -> list[str]:
    """Registered method names (transfer stoppers appear once they have been looked up)."""
    return sorted(_REGISTRY)


def method_factory(name: str) -> MethodFactory:
    """The factory called ``name``; unknown names raise ``ValueError`` listing the known ones."""
    if name not in _REGISTRY:
        factory = _transfer_factory(name) if isinstance(name, str) else None
        if factory is None:
            raise ValueError(f"unknown method {name!r}; known methods: {', '.join(known_methods())}")
        _REGISTRY[name] = factory
    return _REGISTRY[name]


def make_method(name: str, train: Any = None, **params: Any) -> Any:
    """Build method ``name`` for one fold from its training data and parameters."""
    return method_factory(name)(train, **params)
