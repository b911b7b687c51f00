"""``lodo_evaluation``: the leave-one-dataset-out early-termination comparison as a Prefect flow.

For every held-out task of the metadata store (one Prefect task per fold, folds run concurrently on the flow's
task runner; each fold is the library's LODO loop, ``nasmeta.evaluation.lodo.replay_lodo(..., tasks=[task])``,
with MLflow and the store plugged in through its hooks, :class:`FoldTracking`) each method is built on the other
tasks (``make_method(name, meta.without(task), **params)``: LCRankNet and Baker are fitted there) and replays a
random search over the held-out task's stored runs in ``len(seeds)`` random orders (``nasmeta.evaluation.replay``),
which gives its regret and training hours.

MLflow (experiment ``lodo`` by default): a parent run per flow run; a child run per fold (tags ``task``,
``lodo_fold``, ``method`` = the compared methods; metrics ``regret/<method>``, ``hours/<method>``); under it a
run per method (tags ``task``, ``method``, ``lodo_fold``; metrics ``regret`` and ``hours`` per seed with
``step`` = seed, their means ``regret_mean`` / ``hours_mean``, and ``fit_seconds``, the meta-training time on
the source tasks, which the search's ``hours`` do not include; fitted transfer components logged as MLflow
models).  The parent gets the results table (MLflow table artefact, markdown, CSVs and the regret-vs-cost plot,
also written to ``out``) and the per-method means.

Store: every completed (task, method, seed) becomes one row of the ``searches`` table (``search_id`` a
deterministic hash of the experiment, so a rerun replaces its rows; ``lodo_fold`` = the held-out task; ``budget``
= the replay protocol as JSON; ``best_*`` = the run the method picked; ``cost_seconds`` = training seconds spent;
``n_evaluations`` = runs trained for at least one epoch; ``mlflow_run_id`` = the method's run).  Regret is not a
column of that table; it follows from ``best_val_acc`` and the task's best run.

Failures and progress: a method that fails on a fold gives rows with ``status="failed"`` and the reason in
``error`` (its MLflow run ends FAILED, it gets no ``searches`` rows) and the other methods and folds go on; the
flow fails only when every row failed.  ``out/lodo_runs.csv`` is rewritten after every row, so an interrupted
flow leaves its finished rows there, and ``resume=<that CSV>`` reuses them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NONE
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from flows.common import open_store
from flows.progress import StageHooks, stage

__all__ = [
    "DEFAULT_METHODS",
    "FoldTracking",
    "LodoParameters",
    "lodo_evaluation",
    "lodo_fold",
    "search_rows",
    "tasks_with_runs",
]

#: the LCRankNet paper's comparison (Chandrashekaran & Lane's method is not implemented)
DEFAULT_METHODS = ["lcranknet", "hyperband", "sh", "median", "domhan", "baker", "none"]


class LodoParameters(BaseModel):
    """Validated parameters of :func:`lodo_evaluation` (a bad value raises ``ValueError`` naming it)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: metadata store root (folder or URL; None: $NASMETA_HOME/store)
    store: str | None = None
    #: registered replay methods (``nasmeta.evaluation.methods``), e.g. lcranknet, hyperband, sh, median
    methods: list[str] = Field(min_length=1)
    #: parameters per method, e.g. ``{"lcranknet": {"delta": 0.3}, "hyperband": {"eta": 3}}``
    method_params: dict[str, dict[str, Any]] = Field(default_factory=dict)
    #: random orders of the replayed search (an int n means seeds 0..n-1)
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2], min_length=1)
    #: replay only the first n runs of each order (None: all of the task's runs)
    n_runs: int | None = Field(None, ge=1)
    #: held-out tasks (None: every task of the store that has completed runs with curves)
    tasks: list[str] | None = None
    #: folder for the markdown / CSV / plot (None: $NASMETA_HOME/lodo/<time>)
    out: str | None = None
    experiment: str = Field("lodo", min_length=1)
    tracking_uri: str | None = None
    write_searches: bool = True
    log_models: bool = True
    #: a results CSV of an earlier, interrupted run: its finished (task, method, seed) rows are reused
    resume: str | None = None
    #: replay one run per (task, cell): the lowest seed's (collections that repeat some cells with more seeds)
    lowest_seed: bool = False

    @field_validator("seeds", mode="before")
    @classmethod
    def _seed_count(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            if value < 1:
                raise ValueError(f"seeds must be >= 1 when given as a count, got {value}")
            return list(range(value))
        return value

    @field_validator("methods")
    @classmethod
    def _known_methods(cls, value: list[str]) -> list[str]:
        from nasmeta.evaluation.methods import method_factory

        if len(set(value)) != len(value):
            raise ValueError(f"methods must be distinct, got {value}")
        for name in value:
            method_factory(name)  # ValueError naming the unknown method and the known ones
        return value

    @model_validator(mode="after")
    def _params_of_chosen_methods(self) -> LodoParameters:
        extra = sorted(set(self.method_params) - set(self.methods))
        if extra:
            raise ValueError(f"method_params names method(s) {extra} that are not in methods {self.methods}")
        if self.tasks is not None and not self.tasks:
            raise ValueError("tasks is empty: name at least one task or pass None for all")
        return self


def tasks_with_runs(meta: Any) -> list[str]:
    """Tasks of ``meta`` that have completed runs with curves (the ones a replay can hold out), sorted."""
    import pyarrow.compute as pc

    runs = meta.runs.filter(pc.equal(meta.runs["status"], "completed"))
    with_curves = set(pc.unique(meta.curves["run_id"]).to_pylist())
    return sorted({r["task_id"] for r in runs.select(["run_id", "task_id"]).to_pylist() if r["run_id"] in with_curves})


def _search_id(params: LodoParameters, task_id: str, method: str, seed: int, sources: list[str]) -> str:
    payload = [
        "lodo-replay",
        task_id,
        method,
        params.method_params.get(method, {}),
        seed,
        params.n_runs,
        sources,
    ]
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def _finite(value: Any) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def search_rows(
    params: LodoParameters, rows: list[dict[str, Any]], arch_of: dict[str, str], sources: list[str]
) -> list[dict[str, Any]]:
    """``searches`` rows for replay result rows (``ReplayOutcome.as_row()`` plus ``mlflow_run_id``)."""
    out = []
    for row in rows:
        budget = {"protocol": "replay", "order_seed": row["seed"], "n_runs": params.n_runs, "sources": sources}
        out.append(
            {
                "search_id": _search_id(params, row["task_id"], row["method"], row["seed"], sources),
                "task_id": row["task_id"],
                "method": row["method"],
                "budget": json.dumps(budget, sort_keys=True),
                "best_arch_id": arch_of.get(row["picked_run_id"]),
                "best_val_acc": _finite(row["picked_val_acc"]),
                "best_test_acc": _finite(row["picked_test_acc"]),
                "cost_seconds": float(row["seconds"]),
                "n_evaluations": int(row["n_runs"]),
                "lodo_fold": row["task_id"],
                "mlflow_run_id": row.get("mlflow_run_id"),
            }
        )
    return out


class FoldTracking:
    """MLflow and the store for one fold, through the LODO loop's hooks (``nasmeta.evaluation.lodo.LodoHooks``):
    the fold's child run opens at ``on_fold_start``, each method's run at ``on_method_start`` (``fit_seconds`` and
    the fitted component at ``on_method_fitted``, ``regret`` / ``hours`` per seed at ``on_result``, the means at
    ``on_method_end``; a method whose rows failed ends FAILED with its reason), and ``on_fold_end`` writes the
    fold's ``searches`` rows and closes the fold run.  Use it as a context manager around the loop, so that an
    exception ends the open runs FAILED."""

    def __init__(self, params: LodoParameters, parent: Any, store: Any) -> None:
        self.params = params
        self.parent = parent
        self.store = store
        #: per method of this fold: its MLflow run id and the seconds its fit took
        self.methods: dict[str, dict[str, Any]] = {}
        self._stack = contextlib.ExitStack()
        self._fold_stack: contextlib.ExitStack | None = None
        self._method_stack: contextlib.ExitStack | None = None
        self._fold_run: Any = None
        self._run: Any = None
        self._runs: list[Any] = []
        self._sources: list[str] = []

    def __enter__(self) -> FoldTracking:
        self._stack.__enter__()
        return self

    def __exit__(self, *exc: Any) -> Any:
        return self._stack.__exit__(*exc)

    def hooks(self) -> Any:
        from nasmeta.evaluation.lodo import LodoHooks

        return LodoHooks(
            on_fold_start=self.fold_start,
            on_method_start=self.method_start,
            on_method_fitted=self.method_fitted,
            on_result=self.result,
            on_method_end=self.method_end,
            on_fold_end=self.fold_end,
        )

    def fold_start(self, fold: Any) -> None:
        from nasmeta import tracking
        from nasmeta.evaluation.runs import check_task_runs, runs_from_meta

        self._runs = runs_from_meta(fold.test)
        check_task_runs(self._runs, fold.task_id)
        self._sources = tasks_with_runs(fold.train)
        tags = {"task": fold.task_id, "lodo_fold": fold.task_id, "method": ",".join(self.params.methods)}
        self._fold_stack = self._stack.enter_context(contextlib.ExitStack())
        self._fold_run = self._fold_stack.enter_context(
            tracking.child_run(self.parent, run_name=f"fold {fold.task_id}", tags=tags)
        )
        self._fold_run.log_params(
            {"sources": self._sources, "n_runs_held_out": len(self._runs), "seeds": self.params.seeds}
        )

    def method_start(self, fold: Any, name: str) -> None:
        from nasmeta import tracking

        tags = {"task": fold.task_id, "method": name, "lodo_fold": fold.task_id}
        assert self._fold_stack is not None
        self._method_stack = self._fold_stack.enter_context(contextlib.ExitStack())
        self._run = self._method_stack.enter_context(
            tracking.child_run(self._fold_run, run_name=f"{name} on {fold.task_id}", tags=tags)
        )
        method_params = self.params.method_params.get(name, {})
        if method_params:
            self._run.log_params(method_params)
        self.methods[name] = {"mlflow_run_id": self._run.run_id, "fit_seconds": None}

    def method_fitted(self, fold: Any, name: str, method: Any, fit_seconds: float) -> None:
        from nasmeta import tracking
        from nasmeta.transfer.base import TransferComponent

        # meta-training on the source tasks, not part of the search's hours
        self.methods[name]["fit_seconds"] = fit_seconds
        self._run.log_metrics({"fit_seconds": fit_seconds})
        policy = getattr(method, "policy", None)  # a policy chosen on the sources (lcranknet-tuned)
        if policy is not None:
            text = policy.markdown()
            self._run.log_text(text, "policy.md")
            self._run.log_params({"chosen_min_epochs": policy.chosen[0], "chosen_delta": policy.chosen[1]})
            if self.params.out:
                folder = Path(self.params.out) / "policies"
                folder.mkdir(parents=True, exist_ok=True)
                (folder / f"{name}_{fold.task_id}.md").write_text(text)
        if self.params.log_models and isinstance(method, TransferComponent):
            tracking.log_model(method, name=f"{name}-{fold.task_id}".replace(":", "-"), run=self._run)

    def result(self, fold: Any, name: str, seed: int, row: dict[str, Any]) -> None:
        if row["status"] == "completed":
            self._run.log_metrics({"regret": row["regret_val"], "hours": row["hours"]}, step=seed)

    def method_end(self, fold: Any, name: str, rows: list[dict[str, Any]]) -> None:
        done = [r for r in rows if r["status"] == "completed"]
        if done:
            mean_regret = sum(r["regret_val"] for r in done) / len(done)
            mean_hours = sum(r["hours"] for r in done) / len(done)
            self._run.log_metrics({"regret_mean": mean_regret, "hours_mean": mean_hours})
            self._fold_run.log_metrics({f"regret/{name}": mean_regret, f"hours/{name}": mean_hours})
        failed = [r for r in rows if r["status"] == "failed"]
        if failed:
            self._run.fail(f"{len(failed)} of {len(rows)} seed(s) failed: {failed[0]['error']}")
        assert self._method_stack is not None
        self._method_stack.close()
        self._method_stack, self._run = None, None

    def fold_end(self, fold: Any, rows: list[dict[str, Any]]) -> None:
        rows = self.with_run_columns(rows)
        done = [r for r in rows if r["status"] == "completed"]
        if self.params.write_searches and done:
            arch_of = {r.run_id: r.arch_id for r in self._runs}
            self.store.append("searches", search_rows(self.params, done, arch_of, self._sources))
        assert self._fold_stack is not None
        self._fold_stack.close()
        self._fold_stack, self._fold_run = None, None

    def with_run_columns(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Rows with ``fit_seconds`` and ``mlflow_run_id`` of this flow run's method runs (a row reused from an
        earlier run keeps what it had, or None)."""
        out = []
        for row in rows:
            info = self.methods.get(row["method"], {})
            out.append(
                {
                    **row,
                    "fit_seconds": info.get("fit_seconds", row.get("fit_seconds")),
                    "mlflow_run_id": info.get("mlflow_run_id", row.get("mlflow_run_id")),
                }
            )
        return out


@task(name="lodo-fold", task_run_name="fold {task_id}", cache_policy=NONE)
def lodo_fold(
    params: LodoParameters,
    task_id: str,
    parent: Any,
    sink: Any = None,
    done: list[dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """One held-out task through the LODO loop (``replay_lodo(..., tasks=[task_id])``): fit every method on the
    other tasks, replay each seed, log the fold's MLflow runs and write its ``searches`` rows (:class:`FoldTracking`);
    rows go to ``sink`` (a ``CsvRows``) as they finish; keys of ``done`` are reused.  A method that fails on this
    fold gives failed rows and a FAILED MLflow run, and the other methods go on.  Returns one row per (method,
    seed)."""
    from metadata_store.dataset import lowest_seed_view
    from nasmeta.evaluation.lodo import combine_hooks, replay_lodo

    store = open_store(params.store)
    spec = {name: params.method_params.get(name, {}) for name in params.methods}
    meta = lowest_seed_view(store.meta()) if params.lowest_seed else store.meta()
    with FoldTracking(params, parent, store) as tracked:
        rows = replay_lodo(
            meta,
            spec,
            seeds=params.seeds,
            n_runs=params.n_runs,
            tasks=[task_id],
            hooks=combine_hooks(tracked.hooks(), sink.hooks() if sink is not None else None),
            done=done,
            errors="record",
        ).to_dict("records")
        return tracked.with_run_columns(rows)


def _default_out() -> Path:
    from nasmeta.config import home

    return home() / "lodo" / datetime.now(UTC).strftime("%Y%m%dT%H%M%S")


@flow(name="lodo-evaluation", validate_parameters=False)
def lodo_evaluation(
    store: str | None = None,
    methods: list[str] | None = None,
    seeds: int | list[int] = 3,
    n_runs: int | None = None,
    tasks: list[str] | None = None,
    method_params: dict[str, dict[str, Any]] | None = None,
    out: str | None = None,
    experiment: str = "lodo",
    tracking_uri: str | None = None,
    write_searches: bool = True,
    log_models: bool = True,
    resume: str | None = None,
    lowest_seed: bool = False,
) -> Any:
    """Leave-one-dataset-out replay of early-termination ``methods`` over the store's tasks; returns the results
    DataFrame (one row per task, method, seed) and writes the tables and plot to ``out``.  ``out/lodo_runs.csv``
    is kept current as rows finish; ``resume`` (such a CSV from an interrupted run) reuses its finished rows."""
    import pandas as pd

    from nasmeta import tracking
    from nasmeta.evaluation.lodo import CsvRows, finished_rows, lodo_folds, read_rows
    from nasmeta.evaluation.tables import completed, write_results

    params = LodoParameters(
        store=store,
        methods=DEFAULT_METHODS if methods is None else methods,
        seeds=seeds,
        n_runs=n_runs,
        tasks=tasks,
        method_params=method_params or {},
        out=out,
        experiment=experiment,
        tracking_uri=tracking_uri,
        write_searches=write_searches,
        log_models=log_models,
        resume=resume,
        lowest_seed=lowest_seed,
    )
    meta = open_store(params.store).meta()
    # by default every task that has runs to replay; tasks of the store without completed runs are skipped
    task_ids = [fold.task_id for fold in lodo_folds(meta, params.tasks or tasks_with_runs(meta))]
    done = read_rows(params.resume) if params.resume else None
    uri = tracking.configure(params.tracking_uri) if params.tracking_uri else tracking.tracking_uri()
    out_dir = Path(params.out) if params.out else _default_out()
    # the reused rows stay in the streamed file, so a second interruption can resume from it again
    sink = CsvRows(out_dir / "lodo_runs.csv", [r for rows in finished_rows(done).values() for r in rows])
    run_params = {k: v for k, v in params.model_dump().items() if k not in ("tracking_uri",)}
    with tracking.parent_run(params.experiment, run_name="lodo-evaluation", params=run_params, uri=uri) as parent:
        parent.set_tags({"flow": "lodo_evaluation", "methods": ",".join(params.methods)})
        reused = {
            key
            for key, rows in finished_rows(done).items()
            if key[0] in task_ids and key[1] in params.methods and key[2] in params.seeds
        }
        total = len(task_ids) * len(params.methods) * len(params.seeds) - len(reused)
        with stage("lodo", total=total, unit="(task, method, seed) rows to compute") as shown:
            shown_sink = StageHooks(shown, sink)
            futures = [lodo_fold.submit(params, task_id, parent, shown_sink, done) for task_id in task_ids]
            results = pd.DataFrame([row for future in futures for row in future.result()])
        ok = completed(results)
        if len(ok) == 0:
            raise ValueError(f"every (task, method, seed) failed; the first: {results['error'].iloc[0]}")
        paths = write_results(results.drop(columns=["mlflow_run_id"]), out_dir, name="lodo")
        for path in paths.values():
            parent.log_artifact(path, "results")
        tracking.log_table("lodo_results", results, run=parent)
        means = ok.groupby(["method", "seed"])[["regret_val", "hours"]].mean().groupby("method").mean()
        for method, row in means.iterrows():
            parent.log_metrics({f"regret/{method}": row["regret_val"], f"hours/{method}": row["hours"]})
        n_failed = len(results) - len(ok)
        if n_failed:
            parent.set_tags({"failed_rows": str(n_failed)})
    return results
