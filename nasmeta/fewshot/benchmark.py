"""Few-shot evaluation of the meta-learners on meta-test episodes: MAML (4-conv), MAML on a fixed NB201 cell,
DARTS from scratch on each episode, and T-NAS; mean query accuracy with a 95 % interval over the episodes.

Every method sees the same meta-test episodes (``EpisodeSampler.episode(i)`` for i < episodes, seed fixed) and
the meta-learners the same meta-train episodes.  Accuracy per episode = share of correct query predictions.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field

from nasmeta.fewshot.episodes import EpisodeSampler, load_pools
from nasmeta.fewshot.maml import MAMLConfig, MetaLearner, mean_ci95
from nasmeta.fewshot.nets import ConvNet4, cell_network

METHODS = ("maml", "maml-cell", "darts", "tnas")
#: the best NAS-Bench-201 cell on CIFAR-10 (94.37 %): the fixed cell of the ``maml-cell`` baseline
FIXED_CELL = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"


class FewShotSetting(BaseModel):
    """One few-shot experiment; every size that decides its cost is here."""

    model_config = ConfigDict(frozen=True)

    data: Literal["omniglot", "mnist", "cifar10"] = "omniglot"
    ways: int = Field(5, ge=2)
    shots: int = Field(1, ge=1)
    queries: int = Field(5, ge=1)
    method: Literal["maml", "maml-cell", "darts", "tnas"] = "maml"
    episodes: int = Field(600, ge=1)
    iterations: int = Field(300, ge=0)
    meta_batch: int = Field(4, ge=1)
    image_size: int = Field(16, ge=4)
    filters: int = Field(32, ge=1)  # 4-conv width
    C: int = Field(8, ge=1)  # cell networks / supernet channels
    cells: int = Field(1, ge=1)
    space: Literal["nb201", "darts"] = "nb201"
    maml_lr: float = Field(0.4, gt=0)
    cell_lr: float = Field(0.1, gt=0)
    alpha_lr: float = Field(30.0, gt=0)
    train_steps: int = Field(1, ge=1)
    test_steps: int = Field(3, ge=1)
    first_order: bool = False
    fixed_cell: str = FIXED_CELL
    seed: int = 0


def _progress(log: Callable[[str], None], accs: list[float], total: int, every: int = 100) -> None:
    if len(accs) % every == 0 and len(accs) < total:
        mean, half = mean_ci95(accs)
        log(f"  after {len(accs)} episodes: {100 * mean:.2f} +- {100 * half:.2f} %")


def tnas_config(s: FewShotSetting, in_channels: int) -> Any:
    from nasmeta.transfer.tnas import TNASConfig

    return TNASConfig(
        space=s.space,
        ways=s.ways,
        shots=s.shots,
        queries=s.queries,
        input_shape=(in_channels, s.image_size, s.image_size),
        C=s.C,
        cells=s.cells,
        w_lr=s.cell_lr,
        alpha_lr=s.alpha_lr,
        inner_steps=s.train_steps,
        test_steps=s.test_steps,
        meta_batch=s.meta_batch,
        first_order=True,
        iterations=s.iterations,
    )


def run_setting(
    s: FewShotSetting,
    log: Callable[[str], None] = print,
    save_dir: str | None = None,
    retrain_cells: int = 0,
) -> dict[str, Any]:
    """Meta-train (if the method learns), evaluate on ``s.episodes`` meta-test episodes; returns a JSON-able dict.

    ``retrain_cells`` (T-NAS only): for the first n meta-test episodes, re-meta-train the decoded cell with MAML
    on the meta-train pool (T-NAS++) and report its accuracy on that episode and over all episodes.
    """
    torch.manual_seed(s.seed)
    train_pool, test_pool = load_pools(s.data, image_size=s.image_size, seed=s.seed)
    train = EpisodeSampler(train_pool, s.ways, s.shots, s.queries, seed=s.seed)
    test = EpisodeSampler(test_pool, s.ways, s.shots, s.queries, seed=s.seed + 1)
    channels = train_pool.image_shape[0]
    shape = (channels, s.image_size, s.image_size)
    out: dict[str, Any] = {
        "setting": s.model_dump(),
        "meta_train_classes": train_pool.num_classes,
        "meta_test_classes": test_pool.num_classes,
    }
    overlap = set(train_pool.names) & set(test_pool.names)
    if overlap:
        raise ValueError(f"meta-train and meta-test pools share classes: {sorted(overlap)[:5]}")

    def log_fn(r: dict[str, float]) -> None:
        log(f"  it {r['iteration']:5d} query loss {r['query_loss']:.3f} acc {r['query_acc']:.3f} {r['seconds']:.0f}s")

    accs: list[float] = []
    seconds: list[float] = []
    extra_accs: list[float] = []
    cells: collections.Counter[str] = collections.Counter()
    decoded: list[str] = []
    t0 = time.perf_counter()
    if s.method in ("maml", "maml-cell"):
        if s.method == "maml":
            model = ConvNet4(channels, s.ways, s.filters, s.image_size)
            lr = s.maml_lr
        else:
            model = cell_network(s.fixed_cell, s.ways, shape, C=s.C, N=s.cells)
            lr = s.cell_lr
        learner = MetaLearner(
            model,
            MAMLConfig(
                inner_lr=lr,
                inner_steps=s.train_steps,
                test_steps=s.test_steps,
                meta_batch=s.meta_batch,
                first_order=s.first_order,
                iterations=s.iterations,
            ),
        )
        learner.meta_train(train, s.iterations, seed=s.seed, log=log_fn)
        out["meta_train_seconds"] = time.perf_counter() - t0
        for i in range(s.episodes):
            ep = test.episode(i)
            start = time.perf_counter()
            accs.append(learner.evaluate(ep))
            seconds.append(time.perf_counter() - start)
            _progress(log, accs, s.episodes)
    else:
        from nasmeta.transfer.tnas import TNAS, darts_from_scratch

        cfg = tnas_config(s, channels)
        tnas = None
        if s.method == "tnas":
            tnas = TNAS(cfg, seed=s.seed).fit(train, log=log_fn)
            out["meta_train_seconds"] = time.perf_counter() - t0
            if save_dir:
                tnas.save(save_dir)
        for i in range(s.episodes):
            ep = test.episode(i)
            res = tnas.adapt_task(ep) if tnas is not None else darts_from_scratch(cfg, ep, seed=s.seed * 100003 + i)
            accs.append(float(res.cell_acc))  # type: ignore[arg-type]
            extra_accs.append(float(res.supernet_acc))  # type: ignore[arg-type]
            seconds.append(res.seconds)
            cells[str(res.arch)] += 1
            _progress(log, accs, s.episodes)
            if i < max(2, retrain_cells):
                decoded.append(str(res.arch))
        out["supernet_acc"] = mean_ci95(extra_accs)
        out["distinct_cells"] = len(cells)
        out["top_cells"] = cells.most_common(5)
        out["decoded_first_episodes"] = [
            {"episode": i, "classes": list(test.episode(i).classes[:3]), "cell": c} for i, c in enumerate(decoded)
        ]
        if s.method == "tnas" and retrain_cells:
            out["retrained"] = []
            for i, cell in enumerate(decoded[:retrain_cells]):
                log(f"T-NAS++: re-meta-training the cell decoded for episode {i}: {cell}")
                net = cell_network(cell, s.ways, shape, C=s.C, N=s.cells)
                learner = MetaLearner(
                    net,
                    MAMLConfig(
                        inner_lr=s.cell_lr,
                        inner_steps=s.train_steps,
                        test_steps=s.test_steps,
                        meta_batch=s.meta_batch,
                        first_order=s.first_order,
                        iterations=s.iterations,
                    ),
                )
                r0 = time.perf_counter()
                learner.meta_train(train, s.iterations, seed=s.seed, log=log_fn)
                all_accs = [learner.evaluate(test.episode(j)) for j in range(s.episodes)]
                out["retrained"].append(
                    {
                        "episode": i,
                        "cell": cell,
                        "task_acc": all_accs[i],
                        "tnas_task_acc": accs[i],
                        "all_episodes": mean_ci95(all_accs),
                        "seconds": time.perf_counter() - r0,
                    }
                )
    mean, half = mean_ci95(accs)
    out.update(
        {
            "acc": mean,
            "ci95": half,
            "n_episodes": len(accs),
            "seconds_per_task": float(sum(seconds) / len(seconds)),
            "total_seconds": time.perf_counter() - t0,
        }
    )
    return out
