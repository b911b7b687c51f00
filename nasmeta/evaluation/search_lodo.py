"""Leave-one-dataset-out over registered search methods: for each task of the metadata store, every method
searches that task with the other tasks' metadata only (``SearchContext.meta = fold.train``), through the one
LODO loop (:func:`nasmeta.evaluation.lodo.lodo_loop`, hooks, resume, failures per row).

Each row: the pick's validation / test accuracy (trained with the budget's recipe), the cost, and
``regret_test`` = the best final test accuracy among the task's *stored* runs minus the pick's (negative when a
search finds a cell better than any collected one).  The held-out task is rebuilt from its stored ``TaskSpec``,
so the search sees exactly the data the collection trained on.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from nasmeta.evaluation.lodo import Fold, LodoHooks, lodo_folds, lodo_loop


def held_out_spec(fold: Fold) -> Any:
    """The held-out task's ``TaskSpec`` from the store's ``tasks`` table."""
    from nasmeta.data.tasks import TaskSpec

    rows = [r for r in fold.test.tasks.to_pylist() if r["task_id"] == fold.task_id and r.get("spec")]
    if not rows:
        raise ValueError(f"task {fold.task_id!r} has no stored spec; it cannot be searched again")
    return TaskSpec.from_json(rows[0]["spec"])


def search_lodo(
    meta: Any,
    methods: Sequence[str],
    space: str = "nb201",
    budget: Any = "micro",
    seeds: Iterable[int] = (0,),
    tasks: Sequence[str] | None = None,
    hooks: LodoHooks | None = None,
    done: Iterable[Mapping[str, Any]] | None = None,
    errors: Literal["raise", "record"] = "record",
) -> list[dict[str, Any]]:
    """Rows for every (held-out task, search method, seed); ``budget`` in any form ``resolve_budget`` takes."""
    from nasmeta.budget import resolve_budget
    from nasmeta.search.registry import parse_method
    from nasmeta.search.target import SearchContext, run_method

    budget_obj = resolve_budget(budget)
    for name in methods:
        parse_method(name, space)  # every name checked before the first fold trains anything

    def evaluate(name: str, method: Any, fold: Fold, seed: int) -> dict[str, Any]:
        ctx = SearchContext(space, held_out_spec(fold), budget_obj, seed=seed, meta=fold.train)
        result = run_method(name, ctx)
        stored = [r["final_test_acc"] for r in fold.test.runs.to_pylist() if r["status"] == "completed"]
        oracle = max((v for v in stored if v is not None), default=float("nan"))
        return {
            "task_id": fold.task_id,
            "method": name,
            "seed": seed,
            "best_val_acc": result.best_val_acc,
            "best_test_acc": result.best_test_acc,
            "oracle_test_acc": oracle,
            "regret_test": oracle - result.best_test_acc,
            "cost_seconds": result.cost_seconds,
            "n_evaluations": result.n_evaluations,
            "epochs": result.extra.get("epochs_spent"),
            "arch": str(result.best_arch),
        }

    factories = {name: (lambda train, name=name: parse_method(name, space)) for name in methods}
    return lodo_loop(lodo_folds(meta, tasks), factories, evaluate, seeds, hooks=hooks, done=done, errors=errors)
