"""Images per second of ``nasmeta.training.train`` against a bare PyTorch loop, measured alternately in one run.

Both sides train the same network (a reduced NB201 cell network, same initial weights) on the same task tensors
with the same batch size, optimiser (SGD, Nesterov momentum, weight decay), thread count and device, and both
evaluate the validation and test splits after every epoch (batch 1024) — evaluation is included in both times.
The trainer is timed around the whole ``train()`` call (seeding, FLOP count, learning-rate schedule, loss
tracking, NaN check, curve and reporter included); the bare loop is: permutation, slice, forward, loss, backward,
step.  After one untimed warm-up run of each side, rounds alternate which side runs first; the ratio is the
median over rounds of (trainer images/s) / (bare images/s).

Clocks: on CPU the ratio uses process CPU time (``time.process_time``), because on a shared machine wall time
mostly measures the neighbours; wall-time ratios are printed too.  On CUDA it uses wall time.
Last line: ``ratio=<trainer/bare>`` (target >= 0.95).

Run: ``NASMETA_DATA_DIR=../shared/data python benchmarks/trainer_throughput.py --task mnist --per-class 200``
(default: ``digits``, always present).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
from torch import nn

from nasmeta.data.tasks import get_task
from nasmeta.data.types import TaskData
from nasmeta.spaces import get_space
from nasmeta.training import TrainConfig, resolve_device, train

ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"


def bare_loop(model: nn.Module, task: TaskData, config: TrainConfig, device: torch.device) -> None:
    """The reference: a plain loop over shuffled index slices."""
    torch.manual_seed(config.seed)
    model.to(device)
    x, y = task.x_train.to(device), task.y_train.to(device)
    evals = [(task.x_val.to(device), task.y_val.to(device)), (task.x_test.to(device), task.y_test.to(device))]
    opt = torch.optim.SGD(
        model.parameters(), lr=config.lr, momentum=config.momentum, nesterov=True, weight_decay=config.weight_decay
    )
    for _ in range(config.epochs):
        model.train()
        for idx in torch.randperm(len(x)).to(device).split(config.batch_size):
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            for xe, ye in evals:
                correct = 0
                for i in range(0, len(xe), 1024):
                    correct += (model(xe[i : i + 1024]).argmax(1) == ye[i : i + 1024]).sum().item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="digits")
    parser.add_argument("--per-class", type=int, default=None, help="samples per class (small version of the task)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--C", type=int, default=8)
    parser.add_argument("--N", type=int, default=1)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    args = parser.parse_args()

    spec = get_task(args.task)
    if args.per_class:
        spec = spec.small(args.per_class, test_per_class=args.per_class // 2)
    task = spec.load()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    space = get_space("nb201")
    torch.manual_seed(0)
    initial = space.build(space.parse(ARCH), task.num_classes, task.input_shape, C=args.C, N=args.N)
    config = TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=0.05,
        schedule="cosine",
        device=args.device,
        num_threads=args.threads,
    )
    images = len(task.x_train) * args.epochs
    print(
        f"task={spec.name} train={len(task.x_train)} input={task.input_shape} epochs={args.epochs} "
        f"batch={args.batch_size} threads={args.threads} device={device}"
    )
    # one untimed run of each side first (lazy imports, allocator and oneDNN warm-up)
    bare_loop(copy.deepcopy(initial), task, config.with_(epochs=1), device)
    train(copy.deepcopy(initial), task, config.with_(epochs=1))
    use_cpu_clock = device.type == "cpu"
    ratios, wall_ratios = [], []
    for r in range(args.rounds):
        order = ("trainer", "bare") if r % 2 == 0 else ("bare", "trainer")
        cpu, wall = {}, {}
        for side in order:
            model = copy.deepcopy(initial)
            if device.type == "cuda":
                torch.cuda.synchronize()
            start_wall, start_cpu = time.perf_counter(), time.process_time()
            if side == "bare":
                bare_loop(model, task, config, device)
            else:
                result = train(model, task, config)
                if result.status != "completed":
                    raise SystemExit(f"trainer run {result.status}: {result.error}")
            if device.type == "cuda":
                torch.cuda.synchronize()
            wall[side], cpu[side] = time.perf_counter() - start_wall, time.process_time() - start_cpu
        clock = cpu if use_cpu_clock else wall
        ratios.append(clock["bare"] / clock["trainer"])
        wall_ratios.append(wall["bare"] / wall["trainer"])
        print(
            f"round {r + 1}: img/s cpu-clock trainer {images / cpu['trainer']:8.1f} bare {images / cpu['bare']:8.1f} | "
            f"wall trainer {images / wall['trainer']:8.1f} bare {images / wall['bare']:8.1f} | "
            f"ratio {ratios[-1]:.3f} (wall {wall_ratios[-1]:.3f}, first: {order[0]})"
        )
    print(f"clock={'process cpu time' if use_cpu_clock else 'wall'} wall_ratio={statistics.median(wall_ratios):.3f}")
    print(f"ratio={statistics.median(ratios):.3f}")


if __name__ == "__main__":
    main()
