"""LCRankNet's stopping policy chosen on the source tasks only (inner leave-tasks-out), not tuned by hand.

LCRankNet stops a run when ``p(beats the best so far) <= delta`` after at least ``min_epochs`` epochs; those two
numbers trade regret against training time, and a fixed choice judged on the same curves it was tuned on
overstates the method.  Here the policy is chosen with the outer fold's source tasks alone:

1. The source tasks are split into ``inner_folds`` groups (round robin over sorted task ids).  For each group an
   LCRankNet is fitted on the other groups' runs (the same recipe as the final model).
2. On every task of the group, random search is replayed (``nasmeta.evaluation.replay``, the first ``n_runs`` runs
   of each seeded order) under each ``(min_epochs, delta)`` of the grid, and under no stopping.
3. Each setting's mean regret (validation points) and mean cost (epochs trained, as a fraction of no stopping's)
   over the inner tasks and seeds make the regret-vs-cost curve; the chosen setting is the **cheapest whose mean
   regret is within ``tolerance`` points of no stopping's** (ties: the lower regret, then the larger grace
   period).  When none qualifies, the setting with the lowest regret is taken.

``PolicyChoice.markdown()`` prints the curve.  The final model (fitted on all source tasks) uses the chosen
setting; ``make_method("lcranknet-tuned", train, **params)`` does all of it (``nasmeta.evaluation.methods``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

DEFAULT_MIN_EPOCHS = (1, 2, 4)
DEFAULT_DELTAS = (0.02, 0.05, 0.1, 0.2)


@dataclass
class PolicyChoice:
    """The grid's mean regret / cost on the inner folds and the chosen ``(min_epochs, delta)``."""

    rows: list[dict[str, float]]
    reference: dict[str, float]
    chosen: tuple[int, float]
    tolerance: float
    inner_tasks: list[str] = field(default_factory=list)

    def markdown(self) -> str:
        lines = [
            f"LCRankNet policy on {len(self.inner_tasks)} inner tasks: no stopping has regret "
            f"{self.reference['regret']:.2f} at {self.reference['epochs']:.0f} epochs; chosen min_epochs="
            f"{self.chosen[0]}, delta={self.chosen[1]:g} (cheapest within {self.tolerance:g} points)",
            "",
            "| min_epochs | delta | regret | epochs | cost vs none |",
            "|---|---|---|---|---|",
        ]
        for row in sorted(self.rows, key=lambda r: (r["min_epochs"], r["delta"])):
            mark = " *" if (row["min_epochs"], row["delta"]) == self.chosen else ""
            lines.append(
                f"| {row['min_epochs']:.0f} | {row['delta']:g}{mark} | {row['regret']:.2f} | {row['epochs']:.0f} | "
                f"{row['cost_ratio']:.3f} |"
            )
        return "\n".join(lines) + "\n"

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "reference": self.reference,
            "chosen": list(self.chosen),
            "tolerance": self.tolerance,
            "inner_tasks": self.inner_tasks,
        }


def choose_policy(
    runs: Sequence[Any],
    params: Mapping[str, Any] | None = None,
    min_epochs: Sequence[int] = DEFAULT_MIN_EPOCHS,
    deltas: Sequence[float] = DEFAULT_DELTAS,
    inner_folds: int = 3,
    seeds: Sequence[int] = (0,),
    n_runs: int | None = 40,
    tolerance: float = 0.5,
) -> PolicyChoice:
    """Choose ``(min_epochs, delta)`` for LCRankNet on the source runs ``runs`` (``ReplayRun``s of several tasks)."""
    from nasmeta.evaluation.methods import make_method
    from nasmeta.evaluation.replay import replay
    from nasmeta.transfer.lcranknet import LCRankNet

    by_task: dict[str, list[Any]] = {}
    for run in runs:
        by_task.setdefault(run.task_id, []).append(run)
    tasks = sorted(by_task)
    if len(tasks) < 2:
        raise ValueError(f"an inner leave-tasks-out needs at least 2 source tasks, got {len(tasks)}")
    if not min_epochs or not deltas:
        raise ValueError("the policy grid is empty: give min_epochs and deltas")
    groups = [tasks[i :: min(inner_folds, len(tasks))] for i in range(min(inner_folds, len(tasks)))]
    params = dict(params or {})
    sums: dict[tuple[int, float], list[float]] = {(m, d): [] for m in min_epochs for d in deltas}
    costs: dict[tuple[int, float], list[float]] = {key: [] for key in sums}
    ratios: dict[tuple[int, float], list[float]] = {key: [] for key in sums}
    none_regret, none_epochs = [], []
    for group in groups:
        train = [r for r in runs if r.task_id not in group]
        model = LCRankNet(**params).fit(train)
        base = model.config
        for task in group:
            for seed in seeds:
                reference = replay(by_task[task], make_method("none"), seed=seed, n_runs=n_runs)
                none_regret.append(reference.regret_val)
                none_epochs.append(reference.epochs)
                for key in sums:
                    model.config = base.model_copy(update={"min_epochs": key[0], "delta": key[1]})
                    outcome = replay(by_task[task], model, seed=seed, n_runs=n_runs)
                    sums[key].append(outcome.regret_val)
                    costs[key].append(outcome.epochs)
                    ratios[key].append(outcome.epochs / max(reference.epochs, 1))
        model.config = base
    rows = [
        {
            "min_epochs": float(key[0]),
            "delta": float(key[1]),
            "regret": float(np.mean(sums[key])),
            "epochs": float(np.mean(costs[key])),
            "cost_ratio": float(np.mean(ratios[key])),
        }
        for key in sums
    ]
    reference = {"regret": float(np.mean(none_regret)), "epochs": float(np.mean(none_epochs))}
    within = [r for r in rows if r["regret"] <= reference["regret"] + tolerance + 1e-12]
    if within:
        best = min(within, key=lambda r: (r["cost_ratio"], r["regret"], -r["min_epochs"]))
    else:
        best = min(rows, key=lambda r: (r["regret"], r["cost_ratio"]))
    return PolicyChoice(rows, reference, (int(best["min_epochs"]), float(best["delta"])), tolerance, tasks)


def tuned_lcranknet(train: Any, **params: Any) -> Any:
    """An LCRankNet fitted on ``train`` whose ``(min_epochs, delta)`` the inner leave-tasks-out chose; policy
    options (``min_epochs_grid``, ``deltas``, ``inner_folds``, ``inner_seeds``, ``inner_runs``, ``tolerance``)
    come with the model's own parameters.  The choice is kept as ``model.policy`` (a :class:`PolicyChoice`)."""
    from nasmeta.evaluation.runs import runs_from_meta
    from nasmeta.transfer.lcranknet import LCRankNet

    options = {
        "min_epochs": tuple(params.pop("min_epochs_grid", DEFAULT_MIN_EPOCHS)),
        "deltas": tuple(params.pop("deltas", DEFAULT_DELTAS)),
        "inner_folds": int(params.pop("inner_folds", 3)),
        "seeds": tuple(params.pop("inner_seeds", (0,))),
        "n_runs": params.pop("inner_runs", 40),
        "tolerance": float(params.pop("tolerance", 0.5)),
    }
    runs = list(train) if isinstance(train, list | tuple) else runs_from_meta(train)
    choice = choose_policy(runs, params, **options)
    model = LCRankNet(**{**params, "min_epochs": choice.chosen[0], "delta": choice.chosen[1]}).fit(runs)
    model.policy = choice
    return model
