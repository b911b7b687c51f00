"""What a search method receives (:class:`SearchContext`) and how a registered method is run (:func:`run_method`).

A method reads everything from the context: the space, the target task, the resolved budget (network sizes for
this space, the training recipe, evaluations), the seed, the scheduler named by ``"method+scheduler"``, fitted
transfer components (loaded from their saved folders, or fitted here on ``meta`` with the target held out), the
target's landmarkers, and the hooks (reporter, per-trial callback) through which tracking plugs in from above.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from nasmeta.budget import Budget, resolve_budget
from nasmeta.reporting import Reporter
from nasmeta.search_result import SearchResult


@dataclass
class SearchContext:
    space: str
    task: Any  # nasmeta.data.tasks.TaskSpec, already reduced to the budget's images per class
    budget: Budget
    seed: int = 0
    scheduler_name: str | None = None
    components: dict[str, str] = field(default_factory=dict)
    meta: Any = None  # a MetaDataset view without the target task (None: no metadata)
    reporter: Reporter | None = None
    on_trial: Any = None  # nasmeta.search.loop.TrialCallback
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def create(cls, space: str, task: Any, budget: Any = "default", **kwargs: Any) -> SearchContext:
        """From a space name, a task (name or ``TaskSpec``) and a budget in any form ``resolve_budget`` takes."""
        from nasmeta.data.tasks import get_task

        budget_obj = resolve_budget(budget)
        spec = get_task(task) if isinstance(task, str) else task
        if budget_obj.samples_per_class:
            spec = spec.small(budget_obj.samples_per_class)
        return cls(space, spec, budget_obj, **kwargs)

    @property
    def space_obj(self) -> Any:
        from nasmeta.spaces import get_space

        return get_space(self.space)

    def data(self) -> Any:
        """The target task's tensors (loaded once)."""
        if "data" not in self._cache:
            self._cache["data"] = self.task.load()
        return self._cache["data"]

    def evaluator(self) -> Any:
        """The training evaluator every pick is judged by: the budget's recipe for ``eval_epochs``, its network size
        for this space."""
        from nasmeta.training import TrainingEvaluator

        return TrainingEvaluator(
            self.space, self.data(), self.budget.train_config(), size=self.budget.network_size(self.space)
        )

    def scheduler(self) -> Any:
        """The scheduler named in ``"method+scheduler"`` (None when none was named), fitted on ``meta`` when it
        learns (a saved component of that name is loaded instead)."""
        if self.scheduler_name is None:
            return None
        from nasmeta.evaluation.methods import make_method
        from nasmeta.search.schedulers import as_scheduler

        name = self.scheduler_name
        if name in self.components:
            return as_scheduler(self.component(name))
        return as_scheduler(make_method(name, self.meta, **self.budget.transfer.get(name, {})))

    def component(self, name: str) -> Any:
        """Transfer component ``name``: loaded from ``components[name]``, else fitted on ``meta`` with the budget's
        settings for it; cached."""
        key = f"component:{name}"
        if key not in self._cache:
            from nasmeta.transfer.registry import component_class

            cls = component_class(name)
            if name in self.components:
                self._cache[key] = cls.load(self.components[name])
            elif self.meta is None:
                raise ValueError(f"transfer component {name!r} needs metadata: give a store or a saved component")
            else:
                self._cache[key] = cls(**self.budget.transfer.get(name, {})).fit(self.meta)
        return self._cache[key]

    def landmarkers(self) -> dict[str, Any]:
        """The target's landmarkers (DCN, ...), computed once per process and task."""
        from nasmeta.data.landmarkers import compute_landmarkers

        if self.task.task_id not in _LANDMARKERS:
            _LANDMARKERS[self.task.task_id] = {"task_id": self.task.task_id, **compute_landmarkers(self.task)}
        return _LANDMARKERS[self.task.task_id]

    def train_pick(self, result: SearchResult) -> SearchResult:
        """``result`` with its pick trained by :meth:`evaluator` (for methods that choose without training)."""
        picked = self.evaluator().evaluate(result.best_arch, seed=self.seed)
        if picked.status != "completed":
            raise RuntimeError(f"training the pick {result.best_arch} failed: {picked.error}")
        return result.with_pick_evaluated(picked)

    def loop_options(self) -> dict[str, Any]:
        """Keyword arguments every loop-based method passes to ``run_search`` (hooks and the target task)."""
        return {"on_trial": self.on_trial, "task_id": self.task.task_id}


_LANDMARKERS: dict[str, dict[str, Any]] = {}


def run_method(text: str, ctx: SearchContext) -> SearchResult:
    """Run registered method ``text`` (``"name"`` or ``"name+scheduler"``) in ``ctx``."""
    from nasmeta.search.registry import parse_method

    spec = parse_method(text, ctx.space)
    ctx = replace(ctx, scheduler_name=spec.scheduler, _cache=ctx._cache)
    result = spec.info.fn(ctx)
    if not isinstance(result, SearchResult):
        raise TypeError(f"search method {spec.info.name!r} returned {type(result).__name__}, not a SearchResult")
    result.extra.setdefault("family", spec.info.family)
    return replace(result, method=spec.text)
