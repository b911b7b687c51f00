"""The Once-for-All space (Cai et al. 2020): text form, identity, encodings, published size, the kernel
transformation, and sub-network extraction from the elastic network."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from ofa_toys import SPACE, TINY

from nasmeta.ofa.elastic import ElasticOFANet, extract_subnet, recalibrate_bn, sort_channels
from nasmeta.spaces import Architecture, get_space
from nasmeta.spaces.ofa import OFAConfig, OFASpace, register_ofa_space


def _perturbed(net: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Random weights, transformation matrices and BN statistics (identity matrices would hide slicing bugs)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for tensor in [*net.parameters(), *(b for b in net.buffers() if b.is_floating_point())]:
            tensor.add_(0.2 * torch.randn(tensor.shape, generator=gen))
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_var.abs_().add_(0.1)
    return net


def test_text_json_and_token_round_trips() -> None:
    rng = np.random.default_rng(0)
    for _ in range(50):
        arch = SPACE.sample(rng)
        assert SPACE.parse(str(arch)) == arch
        assert Architecture.from_json(json.dumps(arch.to_json())) == arch
        tokens = SPACE.tokens(arch)
        assert len(tokens) == 1 + TINY.n_stages + 2 * TINY.n_slots
        assert all(0 <= t < SPACE.vocab_size for t in tokens)
        assert SPACE.features(arch).shape == SPACE.features(SPACE.largest()).shape
    assert str(SPACE.largest()) == "r12:d22:k77.77:e33.33"


def test_inactive_slots_do_not_change_identity_and_mutation_changes_the_network() -> None:
    a = SPACE.parse("r8:d12:k73.55:e23.32")
    b = SPACE.parse("r8:d12:k75.55:e22.32")  # slot 2 of stage 1 is inactive (depth 1)
    assert a != b and a.arch_id == b.arch_id
    assert SPACE.tokens(a) == SPACE.tokens(b)
    assert np.array_equal(SPACE.features(a), SPACE.features(b))
    rng = np.random.default_rng(1)
    for _ in range(30):
        child = SPACE.mutate(a, rng)
        assert child.arch_id != a.arch_id
        assert sum(x != y for x, y in zip(child.encoding, a.encoding, strict=True)) == 1


def test_paper_space_has_the_published_number_of_subnetworks() -> None:
    """OFA paper, Sec. 3.1: 'around 2 x 10^19 different neural network architectures' per resolution (5 units,
    depths {2,3,4}, 9 kernel/expand choices per layer)."""
    space = get_space("ofa")
    c = space.config
    per_stage = sum((len(c.kernels) * len(c.expands)) ** d for d in c.depths)
    assert per_stage**c.n_stages == pytest.approx(2.2e19, rel=0.05)
    assert len(c.resolutions) == 25 and c.resolutions[0] == 128 and c.resolutions[-1] == 224
    assert space.size == 25 * 3**5 * 9**20


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("r10:d12:k73.55:e23.32", "resolution 10"),
        ("r8:d13:k73.55:e23.32", "depth 3"),
        ("r8:d12:k73.45:e23.32", "kernel 4"),
        ("r8:d12:k73.55:e23.39", "expansion 9"),
        ("r8:d12:k73:e23.32", "2 stage groups"),
        ("r8-d12", "not of the form"),
    ],
)
def test_bad_strings_raise_naming_the_value(text: str, named: str) -> None:
    with pytest.raises(ValueError, match=named):
        SPACE.parse(text)


def test_bad_configs_and_encodings_raise_naming_the_value() -> None:
    with pytest.raises(ValueError, match="kernels must be odd"):
        OFAConfig(kernels=(3, 4))
    with pytest.raises(ValueError, match="one entry per stage"):
        OFAConfig(widths=(8, 16), strides=(2,), activations=("relu", "relu"))
    with pytest.raises(ValueError, match="length 3"):
        SPACE.from_encoding((8, 1, 2))
    with pytest.raises(ValueError, match="unknown build arguments"):
        SPACE.build(SPACE.largest(), 10, C=4)
    with pytest.raises(ValueError, match="already taken"):
        register_ofa_space("ofa-test-tiny", TINY.model_copy(update={"head_channels": 4}))


def test_kernel_transformation_matrices_chain_seven_five_three() -> None:
    torch.manual_seed(0)
    net = ElasticOFANet(SPACE, 3, (3, 12, 12))
    dw = net.stages[0][0].depthwise
    assert dw.transform_7to5.shape == (25, 25) and dw.transform_5to3.shape == (9, 9)
    mid = dw.conv.weight.shape[0]
    # identity matrices: smaller kernels are the centres of the 7x7 kernel
    assert torch.equal(dw.kernel(5, mid), dw.conv.weight[:, :, 1:6, 1:6])
    assert torch.equal(dw.kernel(3, mid), dw.conv.weight[:, :, 2:5, 2:5])
    with torch.no_grad():
        dw.transform_7to5.copy_(torch.randn(25, 25))
        dw.transform_5to3.copy_(torch.randn(9, 9))
    five = dw.conv.weight[:, :, 1:6, 1:6].reshape(mid, 25) @ dw.transform_7to5.T
    three = five.reshape(mid, 1, 5, 5)[:, :, 1:4, 1:4].reshape(mid, 9) @ dw.transform_5to3.T
    assert torch.allclose(dw.kernel(5, mid), five.reshape(mid, 1, 5, 5))
    assert torch.allclose(dw.kernel(3, mid), three.reshape(mid, 1, 3, 3))
    assert dw.kernel(3, 2).shape == (2, 1, 3, 3)
    with pytest.raises(ValueError, match="kernel size 4"):
        dw.kernel(4, mid)


def test_extracted_subnetwork_computes_what_the_elastic_network_computes() -> None:
    torch.manual_seed(0)
    net = _perturbed(ElasticOFANet(SPACE, 3, (3, 12, 12))).eval()
    x = torch.randn(5, 3, 12, 12)
    rng = np.random.default_rng(2)
    for arch in [SPACE.largest(), SPACE.smallest(), *(SPACE.sample(rng) for _ in range(8))]:
        net.set_active(arch)
        sub = extract_subnet(net, arch).eval()
        assert not any(isinstance(m, type(net.stages[0][0])) for m in sub.modules())  # plain modules only
        assert torch.allclose(net(x), sub(x), atol=1e-5), str(arch)
    # the same architecture built afresh has the same structure (load_state_dict is strict)
    assert set(SPACE.build(arch, 3, (3, 12, 12)).state_dict()) == set(sub.state_dict())


def test_channel_sorting_keeps_the_largest_network_and_recalibration_sets_bn_to_the_data() -> None:
    torch.manual_seed(0)
    net = _perturbed(ElasticOFANet(SPACE, 3, (3, 12, 12))).eval()
    x = torch.randn(6, 3, 12, 12)
    before = net(x)
    sort_channels(net)
    assert torch.allclose(net(x), before, atol=1e-5)
    block = net.stages[0][0]
    norms = block.project.conv.weight.abs().sum(dim=(0, 2, 3))
    assert torch.all(norms[:-1] >= norms[1:])
    sub = recalibrate_bn(extract_subnet(net, SPACE.smallest()), torch.randn(64, 3, 12, 12) * 3 + 1)
    stem_bn = sub.stem.conv.bn
    assert not sub.training and stem_bn.momentum == 0.1
    assert float(stem_bn.running_var.mean()) > 1.0  # estimated from inputs of variance 9, not the reset value 1
    with pytest.raises(ValueError, match="at least 2 images, got 1"):
        recalibrate_bn(sub, torch.randn(1, 3, 12, 12))


def test_space_is_registered_and_builds_a_plain_network() -> None:
    space = get_space("ofa-small")
    assert isinstance(space, OFASpace)
    model = space.build(space.largest(), 10)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert math.isclose(len(space.ops), 9)
