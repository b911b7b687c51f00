"""Zero-shot proxies: exact values on networks small enough to compute them by hand, the registry contract,
isolation (fresh copy, seeded), and "not applicable" on a network without ReLU or BatchNorm."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nasmeta.zeroshot.batch import Batch
from nasmeta.zeroshot.registry import ProxyNotApplicable, compute_proxy, get_proxy, list_proxies, proxy

ALL = {
    "synflow",
    "snip",
    "grad_norm",
    "grasp",
    "fisher",
    "jacob_cov",
    "naswot",
    "zen",
    "ntk",
    "linear_regions",
    "te_nas",
    "params",
    "flops",
}


class ConvNet(nn.Module):
    """conv-BN-ReLU x2 -> global pool -> linear, with ``forward_features`` (the Zen contract)."""

    def __init__(self, act: type[nn.Module] = nn.ReLU, bn: bool = True) -> None:
        super().__init__()
        norm = (lambda c: nn.BatchNorm2d(c)) if bn else (lambda c: nn.Identity())
        self.body = nn.Sequential(
            nn.Conv2d(3, 6, 3, padding=1, bias=False), norm(6), act(), nn.Conv2d(6, 6, 3, padding=1), norm(6), act()
        )
        self.fc = nn.Linear(6, 4)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.forward_features(x).mean(dim=(2, 3)))


@pytest.fixture
def batch() -> Batch:
    return Batch.random((3, 6, 6), num_classes=4, size=128, seed=0)


def _vec_batch(d: int, n: int = 128, classes: int = 3, seed: int = 0) -> Batch:
    return Batch.random((d,), num_classes=classes, size=n, seed=seed)


def test_registry_names_signs_and_composites() -> None:
    assert set(list_proxies()) == ALL
    assert get_proxy("ntk").sign == -1
    assert all(get_proxy(n).sign == 1 for n in ALL - {"ntk"})
    assert get_proxy("te_nas").parts == ("ntk", "linear_regions")
    assert get_proxy("naswot").batch_size == 128 and get_proxy("snip").batch_size == 64
    assert not get_proxy("synflow").needs_data and get_proxy("snip").needs_data
    with pytest.raises(ValueError, match="bogus"):
        get_proxy("bogus")
    with pytest.raises(ValueError, match="registered twice"):
        proxy("synflow")(lambda model, batch: 0.0)


def test_bad_options_and_composites_are_refused(batch: Batch) -> None:
    net = ConvNet()
    with pytest.raises(ValueError, match="no option"):
        compute_proxy("zen", net, batch, bogus=1)
    with pytest.raises(ValueError, match="zen repeats"):
        compute_proxy("zen", net, batch, repeats=0)
    with pytest.raises(ValueError, match="rank combination"):
        compute_proxy("te_nas", net, batch)


def test_synflow_exact_on_two_linear_layers_with_bn_bypassed() -> None:
    torch.manual_seed(1)
    net = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), nn.Linear(3, 2))
    w1, b1 = net[0].weight.detach().abs().double(), net[0].bias.detach().abs().double()
    w2 = net[2].weight.detach().abs().double()
    # R = sum(|W2| (|W1| 1 + |b1|) + |b2|): dR/dW1_ij = colsum(|W2|)_i, dR/dW2_ki = (|W1| 1 + |b1|)_i
    hidden = w1.sum(dim=1) + b1
    expected = float((w1 * w2.sum(dim=0)[:, None]).sum() + (w2 * hidden[None, :]).sum())
    value = compute_proxy("synflow", net, _vec_batch(4))
    assert value.raw == pytest.approx(math.log(expected), rel=1e-12)
    assert value.score == value.raw


def test_snip_grad_norm_fisher_match_their_definitions(batch: Batch) -> None:
    torch.manual_seed(0)
    net = ConvNet()
    ref = ConvNet()
    ref.load_state_dict(net.state_dict())
    x, y = batch.x[:64], batch.y[:64]
    layers = [m for m in ref.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    grads = torch.autograd.grad(F.cross_entropy(ref(x), y), [m.weight for m in layers])
    snip = sum(float((m.weight.detach() * g).abs().sum()) for m, g in zip(layers, grads, strict=True))
    norm = sum(float(g.norm()) for g in grads)
    assert compute_proxy("snip", net, batch).score == pytest.approx(snip, rel=1e-5)
    assert compute_proxy("grad_norm", net, batch).score == pytest.approx(norm, rel=1e-5)
    # fisher on a single linear layer: activation = logits a, dL/da = (softmax(a) - onehot) / N
    lin = nn.Linear(5, 3)
    vb = _vec_batch(5)
    a = lin(vb.x[:64]).detach()
    g = (a.softmax(dim=1) - F.one_hot(vb.y[:64], 3)) / 64
    expected = float(0.5 * (a * g).pow(2).mean(dim=0).sum())
    assert compute_proxy("fisher", lin, vb).score == pytest.approx(expected, rel=1e-5)


def test_grasp_is_minus_theta_hessian_gradient_product() -> None:
    torch.manual_seed(0)
    lin = nn.Linear(3, 2, bias=False)
    vb = _vec_batch(3, n=64, classes=2)
    w0 = lin.weight.detach().clone()

    def loss(w: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(vb.x @ w.T, vb.y)

    g = torch.autograd.functional.jacobian(loss, w0).reshape(-1)
    h = torch.autograd.functional.hessian(loss, w0).reshape(6, 6)
    expected = float(-(w0.reshape(-1) * (h @ g)).sum())
    assert compute_proxy("grasp", lin, vb).score == pytest.approx(expected, rel=1e-4, abs=1e-9)


def test_naswot_kernel_is_units_minus_hamming_distance() -> None:
    from nasmeta.zeroshot.proxies.naswot import hamming_kernel

    codes = torch.rand(7, 30, generator=torch.Generator().manual_seed(0)) > 0.5
    c = codes.double()
    assert torch.equal(hamming_kernel(codes), c @ c.T + (1 - c) @ (1 - c).T)
    # one ReLU applied to the input itself: the codes are (x > 0); more units than samples keeps K regular
    d = 300
    net = nn.Sequential(nn.ReLU(), nn.Linear(d, 2))
    vb = _vec_batch(d)
    bits = (vb.x > 0).numpy()
    hamming = (bits[:, None, :] != bits[None, :, :]).sum(axis=2)
    sign, logdet = np.linalg.slogdet((d - hamming).astype(np.float64))
    assert sign == 1.0
    assert compute_proxy("naswot", net, vb).score == pytest.approx(logdet, rel=1e-10)
    # a second ReLU on the same codes adds the same kernel again: log|2K| = n log 2 + log|K|
    twice = nn.Sequential(nn.ReLU(), nn.ReLU(), nn.Linear(d, 2))
    assert compute_proxy("naswot", twice, vb).score == pytest.approx(logdet + 128 * math.log(2), rel=1e-10)


def test_jacob_cov_exact_for_a_linear_network_and_worst_for_a_constant_one() -> None:
    # f(x) = W x: every sample's input Jacobian is the same row, so corrcoef is all ones (eigenvalues n, 0, ...)
    net = nn.Linear(10, 3, bias=False)
    n, k = 64, 1e-5
    expected = -((math.log(n + k) + 1 / (n + k)) + (n - 1) * (math.log(k) + 1 / k))
    assert compute_proxy("jacob_cov", net, _vec_batch(10)).score == pytest.approx(expected, rel=1e-6)

    class Constant(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(10, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(x * 0.0)

    assert compute_proxy("jacob_cov", Constant(), _vec_batch(10)).score == -math.inf


def test_ntk_condition_number_exact_for_a_linear_network() -> None:
    # f_i = sum_o (W x_i)_o, so df_i/dW = ones(m) x_i^T and Theta = m X X^T whatever W is
    d, m = 80, 3
    net = nn.Linear(d, m, bias=False)
    vb = _vec_batch(d)
    x = vb.x[:64].double().numpy()
    eig = np.linalg.eigvalsh(m * x @ x.T)
    value = compute_proxy("ntk", net, vb)
    assert value.raw == pytest.approx(eig[-1] / eig[0], rel=1e-6)
    assert value.score == -value.raw


def test_ntk_autograd_and_torch_func_jacrev_agree_on_a_bn_network() -> None:
    # train-mode BN couples the samples; both ways must see the same coupling
    net = ConvNet()
    b = Batch.random((3, 5, 5), 4, size=16, seed=1)
    loop = compute_proxy("ntk", net, b, method="autograd").raw
    func = compute_proxy("ntk", net, b, method="jacrev", chunk_size=4).raw
    assert loop == pytest.approx(func, rel=1e-4)
    with pytest.raises(ValueError, match="ntk method"):
        compute_proxy("ntk", net, b, method="bogus")


def test_linear_regions_of_a_relu_on_the_input_are_the_orthants() -> None:
    net = nn.Sequential(nn.ReLU(), nn.Linear(3, 2))
    assert compute_proxy("linear_regions", net, _vec_batch(3)).score == 8.0
    # a 3-neuron hidden layer on a 2-D input cuts the plane into at most 1 + 3 + 3 = 7 regions
    hidden = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 2))
    assert 2 <= compute_proxy("linear_regions", hidden, _vec_batch(2)).score <= 7


def test_params_and_flops_exact() -> None:
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Flatten(), nn.Linear(4 * 8 * 8, 2))
    b = Batch.random((3, 8, 8), 2, size=4)
    assert compute_proxy("params", net, b).score == 4 * 3 * 9 + 4 + 256 * 2 + 2
    assert compute_proxy("flops", net, b).score == 2 * (4 * 3 * 9 * 64) + 2 * (256 * 2)


def test_proxies_use_a_fresh_seeded_copy(batch: Batch) -> None:
    torch.manual_seed(0)
    net = ConvNet()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    rng_before = torch.random.get_rng_state()
    for name in sorted(ALL - {"te_nas"}):
        first = compute_proxy(name, net, batch, seed=3)
        again = compute_proxy(name, net, batch, seed=3)
        assert first.applicable and math.isfinite(first.score), name
        assert first.score == again.score, name
        assert first.seconds >= 0.0
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert all(p.grad is None for p in net.parameters())
    assert torch.equal(torch.random.get_rng_state(), rng_before)
    # the proxies that draw random numbers depend on the seed
    assert compute_proxy("zen", net, batch, seed=3).score != compute_proxy("zen", net, batch, seed=4).score


def test_network_without_relu_or_bn_gets_not_applicable_for_those_proxies_only(batch: Batch) -> None:
    torch.manual_seed(0)
    net = ConvNet(act=nn.Tanh, bn=False)
    needs = {"naswot": "ReLU", "linear_regions": "ReLU", "zen": "BatchNorm"}
    for name in sorted(ALL - {"te_nas"}):
        value = compute_proxy(name, net, batch)
        if name in needs:
            assert not value.applicable and math.isnan(value.score), name
            assert needs[name] in value.reason, name
        else:
            assert value.applicable and math.isfinite(value.score), name


def test_a_proxy_may_raise_not_applicable_itself(batch: Batch) -> None:
    with pytest.raises(ProxyNotApplicable):
        from nasmeta.zeroshot.modules import relu_modules

        relu_modules(nn.Linear(2, 2), "naswot")


def test_every_proxy_runs_on_an_nb201_network(batch: Batch) -> None:
    from nasmeta.spaces import get_space

    space = get_space("nb201")
    arch = space.parse("|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|none~2|")
    torch.manual_seed(0)
    net = space.build(arch, 4, (3, 6, 6), C=4, N=1)
    for name in sorted(ALL - {"te_nas"}):
        value = compute_proxy(name, net, batch, **({"n_samples": 500} if name == "linear_regions" else {}))
        assert value.applicable and math.isfinite(value.score), name
