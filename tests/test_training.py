"""The trainer, the training evaluator and the cost measures: accuracy reached, curves, hooks, failure paths."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torchvision.transforms.v2 import functional as TF

from nasmeta.cost import count_flops, count_macs, count_params, measure_latency
from nasmeta.data.tasks import get_task
from nasmeta.reporting import ListReporter
from nasmeta.spaces import get_space
from nasmeta.training import TrainConfig, TrainingEvaluator, random_crop_flip, train

GOOD_CELL = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
FAST = TrainConfig(epochs=1, batch_size=64, lr=0.05, device="cpu", num_threads=1)


def small_cnn(channels: int = 1, num_classes: int = 10) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(channels, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(32, num_classes),
    )


def nb201_net(num_classes: int, input_shape: tuple[int, int, int]) -> nn.Module:
    space = get_space("nb201")
    torch.manual_seed(0)
    return space.build(space.parse(GOOD_CELL), num_classes, input_shape, C=8, N=1)


def check_curve(curve: list[dict], epochs: int) -> None:
    assert [row["epoch"] for row in curve] == list(range(1, epochs + 1))
    assert set(curve[0]) == {"epoch", "train_loss", "val_loss", "val_acc", "test_acc", "seconds"}
    seconds = [row["seconds"] for row in curve]
    assert all(b > a for a, b in zip(seconds, seconds[1:], strict=False)) and seconds[0] > 0


def test_nb201_cell_learns_digits() -> None:
    data = get_task("digits").load()
    model = nb201_net(10, data.input_shape)
    reporter = ListReporter()
    config = TrainConfig(epochs=5, batch_size=32, lr=0.05, device="cpu", num_threads=1)
    result = train(model, data, config, reporter=reporter)
    assert result.status == "completed" and result.error is None
    assert result.final_test_acc >= 90.0, result.curve
    check_curve(result.curve, 5)
    assert [row["step"] for row in reporter.rows] == [1, 2, 3, 4, 5]
    assert reporter.rows[-1]["val_acc"] == result.final_val_acc
    assert result.curve[-1]["train_loss"] < result.curve[0]["train_loss"]
    assert result.n_params == count_params(model) and result.flops == count_flops(model, (1, 8, 8)) > 0
    assert result.device == "cpu" and result.epochs_done == 5
    assert result.config_hash == config.config_hash()


def test_nb201_cell_learns_mnist(data_dir) -> None:
    data = get_task("mnist").small(200, test_per_class=100).load()
    assert len(data.x_train) == 1600 and len(data.x_test) == 1000
    model = nb201_net(10, data.input_shape)
    config = TrainConfig(epochs=4, batch_size=32, lr=0.05, device="cpu", num_threads=1)
    result = train(model, data, config)
    assert result.status == "completed"
    assert result.final_test_acc >= 95.0, result.curve
    check_curve(result.curve, 4)


def test_same_seed_same_run_and_threads_restored() -> None:
    data = get_task("digits").load()
    threads = torch.get_num_threads()
    runs = []
    for _ in range(2):
        torch.manual_seed(1)
        runs.append(train(small_cnn(), data, FAST.with_(epochs=2, augment=True)))
    assert torch.get_num_threads() == threads
    strip = [[{k: v for k, v in row.items() if k != "seconds"} for row in r.curve] for r in runs]
    assert strip[0] == strip[1]
    torch.manual_seed(1)
    other = train(small_cnn(), data, FAST.with_(epochs=2, augment=True, seed=5))
    assert other.curve[-1]["train_loss"] != runs[0].curve[-1]["train_loss"]


def test_diverging_run_is_reported_failed_not_raised() -> None:
    data = get_task("digits").load()
    torch.manual_seed(0)
    result = train(small_cnn(), data, FAST.with_(epochs=3, lr=1e4))
    assert result.status == "failed" and result.epochs_done == 0 and math.isnan(result.final_val_acc)
    assert re_match(r"training loss is nan at epoch 1 \(diverged; lr=10000\)", result.error), result.error
    # without momentum the loss stays finite (about 1e34) but far above ln(10): diverged all the same
    torch.manual_seed(0)
    result = train(small_cnn(), data, FAST.with_(epochs=3, lr=1e4, momentum=0.0, weight_decay=0.0))
    assert result.status == "failed"
    assert re_match(r"above the divergence limit 230.3 = 100 x ln\(10\) \(lr=10000\)", result.error), result.error


def re_match(pattern: str, text: str | None) -> bool:
    import re

    return text is not None and re.search(pattern, text) is not None


def test_a_session_stops_and_a_paused_run_resumes_exactly() -> None:
    from nasmeta.training import TrainingSession

    data = get_task("digits").load()
    config = FAST.with_(epochs=4)
    torch.manual_seed(0)
    session = TrainingSession(small_cnn(), data, config)
    assert len(session.advance(2)) == 2 and session.advance(2) == []
    stopped = session.result(stopped=True)
    assert stopped.status == "stopped" and stopped.epochs_done == 2
    assert stopped.final_val_acc == stopped.curve[-1]["val_acc"]

    torch.manual_seed(0)
    whole = train(small_cnn(), data, config)
    assert whole.status == "completed" and whole.epochs_done == 4
    # paused after one epoch while another run trains (and draws global random numbers), then resumed
    torch.manual_seed(0)
    paused = TrainingSession(small_cnn(), data, config)
    paused.advance(1)
    torch.manual_seed(123)
    train(small_cnn(), data, FAST)
    torch.rand(1000)
    paused.advance(4)
    resumed = paused.result()
    assert resumed.status == "completed"
    for a, b in zip(resumed.curve, whole.curve, strict=True):
        assert a["val_acc"] == b["val_acc"] and a["train_loss"] == b["train_loss"]
    # a run short of its epochs that was never asked to stop (a paused run never promoted) is stopped too
    assert TrainingSession(small_cnn(), data, config).result().status == "stopped"


class AuxNet(nn.Module):
    """Mimics a DARTS evaluation network: auxiliary logits in training mode, a drop-path probability."""

    def __init__(self) -> None:
        super().__init__()
        self.body = small_cnn()
        self.aux_head = nn.Linear(64, 10)
        self.auxiliary_weight = 0.4
        self.drop_path_prob = 0.0
        self.last_aux_logits = None
        self.seen_drop_path: list[float] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.seen_drop_path.append(self.drop_path_prob)
        self.last_aux_logits = self.aux_head(x.flatten(1)) if self.training else None
        return self.body(x)


def test_auxiliary_loss_and_drop_path_schedule() -> None:
    data = get_task("digits").load()
    torch.manual_seed(0)
    model = AuxNet()
    before = model.aux_head.weight.detach().clone()
    train(model, data, FAST.with_(epochs=3, weight_decay=0.0, drop_path_prob=0.3))
    # the auxiliary head only gets gradients through the auxiliary loss
    assert not torch.equal(model.aux_head.weight, before)
    assert sorted(set(model.seen_drop_path)) == pytest.approx([0.0, 0.1, 0.2])


def test_random_crop_flip_equals_torchvision_per_image() -> None:
    x = torch.randn(6, 3, 8, 8)
    fill = torch.tensor([-1.0, 0.5, 2.0])
    out = random_crop_flip(x, 2, True, torch.Generator().manual_seed(3), fill)
    gen = torch.Generator().manual_seed(3)
    top = torch.randint(0, 5, (6,), generator=gen)
    left = torch.randint(0, 5, (6,), generator=gen)
    flip = torch.rand(6, generator=gen) < 0.5
    assert flip.any() and not flip.all()
    for i in range(6):
        padded = torch.stack([TF.pad(x[i, c : c + 1], [2], fill=float(fill[c]))[0] for c in range(3)])
        expected = TF.crop(padded, int(top[i]), int(left[i]), 8, 8)
        if flip[i]:
            expected = TF.horizontal_flip(expected)
        assert torch.equal(out[i], expected)


def test_config_hash_covers_the_recipe_only() -> None:
    config = TrainConfig()
    assert config.config_hash() == TrainConfig(seed=7, device="cpu", num_threads=2).config_hash()
    assert config.config_hash() != config.with_(lr=0.05).config_hash()
    assert len(config.config_hash()) == 12
    with pytest.raises(ValueError):
        TrainConfig(optimizer="rmsprop")
    with pytest.raises(ValueError):
        TrainConfig(epochs=0)


def test_training_evaluator_trains_and_returns_failures() -> None:
    space = get_space("nb201")
    arch = space.parse(GOOD_CELL)
    reporter = ListReporter()
    config = FAST.with_(epochs=5, batch_size=16)
    evaluator = TrainingEvaluator(space, "digits-3v8", config, reporter=reporter, C=4, N=1)
    assert evaluator.max_epochs == 5
    evaluation = evaluator.evaluate(arch, epochs=3, seed=0)
    assert evaluation.status == "completed" and evaluation.epochs == 3 and len(evaluation.curve) == 3
    assert evaluation.val_acc == evaluation.curve[-1]["val_acc"] > 80.0
    assert evaluation.cost_seconds > 0 and evaluation.extra["n_params"] > 0 and len(reporter.rows) == 3
    again = evaluator.evaluate(arch, epochs=3, seed=0)
    assert again.val_acc == evaluation.val_acc  # the seed fixes initialisation and order

    diverging = TrainingEvaluator("nb201", "digits-3v8", FAST.with_(lr=1e4, momentum=0.0), C=4, N=1)
    failed = diverging.evaluate(arch)
    assert failed.status == "failed" and "loss is" in failed.error and failed.val_acc == 0.0

    broken = TrainingEvaluator("nb201", "digits-3v8", FAST, C=4, N=1, no_such_size=3)
    failed = broken.evaluate(arch)
    assert failed.status == "failed" and "no_such_size" in failed.error


def test_cost_measures() -> None:
    conv = nn.Conv2d(3, 8, 3, padding=1, bias=False)
    assert count_params(conv) == 8 * 3 * 9
    assert count_macs(conv, (3, 8, 8)) == 8 * 8 * 8 * 3 * 9
    assert count_flops(conv, (3, 8, 8)) == 2 * count_macs(conv, (3, 8, 8))
    frozen = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2))
    frozen[0].requires_grad_(False)
    assert count_params(frozen, trainable_only=True) == 10 and count_params(frozen) == 30
    latency = measure_latency(conv, (3, 8, 8), batch_sizes=(1, 4), repeats=3, warmup=1)
    assert set(latency) == {"latency_b1", "latency_b4"} and all(0 < v < 1 for v in latency.values())
    assert conv.training  # mode restored
    with pytest.raises(ValueError, match="input_shape"):
        count_flops(conv, (8, 8))
    assert math.isfinite(latency["latency_b1"])
