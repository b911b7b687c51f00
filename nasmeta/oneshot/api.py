"""The one-shot entry point: ``oneshot_search`` runs a strategy over a supernet and returns a ``SearchResult``
(retraining the found architecture is :mod:`nasmeta.retrain`, shared by every search).

Strategies: every ``@register_strategy`` class of a module in ``nasmeta/oneshot/``: ``darts`` (first / second
order, ``order=1|2``), ``enas``, ``random`` (random-sampling one-shot), ``pcdarts`` (partial channels),
``proxyless`` (binary gates, latency loss), ``gdas`` (Gumbel, or ``variant="snas"``), ...; spaces: those with a
``SearchSpace.supernet`` (``nb201``, ``darts``, ``darts-s1`` .. ``darts-s4``).  Method settings are keyword
arguments, validated by each strategy's pydantic config (unknown names raise ``ValueError``).
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from nasmeta.data.types import TaskData
from nasmeta.oneshot.loop import WeightConfig, registered_strategies, run_search, strategy_class
from nasmeta.oneshot.pretext import Pretext, search_data, search_supernet
from nasmeta.oneshot.supernet import Supernet
from nasmeta.reporting import Reporter, ShouldStop
from nasmeta.search_result import SearchResult
from nasmeta.spaces import get_space
from nasmeta.spaces.base import SearchSpace


def strategy_names(imported: bool = True) -> list[str]:
    """Every strategy registered with ``@register_strategy`` in a module of ``nasmeta/oneshot/``.

    ``imported=False`` reads the decorators from the modules' source instead of importing them (the search-method
    registry lists one-shot methods this way, so that checking a command line does not import every strategy);
    a test checks that both ways give the same names."""
    import pkgutil
    import re

    import nasmeta.oneshot as package

    modules = [m.name for m in pkgutil.iter_modules(package.__path__)]
    if not imported:
        pattern = re.compile(r"""^@register_strategy\(\s*["']([\w-]+)["']\s*\)""", re.M)
        folder = Path(package.__path__[0])
        return sorted({n for m in modules for n in pattern.findall((folder / f"{m}.py").read_text())})
    for name in modules:
        importlib.import_module(f"{package.__name__}.{name}")
    return registered_strategies()


def supernet_spaces() -> tuple[str, ...]:
    """Spaces whose ``SearchSpace.supernet`` exists."""
    from nasmeta.spaces import list_spaces

    return tuple(name for name in list_spaces() if get_space(name).has_supernet)


def build_supernet(
    space: str | SearchSpace, num_classes: int, input_shape: tuple[int, int, int], **size: Any
) -> Supernet:
    """The supernet of ``space`` (``SearchSpace.supernet``); ``size``: NB201 ``C, N``; DARTS ``C, layers``."""
    space_obj = get_space(space) if isinstance(space, str) else space
    return space_obj.supernet(num_classes, input_shape, **size)


def _resolve_device(device: str) -> torch.device:
    from nasmeta.training import resolve_device

    return resolve_device(device)


def _task(task: Any) -> TaskData:
    if isinstance(task, TaskData):
        return task
    from nasmeta.data.tasks import resolve_task

    return resolve_task(task)


def oneshot_search(
    method: str,
    space: str | SearchSpace,
    task_data: TaskData | str,
    epochs: int,
    batch_size: int = 64,
    seed: int = 0,
    reporter: Reporter | None = None,
    *,
    supernet_size: Mapping[str, Any] | None = None,
    weight_config: WeightConfig | Mapping[str, Any] | None = None,
    train_portion: float = 0.5,
    device: str = "auto",
    should_stop: ShouldStop | None = None,
    skip_stop: int | None = None,
    objective: str | Mapping[str, Any] | Pretext | None = "labels",
    **method_kwargs: Any,
) -> SearchResult:
    """Run one-shot search ``method`` on ``space`` for ``epochs`` epochs of the bi-level loop.

    The task's train split is halved (``train_portion``) into weight-train and arch-validation data; its val and
    test splits are not touched (they are for :func:`retrain`).  Everything is seeded from ``seed``.

    Returns a ``SearchResult`` with ``best_arch``; ``trace`` (one row per epoch, row 0 before training: losses,
    accuracies in %, ``skip_share``, ``op_weights`` = ``{cell: {edge: {op: weight}}}`` (softmax(alpha) for
    DARTS, the controller's op frequencies for ENAS), entropies, rewards, ``arch``); ``history`` (the supernet
    evaluations made to choose: random one-shot's ranking, ENAS's final samples); ``extra`` (space, method
    settings, supernet size, timings, final alphas).  ``best_val_acc`` / ``best_test_acc`` stay ``None`` until
    :func:`with_retrain`.

    ``skip_stop``: DARTS+'s early stop for any strategy: the search ends after the first epoch whose derived normal
    cell holds ``skip_stop`` or more ``skip_connect`` ops (published: 2).

    ``objective``: ``"labels"`` (default) or an UnNAS pretext task searched on instead of the labels
    (``"rotation"``, ``"colorization"``, ``"jigsaw"``, or a mapping ``{"name": ..., settings}``; see
    :mod:`nasmeta.oneshot.pretext`): the supernet's head is sized to it and no label of the task is read.
    """
    known = strategy_names()
    if method not in known:
        raise ValueError(f"unknown one-shot method {method!r}; known: {', '.join(known)}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 2:
        raise ValueError(f"batch_size must be an integer >= 2, got {batch_size!r}")
    space_obj = get_space(space) if isinstance(space, str) else space
    task = _task(task_data)
    if not isinstance(weight_config, WeightConfig):
        weight_config = WeightConfig(**(weight_config or {}))
    size = dict(supernet_size or {})
    dev = _resolve_device(device)

    # issue 18 (UnNAS): a pretext objective replaces the labels: label-free search data, a head sized to it
    data, pretext = search_data(objective, task, seed, train_portion)
    data = data.to(dev)
    if skip_stop is not None and (isinstance(skip_stop, bool) or not isinstance(skip_stop, int) or skip_stop < 1):
        raise ValueError(f"skip_stop must be a positive integer or None, got {skip_stop!r}")
    cls = strategy_class(method)
    # -- staged strategies (P-DARTS, issue 17): one loop run per stage, each over a newly built supernet --------
    run_stages = getattr(cls, "run_stages", None)
    if run_stages is not None:

        def build(**overrides: Any) -> Supernet:
            return search_supernet(space_obj, task, data, pretext, {**size, **overrides}).to(dev)

        strategy, trace, search_seconds = run_stages(
            build, data, batch_size, seed, epochs, weight_config, reporter, should_stop, skip_stop, **method_kwargs
        )
        supernet = strategy.supernet
    # -- end staged strategies ----------------------------------------------------------------------------------
    else:
        torch.manual_seed(seed)
        supernet = search_supernet(space_obj, task, data, pretext, size).to(dev)
        strategy = cls(supernet, data, batch_size, seed, **method_kwargs)
        if skip_stop is not None:
            strategy.skip_stop = skip_stop
        trace, search_seconds = run_search(strategy, epochs, weight_config, reporter, should_stop)
    start = time.perf_counter()
    arch, history, extra = strategy.finish()
    choose_seconds = time.perf_counter() - start
    n_weights = sum(p.numel() for p in supernet.weights())
    return SearchResult(
        method=method,
        best_arch=arch,
        history=history,
        trace=trace,
        cost_seconds=search_seconds + choose_seconds,
        n_evaluations=len(history),
        extra={
            "space": space_obj.name,
            "task_id": task.task_id,
            "method_config": strategy.state(),
            "weight_config": weight_config.model_dump(),
            "supernet_size": {**supernet.size},
            "supernet_params": n_weights,
            "epochs": len(trace) - 1,
            "batch_size": batch_size,
            "seed": seed,
            "skip_stop": strategy.skip_stop,
            "objective": "labels" if pretext is None else pretext.state(),
            "device": str(dev),
            "search_seconds": search_seconds,
            "choose_seconds": choose_seconds,
            **extra,
        },
    )
