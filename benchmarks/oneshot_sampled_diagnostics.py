"""Why do sampled one-shot methods (GDAS, ProxylessNAS) pick parameter-free NB201 cells at the short budget?

Two diagnostics on a supernet trained by a method's own search (the budget of ``oneshot_nb201_methods.py``):

1. *Fixed cells through the shared weights*: the arch-validation loss / accuracy of single-path cells (all-skip,
   all-avg-pool, all-conv3x3, all-conv1x1, the best NB201 cell, the found cell, random cells) run through the
   trained supernet (BN batch statistics, as the search sees them), beside their 200-epoch table accuracy.  If
   conv cells have the lower supernet loss while alpha moved to skip / pool, the architecture gradient does not
   follow the supernet's own loss.
2. *Gradient direction*: at the final alphas, the exact gradient of the objective the method descends,
   ``E_{path ~ softmax(alpha)} L_val(path)``, estimated per edge from conditional means
   ``dE/dalpha_{e,i} = p_{e,i} (E[L | op_e = i] - E[L])`` (common random paths for the other edges), beside the
   mean of the method's own stochastic architecture gradient over as many samples on the same data.  Cosine
   similarity and the per-edge argmin show whether the method's estimate points where E[L] decreases.
3. *Probes* (``--probe gdas proxyless``): from uniform alphas on the trained weights (kept fixed), only the
   method's architecture steps; does the op ranking of softmax(alpha) follow ``-E[L | op]`` (Spearman per edge)?
   With ``--method ops-only --train-ops nor_conv_1x1 nor_conv_3x3`` (a control, no search: weights trained on
   conv paths only) this shows whether the arch steps find convs when the supernet does favour them.

    PYTHONPATH=. NASMETA_DATA_DIR=../shared/data python benchmarks/oneshot_sampled_diagnostics.py --method gdas
    ... --method ops-only --grad-samples 10 --probe gdas proxyless

Results and the verdict for issue 16: ``benchmarks/results/issue16/README.md``.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np
import torch
from scipy.stats import spearmanr
from torch.nn import functional as F


def _ops_only_strategy(ops: list[str]):  # noqa: ANN202
    """A control that is no search method: weight steps on single paths drawn uniformly from ``ops`` on every edge,
    no architecture steps (so only those ops' weights are trained)."""
    from nasmeta.oneshot.loop import AlphaStrategy
    from nasmeta.spaces.nb201 import OPS

    allowed = [OPS.index(op) for op in ops]

    class OpsOnly(AlphaStrategy):
        name = "ops-only"

        def arch_step(self, train_batch, val_batch, lr):  # noqa: ANN001, ANN202
            return None

        def weight_path(self):  # noqa: ANN202
            return {"cell": tuple(int(self.rng.choice(allowed)) for _ in range(6))}

        def eval_path(self):  # noqa: ANN202
            return self.weight_path()

        def end_epoch(self, epoch):  # noqa: ANN001, ANN202
            return {}

        def state(self):  # noqa: ANN202
            return {"ops": ops}

    return OpsOnly


def _search(args: argparse.Namespace, task: Any, size: dict[str, int], method_kwargs: dict[str, Any]):  # noqa: ANN202
    from nasmeta.oneshot import build_supernet
    from nasmeta.oneshot.api import strategy_names
    from nasmeta.oneshot.loop import SearchData, run_search, strategy_class

    strategy_names()
    torch.manual_seed(args.seed)
    supernet = build_supernet("nb201", task.num_classes, task.input_shape, **size)
    data = SearchData.from_task(task, args.seed)
    if args.method == "ops-only":
        cls = _ops_only_strategy(args.train_ops)
    else:
        cls = strategy_class(args.method)
    strategy = cls(supernet, data, args.batch_size, args.seed, **method_kwargs)
    trace, seconds = run_search(strategy, args.epochs)
    return supernet, data, strategy, trace, seconds


def fixed_cells(supernet, data, table, found) -> list[dict[str, Any]]:  # noqa: ANN001
    from nasmeta.oneshot.loop import evaluate_architecture
    from nasmeta.spaces.nb201 import OPS

    space = supernet.space
    named = {f"all-{op}": [op] * 6 for op in OPS[1:]}
    named["best-nb201"] = ["nor_conv_3x3", "nor_conv_3x3", "nor_conv_3x3", "skip_connect", "nor_conv_3x3",
                           "nor_conv_3x3"]  # fmt: skip
    named["resnet-like"] = ["nor_conv_3x3", "none", "nor_conv_3x3", "skip_connect", "none", "none"]
    rows = []
    archs = [(k, space.from_encoding(v)) for k, v in named.items()] + [("found", found)]
    rng = np.random.default_rng(123)
    archs += [(f"random{i}", space.sample(rng)) for i in range(6)]
    for label, arch in archs:
        loss, acc = evaluate_architecture(supernet, arch, data.x_val, data.y_val)
        rows.append({"cell": label, "arch": str(arch), "val_loss": loss, "val_acc": acc,
                     "table_acc": table.evaluate(arch).test_acc})  # fmt: skip
    return rows


def _loss(supernet, x, y, path) -> float:  # noqa: ANN001
    with torch.no_grad():
        return float(F.cross_entropy(supernet(x, path), y))


def expected_loss_gradient(supernet, x, y, samples: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:  # noqa: ANN001
    """``dE[L]/dalpha`` (edges, ops) by conditional means, and the conditional means ``E[L | op_e = i]``."""
    p = supernet.op_weights()["cell"].detach().double().numpy()
    n_edges, n_ops = p.shape
    cond = np.zeros((n_edges, n_ops))
    for _ in range(samples):
        base = [int(rng.choice(n_ops, p=row / row.sum())) for row in p]
        for e in range(n_edges):
            for i in range(n_ops):
                path = list(base)
                path[e] = i
                cond[e, i] += _loss(supernet, x, y, {"cell": tuple(path)})
    cond /= samples
    mean = (p * cond).sum(axis=1, keepdims=True)  # E[L] per edge (same value up to noise)
    return p * (cond - mean), cond


def method_gradient(strategy, x, y, samples: int) -> np.ndarray:  # noqa: ANN001
    """Mean over ``samples`` of the strategy's own architecture gradient on (x, y) (no optimiser step)."""
    from nasmeta.oneshot.loop import arch_gradients

    alpha = strategy.supernet.alphas()["cell"]
    total = torch.zeros_like(alpha, dtype=torch.float64)
    for _ in range(samples):
        if strategy.name == "gdas":
            choices = strategy.sample()
        else:
            choices = strategy.sample_gates(with_grad=True)
        loss = F.cross_entropy(strategy.supernet(x, choices), y)
        (g,) = arch_gradients(loss, [alpha])
        total += g.double()
    return (total / samples).numpy()


def probe(supernet, data, method: str, steps: int, lr: float, seed: int, batch_size: int) -> np.ndarray:  # noqa: ANN001
    """Architecture steps only (the supernet's weights stay as they are), from uniform alphas: softmax(alpha) after
    ``steps`` steps of ``method`` (GDAS at tau 1) on random arch-validation batches."""
    from nasmeta.oneshot.loop import strategy_class

    with torch.no_grad():
        for a in supernet.alphas().values():
            a.zero_()
    kwargs: dict[str, Any] = {"arch_lr": lr}
    if method == "proxyless":
        kwargs.update(warmup_epochs=0, arch_every=1)
    strategy = strategy_class(method)(supernet, data, batch_size, seed, **kwargs)
    strategy.begin_epoch(1, 1)
    if method == "gdas":
        strategy.tau = 1.0
    supernet.train()
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        index = torch.randint(0, len(data.x_val), (batch_size,), generator=gen)
        strategy.arch_step((data.x_val[index], data.y_val[index]), (data.x_val[index], data.y_val[index]), 0.0)
    return supernet.op_weights()["cell"].detach().numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--method", choices=["gdas", "proxyless", "darts", "ops-only"], default="gdas")
    parser.add_argument("--train-ops", nargs="+", default=["nor_conv_1x1", "nor_conv_3x3"],
                        help="ops-only control: the ops whose single paths train the weights")  # fmt: skip
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--samples-per-class", type=int, default=160)
    parser.add_argument("--resolution", type=int, default=16)
    parser.add_argument("--C", type=int, default=8, help="supernet width")
    parser.add_argument("--N", type=int, default=1, help="supernet cells per stage")
    parser.add_argument("--grad-samples", type=int, default=20)
    parser.add_argument("--grad-images", type=int, default=256)
    parser.add_argument("--kwargs", default="{}", help="method settings as JSON")
    parser.add_argument("--out", default=None)
    parser.add_argument("--probe", nargs="*", default=[], choices=["gdas", "proxyless"],
                        help="after the search: these methods' arch steps alone on the trained weights")  # fmt: skip
    parser.add_argument("--probe-steps", type=int, default=300)
    parser.add_argument("--probe-lr", type=float, default=3e-3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    from nasmeta.data.benchmarks import TabularEvaluator
    from nasmeta.data.tasks import get_task
    from nasmeta.spaces.nb201 import OPS

    task = get_task("cifar10").with_(samples_per_class=args.samples_per_class, test_per_class=10)
    task = task.with_(resolution=args.resolution).load()
    size = {"C": args.C, "N": args.N}
    kwargs = json.loads(args.kwargs)
    if args.method == "proxyless":
        kwargs.setdefault("arch_every", 1)
    start = time.perf_counter()
    supernet, data, strategy, trace, seconds = _search(args, task, size, kwargs)
    table = TabularEvaluator("nb201", "cifar10", 200, val_at_200="test")
    found = supernet.derive()
    print(f"{args.method} seed {args.seed} {kwargs}: searched {seconds:.0f} s; found {found} -> "
          f"{table.evaluate(found).test_acc:.2f} %", flush=True)  # fmt: skip
    w = supernet.op_weights()["cell"].detach().numpy()
    print("softmax(alpha) per edge (" + " ".join(OPS) + "):")
    for e, row in enumerate(w):
        print(f"  edge {e}: " + " ".join(f"{v:.3f}" for v in row))
    print(f"\nfixed cells through the trained supernet ({len(data.x_val)} arch-val images, BN batch statistics):")
    cells = fixed_cells(supernet, data, table, found)
    for r in sorted(cells, key=lambda r: r["val_loss"]):
        print(f"  {r['cell']:<22} val loss {r['val_loss']:.3f} acc {r['val_acc']:5.1f} %   table {r['table_acc']:.2f} "
              f" {r['arch']}")  # fmt: skip
    tail = {k: v for k, v in trace[-1].items() if isinstance(v, float | int | str)}
    out: dict[str, Any] = {"args": vars(args), "found": str(found), "alphas_softmax": w.tolist(), "cells": cells,
                           "trace_tail": tail}  # fmt: skip
    if args.grad_samples > 0 and args.method in ("gdas", "proxyless"):
        x, y = data.x_val[: args.grad_images], data.y_val[: args.grad_images]
        supernet.train()
        rng = np.random.default_rng(args.seed + 1000)
        true, cond = expected_loss_gradient(supernet, x, y, args.grad_samples, rng)
        taus = [strategy.config.tau_max, 1.0, strategy.config.tau_min] if args.method == "gdas" else [None]
        print(f"\nE[L | op_e = i] on {len(x)} val images ({args.grad_samples} common samples of the other edges):")
        for e, row in enumerate(cond):
            print(f"  edge {e}: " + " ".join(f"{v:.4f}" for v in row) + f"   argmin {OPS[int(row.argmin())]}")
        grads = {}
        for tau in taus:
            if tau is not None:
                strategy.tau = tau
            est = method_gradient(strategy, x, y, args.grad_samples * 30)
            cos = float((est * true).sum() / (np.linalg.norm(est) * np.linalg.norm(true) + 1e-30))
            grads[str(tau)] = {"method": est.tolist(), "cosine": cos}
            print(f"\n{args.method} mean arch gradient (tau={tau}, {args.grad_samples * 30} samples) vs dE[L]/dalpha: "
                  f"cosine {cos:+.3f}")  # fmt: skip
            for e in range(len(est)):
                print(f"  edge {e}: method " + " ".join(f"{v:+.2e}" for v in est[e]) + "  | exact "
                      + " ".join(f"{v:+.2e}" for v in true[e]))  # fmt: skip
        out.update({"cond_loss": cond.tolist(), "expected_grad": true.tolist(), "method_grad": grads})
    if args.probe:
        x, y = data.x_val[: args.grad_images], data.y_val[: args.grad_images]
        with torch.no_grad():
            for a in supernet.alphas().values():
                a.zero_()
        supernet.train()
        _, cond = expected_loss_gradient(supernet, x, y, args.grad_samples, np.random.default_rng(args.seed + 2000))
        print(f"\nprobe: uniform alphas on the trained weights; E[L | op_e = i] on {len(x)} val images:")
        for e, row in enumerate(cond):
            print(f"  edge {e}: " + " ".join(f"{v:.4f}" for v in row) + f"   argmin {OPS[int(row.argmin())]}")
        out["probe_cond_loss"] = cond.tolist()
        state = {k: v.clone() for k, v in supernet.state_dict().items()}
        for method in args.probe:
            supernet.load_state_dict(state)
            w_probe = probe(supernet, data, method, args.probe_steps, args.probe_lr, args.seed, args.batch_size)
            agree = int(sum(int(w_probe[e].argmax()) == int(cond[e].argmin()) for e in range(len(cond))))
            # per edge: does the op ranking of softmax(alpha) follow -E[L | op]?  (Spearman, 5 ops; mean over edges)
            rho = float(np.mean([spearmanr(w_probe[e], -cond[e])[0] for e in range(len(cond))]))
            arch = supernet.derive({"cell": torch.as_tensor(w_probe)})
            acc = table.evaluate(arch).test_acc
            print(f"  {method} arch steps only ({args.probe_steps} at lr {args.probe_lr}): argmax softmax(alpha) = "
                  f"argmin E[L|op] on {agree}/6 edges, mean Spearman(softmax(alpha), -E[L|op]) {rho:+.2f}; "
                  f"derived {arch} -> {acc:.2f} %")  # fmt: skip
            for e, row in enumerate(w_probe):
                print(f"    edge {e}: " + " ".join(f"{v:.3f}" for v in row))
            out[f"probe_{method}"] = {"weights": w_probe.tolist(), "agree": agree, "spearman": rho, "arch": str(arch)}
    print(f"\ntotal {time.perf_counter() - start:.0f} s")
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(out, fh, indent=1)


if __name__ == "__main__":
    main()
