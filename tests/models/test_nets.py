"""The published architecture's size and the compact net's box/volume equivalence and scale invariance."""

from __future__ import annotations

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from locres.errors import LocresError
from locres.models.nets import CompactResNet, DeepResPaperNet, count_parameters
from tests.conftest import REPO


def _boxes_at(x: torch.Tensor, b: int, corners) -> torch.Tensor:
    return torch.stack([x[0, :, i:i + b, j:j + b, k:k + b] for i, j, k in corners])


def test_paper_net_parameter_count_and_shape():
    net = DeepResPaperNet().eval()
    # conv 13^3*32 + 32, dense 13^3*32*512 + 512, out 512 + 1
    assert count_parameters(net) == 70_336 + 35_996_160 + 513 == 36_067_009
    assert net.box_size == 13 and not net.fully_convolutional
    with torch.no_grad():
        y = net(torch.randn(3, 1, 13, 13, 13))
    assert y.shape == (3,)


def test_paper_net_box_scale_invariant():
    torch.manual_seed(0)
    net = DeepResPaperNet().eval()
    x = torch.randn(2, 1, 13, 13, 13)
    with torch.no_grad():
        assert torch.allclose(net(x), net(250.0 * x), rtol=1e-5, atol=1e-5)


def test_compact_net_size_and_box():
    net = CompactResNet()
    assert net.box_size == 21 and net.box_size % 2 == 1 and net.output_stride == 2
    assert 50_000 < count_parameters(net) < 1_000_000


@pytest.mark.parametrize("kw", [{}, {"strides": [1, 2, 1, 1, 1, 1], "kernel_sizes": [3, 3, 3, 3, 3, 3]},
                                {"dense_widths": [32, 16], "output": "sigmoid"}])
def test_forward_volume_equals_box_by_box(kw):
    torch.manual_seed(1)
    net = CompactResNet(**kw).eval()
    b = net.box_size
    x = torch.randn(1, 1, b + 9, b + 6, b + 4)  # odd, non-cubic
    corners = [(0, 0, 0), (9, 6, 4), (3, 5, 1), (8, 1, 3), (4, 4, 4)]
    with torch.no_grad():
        dense = net.forward_volume(x)
        coarse = net.forward_volume_coarse(x)
        boxes = net(_boxes_at(x, b, corners))
    assert dense.shape == (1, 1, 10, 7, 5)
    for n, (i, j, k) in enumerate(corners):
        assert float(dense[0, 0, i, j, k]) == pytest.approx(float(boxes[n]), rel=1e-4, abs=1e-5)
    s = net.output_stride
    assert torch.allclose(coarse, dense[..., ::s, ::s, ::s], rtol=1e-4, atol=1e-5)


def test_compact_net_per_box_scale_invariance_and_positive_output():
    torch.manual_seed(2)
    net = CompactResNet().eval()
    x = torch.randn(4, 1, 21, 21, 21)
    with torch.no_grad():
        y = net(x)
        assert torch.all(y > 0)
        assert torch.allclose(y, net(1000.0 * x), rtol=1e-4)


def test_sigmoid_output_stays_in_range():
    net = CompactResNet(output="sigmoid", resolution_range_a=(3.0, 9.0)).eval()
    with torch.no_grad():
        y = net(100 * torch.randn(8, 1, 21, 21, 21))
    assert torch.all((y >= 3.0) & (y <= 9.0))


def test_bad_configs_raise():
    with pytest.raises(LocresError):
        CompactResNet(kernel_sizes=[4], channels=[8], strides=[1])  # even box
    with pytest.raises(LocresError):
        CompactResNet(norm="instance")
    with pytest.raises(LocresError):
        CompactResNet(output="relu")
    with pytest.raises(LocresError):
        CompactResNet()(torch.zeros(1, 1, 13, 13, 13))


@pytest.mark.parametrize("name", ["compact", "deepres_paper"])
def test_model_configs_instantiate(name):
    cfg = OmegaConf.load(REPO / "configs" / "model" / f"{name}.yaml")
    net = instantiate(cfg)
    rebuilt = instantiate(net.net_config)
    assert count_parameters(rebuilt) == count_parameters(net)
