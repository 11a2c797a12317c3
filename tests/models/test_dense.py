"""Dense quantile net and its module: ordered quantiles, the pinball loss's known values."""

from __future__ import annotations

import math

import pytest
import torch

from locres.errors import LocresError
from locres.models.dense import DenseQuantileNet
from locres.models.dense_module import contrast_loss_a, masked_quantile_metrics, pinball_loss_a
from locres.models.features import n_feature_channels


def test_quantiles_are_ordered_in_range_and_on_the_half_grid():
    net = DenseQuantileNet(resolution_range_a=(2.0, 20.0))
    torch.manual_seed(0)
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.3)
    y = net(torch.randn(2, n_feature_channels("map"), 9, 10, 7))
    assert y.shape == (2, 3, 9, 10, 7)
    assert torch.all(y[:, 0] <= y[:, 1]) and torch.all(y[:, 1] <= y[:, 2])
    assert torch.all(y[:, 1] >= 2.0) and torch.all(y[:, 1] <= 20.0)


def test_net_refuses_wrong_channels_and_bad_settings():
    net = DenseQuantileNet(inputs="halves")
    with pytest.raises(LocresError):
        net(torch.zeros(1, n_feature_channels("map"), 4, 4, 4))
    with pytest.raises(LocresError):
        DenseQuantileNet(quantiles=(0.9, 0.5, 0.1))


def test_pinball_loss_known_values():
    truth = torch.tensor([5.0, 5.0])
    exact = torch.tensor([[5.0, 5.0, 5.0], [5.0, 5.0, 5.0]])
    assert float(pinball_loss_a(exact, truth, [0.1, 0.5, 0.9])) == pytest.approx(0.0)
    # median 1 A too fine on both: 0.5 * 1 for the median term only
    off = torch.tensor([[5.0, 4.0, 5.0], [5.0, 4.0, 5.0]])
    assert float(pinball_loss_a(off, truth, [0.1, 0.5, 0.9])) == pytest.approx(0.5)
    # relative weighting at a 5 A reference: 1 A off at truth 2.5 A counts twice, at 10 A half
    pairs = torch.tensor([2.5, 10.0]), torch.tensor([[2.5, 1.5, 2.5], [10.0, 9.0, 10.0]])
    assert float(pinball_loss_a(pairs[1], pairs[0], [0.1, 0.5, 0.9], reference_a=5.0)) == pytest.approx(
        0.5 * (2.0 + 0.5) / 2.0)
    assert float(pinball_loss_a(pairs[1], pairs[0], [0.1, 0.5, 0.9])) == pytest.approx(0.5)
    # log scale at a 5 A reference: the median 2x too coarse costs 0.5 * 5 ln 2 at any resolution
    doubled = torch.tensor([[2.5, 5.0, 2.5], [10.0, 20.0, 10.0]])
    assert float(pinball_loss_a(doubled, pairs[0], [0.1, 0.5, 0.9], reference_a=5.0, log_scale=True)) == (
        pytest.approx(0.5 * 5.0 * math.log(2.0)))
    # the log-scale loss is minimised by the plain median (4 A); the relative weighting leans finer
    spread = torch.tensor([2.0, 4.0, 12.0])

    def loss_at(value_a, **kw):
        constant = torch.full((3, 3), value_a)
        return float(pinball_loss_a(constant, spread, [0.1, 0.5, 0.9], reference_a=5.0, **kw))

    assert loss_at(4.0, log_scale=True) < min(loss_at(3.6, log_scale=True), loss_at(4.4, log_scale=True))
    assert loss_at(3.6) < loss_at(4.0)
    m = masked_quantile_metrics(torch.tensor([[3.0, 4.0, 6.0], [3.0, 4.0, 4.5]]), truth)
    assert float(m["mae"]) == pytest.approx(1.0) and float(m["coverage"]) == pytest.approx(0.5)
    assert float(m["width"]) == pytest.approx(2.25)


def test_contrast_loss_scores_the_pattern_not_the_level():
    truth = torch.tensor([[[[3.0, 6.0], [4.0, 8.0]]], [[[10.0, 10.0], [10.0, 10.0]]]])  # (2, 1, 2, 2)
    mask = torch.ones_like(truth, dtype=torch.bool)
    # any factor per crop (the level) costs nothing: 1.5x the first crop, 0.7x the second
    scaled = truth * torch.tensor([1.5, 0.7])[:, None, None, None]
    assert float(contrast_loss_a(scaled, truth, mask)) == pytest.approx(0.0, abs=1e-6)
    # a flat prediction misses the first crop's pattern: mean |log t - mean log t| at 5 A, halved over
    # the two crops (the second crop's flat truth is matched by any flat prediction)
    lt = torch.log(truth[0][mask[0]])
    expected = 5.0 * float((lt - lt.mean()).abs().mean()) / 2.0
    assert float(contrast_loss_a(torch.full_like(truth, 4.0), truth, mask)) == pytest.approx(expected)
    # the inverted pattern costs twice the flat one
    inverted = truth.clone()
    inverted[0] = 24.0 / truth[0]  # log inverted about the crop's mean log(24)/2
    assert float(contrast_loss_a(inverted, truth, mask)) == pytest.approx(2.0 * expected)
    # voxels outside the mask and crops without mask voxels are ignored
    mask2 = mask.clone()
    mask2[1] = False
    outside = scaled.clone()
    outside[1] = 50.0
    assert float(contrast_loss_a(outside, truth, mask2)) == pytest.approx(0.0, abs=1e-6)


def test_module_adds_the_contrast_term_only_when_weighted():
    from functools import partial

    from locres.models.dense_module import DenseResModule

    torch.manual_seed(3)
    net = DenseQuantileNet(width=4, dilations=(1,))
    batch = {"x": torch.randn(n_feature_channels("map"), 6, 5, 7),
             "truth": 3.0 + 6.0 * torch.rand(6, 5, 7), "mask": torch.rand(6, 5, 7) > 0.3}
    optimizer = partial(torch.optim.AdamW, lr=1e-3)
    plain = DenseResModule(net, optimizer, loss_weighting="relative")
    weighted = DenseResModule(net, optimizer, loss_weighting="relative", contrast_weight=0.5)
    for m in (plain, weighted):
        m.log = lambda *a, **k: None  # no trainer attached
    with torch.no_grad():
        pred = net(batch["x"][None])
        extra = 0.5 * contrast_loss_a(pred[:, 1], batch["truth"][None], batch["mask"][None])
        assert float(extra) > 0.0
        torch.testing.assert_close(weighted.training_step(batch, 0), plain.training_step(batch, 0) + extra)
    with pytest.raises(LocresError, match="contrast_weight"):
        DenseResModule(net, optimizer, contrast_weight=-1.0)


@pytest.mark.parametrize("inputs, v_old, v_new", [("halves", 2, 3), ("map", 2, 5)])
def test_a_net_grown_by_appended_inputs_starts_as_the_old_one(inputs, v_old, v_new):
    from locres.models.dense import load_grown

    torch.manual_seed(1)
    old = DenseQuantileNet(inputs=inputs, features=v_old, width=8, dilations=(1,))
    for p in old.parameters():
        torch.nn.init.normal_(p, std=0.2)
    new = DenseQuantileNet(inputs=inputs, features=v_new, width=8, dilations=(1,))
    n_old, n_new = n_feature_channels(inputs, version=v_old), n_feature_channels(inputs, version=v_new)
    assert new.in_channels == n_new > n_old
    assert load_grown(new, old.state_dict()) == {"appended_inputs": n_new - n_old, "width_from": 8}
    x = torch.randn(1, n_new, 6, 5, 7)
    with torch.no_grad():
        torch.testing.assert_close(new(x), old(x[:, :n_old]))
    # a narrower net cannot hold it: refused, not half loaded
    with pytest.raises(LocresError, match="do not fit"):
        load_grown(DenseQuantileNet(inputs=inputs, features=v_new, width=4, dilations=(1,)), old.state_dict())


def test_a_widened_net_with_appended_inputs_starts_as_the_old_one_and_its_new_channels_learn():
    from locres.models.dense import load_grown

    torch.manual_seed(2)
    old = DenseQuantileNet(inputs="halves", features=3, width=8, dilations=(1, 2))
    for p in old.parameters():
        torch.nn.init.normal_(p, std=0.2)
    new = DenseQuantileNet(inputs="halves", features=4, width=12, dilations=(1, 2))
    n_old = n_feature_channels("halves", version=3)
    assert load_grown(new, old.state_dict()) == {"appended_inputs": new.in_channels - n_old, "width_from": 8}
    x = torch.randn(1, new.in_channels, 6, 5, 7)
    out = new(x)
    torch.testing.assert_close(out, old(x[:, :n_old]).detach())
    # the zero weights from new channels into old ones get gradients: the new channels are not dead
    out[:, 1].sum().backward()
    assert new.head[0].weight.grad[:8, 8:12].abs().sum() > 0
    assert new.head[0].weight.grad[:8, 20:24].abs().sum() > 0
    # a narrower net cannot take a wider one's weights
    with pytest.raises(LocresError, match="do not fit"):
        load_grown(DenseQuantileNet(inputs="halves", features=4, width=4, dilations=(1, 2)), old.state_dict())
