"""The proxy registry (NASLib's ``@measure``): adding a zero-shot proxy is one new file and one decorator.

A proxy is a function ``fn(model, batch, **options) -> float`` registered with ``@proxy("name", sign=...)``.
It receives its own deep copy of the network (so it may re-initialise, bypass BN or cast it; read-only
proxies registered with ``copies=False`` get the network itself) in train mode,
the first ``batch_size`` rows of the shared batch, and runs under a forked torch RNG seeded with ``seed``.
``sign`` is the declared convention: ``score = sign * raw`` and a higher score is always better.

A *composite* proxy (``register_composite``) has no function of its own: its score over a population of
architectures is the mean rank of its parts (TE-NAS' rank combination).  A network a proxy cannot handle
(no ReLU modules for NASWOT, no BatchNorm for Zen) raises :class:`ProxyNotApplicable`; ``compute_proxy`` turns
that into a "not applicable" :class:`ProxyValue` so the other proxies still run.

Proxy modules live in ``nasmeta/zeroshot/proxies/`` and are imported on first use, so importing the
registry stays light and a new file there is found without edits elsewhere.
"""

from __future__ import annotations

import copy
import importlib
import math
import pkgutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

    from nasmeta.zeroshot.batch import Batch


class ProxyNotApplicable(Exception):  # noqa: N818 - the name the rest of nasmeta uses
    """The network lacks what the proxy measures (e.g. no ReLU modules for NASWOT, no BatchNorm for Zen)."""


#: ``builder(space, arch, num_classes, input_shape, build_kwargs) -> (network, options)`` or ``None`` for the
#: default network: a per-space hook for proxies that measure a differently sized network (TE-NAS regions).
NetworkHook = Callable[[Any, Any, int, tuple[int, int, int], dict[str, Any]], "tuple[nn.Module, dict] | None"]


@dataclass(frozen=True)
class ProxySpec:
    """What the registry knows about one proxy.

    ``needs_data``: uses the batch's images / labels (otherwise only its shape).  ``batch_size``: rows of the
    batch the proxy uses (``None``: a single all-ones sample or no input at all).  ``parts``: for composites,
    the proxies whose ranks are averaged.  ``network_hook``: see :data:`NetworkHook`.  ``copies``: False for
    read-only proxies (counting parameters) that may skip the deep copy.
    """

    name: str
    sign: int
    needs_data: bool
    batch_size: int | None
    description: str
    fn: Callable[..., float] | None = None
    parts: tuple[str, ...] = ()
    network_hook: NetworkHook | None = None
    defaults: dict[str, Any] = field(default_factory=dict)
    copies: bool = True

    def __post_init__(self) -> None:
        if self.sign not in (1, -1):
            raise ValueError(f"proxy {self.name!r}: sign must be +1 or -1, got {self.sign!r}")
        if (self.fn is None) == (not self.parts):
            raise ValueError(f"proxy {self.name!r}: give exactly one of a function or composite parts")
        if self.batch_size is not None and self.batch_size < 1:
            raise ValueError(f"proxy {self.name!r}: batch_size must be >= 1, got {self.batch_size}")

    @property
    def is_composite(self) -> bool:
        return bool(self.parts)


@dataclass(frozen=True)
class ProxyValue:
    """One proxy on one network.  ``score = sign * raw`` (higher is better); both are NaN when not applicable.

    ``seconds`` is wall time; ``cpu_seconds`` the process CPU time (all threads), steadier on a shared machine.
    """

    proxy: str
    score: float
    raw: float
    seconds: float
    applicable: bool = True
    reason: str | None = None
    cpu_seconds: float = math.nan


_REGISTRY: dict[str, ProxySpec] = {}
_LOADED = False


def proxy(
    name: str,
    *,
    sign: int = 1,
    needs_data: bool = True,
    batch_size: int | None = 64,
    description: str = "",
    network_hook: NetworkHook | None = None,
    copies: bool = True,
    **defaults: Any,
) -> Callable[[Callable[..., float]], Callable[..., float]]:
    """Decorator: ``@proxy("synflow", needs_data=False, batch_size=None)`` registers ``fn(model, batch, **opts)``."""

    def deco(fn: Callable[..., float]) -> Callable[..., float]:
        if name in _REGISTRY:
            raise ValueError(f"proxy {name!r} is registered twice")
        doc = description or (fn.__doc__ or "").strip().splitlines()[0]
        _REGISTRY[name] = ProxySpec(
            name, sign, needs_data, batch_size, doc, fn, (), network_hook, dict(defaults), copies
        )
        return fn

    return deco


def register_composite(name: str, parts: tuple[str, ...], description: str) -> None:
    """A proxy scored as the mean rank of ``parts`` over a population (needs several architectures)."""
    if name in _REGISTRY:
        raise ValueError(f"proxy {name!r} is registered twice")
    _REGISTRY[name] = ProxySpec(name, 1, False, None, description, None, tuple(parts))


def _load() -> None:
    global _LOADED
    if _LOADED:
        return
    import nasmeta.zeroshot.proxies as package

    for module in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if not module.name.startswith("_"):
            importlib.import_module(f"{package.__name__}.{module.name}")
    _LOADED = True


def list_proxies() -> list[str]:
    _load()
    return sorted(_REGISTRY)


def get_proxy(name: str) -> ProxySpec:
    """The spec of proxy ``name``; unknown names raise ``ValueError`` listing the known ones."""
    _load()
    if name not in _REGISTRY:
        raise ValueError(f"unknown proxy {name!r}; known proxies: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def expand(names: list[str] | tuple[str, ...]) -> list[str]:
    """The non-composite proxies needed to score ``names`` (composites replaced by their parts), in order."""
    out: list[str] = []
    for name in names:
        spec = get_proxy(name)
        for part in spec.parts or (name,):
            if part not in out:
                out.append(part)
    return out


def compute_proxy(name: str, model: nn.Module, batch: Batch, *, seed: int = 42, **options: Any) -> ProxyValue:
    """Score ``model`` with proxy ``name`` on a deep copy of it; the original network is left untouched.

    Deterministic on CPU for fixed (model, batch, seed).  A :class:`ProxyNotApplicable` becomes a
    not-applicable value; any other error propagates.  Composites need a population: use
    ``nasmeta.zeroshot.search.score_architectures``.
    """
    import torch

    spec = get_proxy(name)
    if spec.is_composite:
        raise ValueError(
            f"proxy {name!r} is a rank combination of {', '.join(spec.parts)} and needs several architectures; "
            "score its parts and combine them with nasmeta.zeroshot.search.combine_ranks"
        )
    unknown = set(options) - set(spec.defaults)
    if unknown:
        raise ValueError(f"proxy {name!r} has no option(s) {sorted(unknown)}; it takes {sorted(spec.defaults)}")
    kwargs = {**spec.defaults, **options}
    net = copy.deepcopy(model) if spec.copies else model
    was_training = net.training
    net.train()
    part = batch.head(spec.batch_size) if spec.batch_size is not None else batch
    start, cpu = time.perf_counter(), time.process_time()
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            raw = float(spec.fn(net, part, **kwargs))
    except ProxyNotApplicable as err:
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        return ProxyValue(name, math.nan, math.nan, seconds, False, str(err), cpu)
    finally:
        net.train(was_training)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    return ProxyValue(name, spec.sign * raw, raw, seconds, cpu_seconds=cpu)
