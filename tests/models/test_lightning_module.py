"""LightningModule: losses and metrics in Angstrom, contract hyper-parameters, a loadable checkpoint."""

from __future__ import annotations

import functools

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from locres.errors import LocresError
from locres.io.checkpoints import load_deepres
from locres.models.lightning_module import DeepResModule, binned_mae, resolution_loss
from locres.models.nets import CompactResNet


def _tiny_net(**kw):
    return CompactResNet(channels=[4, 4], kernel_sizes=[3, 3], strides=[1, 1], dense_widths=[8],
                         resolution_range_a=[2.0, 15.0], **kw)


def test_losses_known_answers():
    p, t = torch.tensor([3.0, 5.0]), torch.tensor([2.0, 7.0])
    assert float(resolution_loss(p, t, "l1")) == pytest.approx(1.5)
    assert float(resolution_loss(p, t, "mse")) == pytest.approx(2.5)
    assert float(resolution_loss(p, t, "huber", 1.0)) == pytest.approx((0.5 + 1.5) / 2)
    assert float(resolution_loss(t * 2, t, "log_l1")) == pytest.approx(float(torch.log(torch.tensor(2.0))))
    with pytest.raises(LocresError):
        resolution_loss(p, t, "nosuch")


def test_binned_mae():
    t = torch.tensor([2.5, 3.5, 5.0, 8.0, 15.0])
    p = t + torch.tensor([1.0, -1.0, 0.5, 2.0, -3.0])
    b = binned_mae(p, t)
    assert b["2-4"] == (pytest.approx(1.0), 2)
    assert b["4-6"] == (pytest.approx(0.5), 1)
    assert b["6-9"] == (pytest.approx(2.0), 1)
    assert b["9-15"] == (pytest.approx(3.0), 1)  # the last bin includes 15 A


def test_fit_learns_and_checkpoint_loads(tmp_path):
    torch.manual_seed(0)
    # label = 2 + 10 * (box mean amplitude); a learnable toy problem with a known answer
    a = torch.rand(128)
    x = a.view(-1, 1, 1, 1, 1) * torch.ones(128, 1, 5, 5, 5) + 0.01 * torch.randn(128, 1, 5, 5, 5)
    y = 2.0 + 10.0 * a
    dl = DataLoader(TensorDataset(x, y), batch_size=64)
    # the toy label depends on the amplitude: no per-box scale normalisation, biases, linear output
    net = _tiny_net(box_normalise=False, conv_bias=True, output="linear", dropout=0.0)
    module = DeepResModule(net, optimizer=functools.partial(torch.optim.Adam, lr=2e-2), loss="l1",
                           resolution_range_a=[2.0, 15.0])
    hp = module.hparams
    assert hp["net_config"]["_target_"].endswith("CompactResNet") and hp["voxel_size_a"] == 1.0
    assert list(hp["resolution_range_a"]) == [2.0, 15.0]
    with torch.no_grad():
        before = float((module(x) - y).abs().mean())
    trainer = L.Trainer(max_steps=120, accelerator="cpu", logger=False, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=tmp_path, enable_checkpointing=False,
                        check_val_every_n_epoch=30, num_sanity_val_steps=0)
    trainer.fit(module, dl, dl)
    with torch.no_grad():
        after = float((module(x) - y).abs().mean())
    assert after < 0.4 * before
    ckpt = tmp_path / "m.ckpt"
    trainer.save_checkpoint(ckpt)
    loaded, meta = load_deepres(ckpt)
    assert meta["resolution_range_a"] == [2.0, 15.0] and meta["voxel_size_a"] == 1.0
    with torch.no_grad():
        torch.testing.assert_close(loaded(x[:8]), module.net.eval()(x[:8]))


def test_scheduler_partial_and_bad_loss():
    net = _tiny_net()
    m = DeepResModule(net, optimizer=functools.partial(torch.optim.SGD, lr=0.1),
                      scheduler=functools.partial(torch.optim.lr_scheduler.StepLR, step_size=1))
    conf = m.configure_optimizers()
    assert isinstance(conf["optimizer"], torch.optim.SGD)
    assert conf["lr_scheduler"]["monitor"] == "val/mae"
    with pytest.raises(LocresError, match="unknown loss"):
        DeepResModule(net, optimizer=functools.partial(torch.optim.SGD, lr=0.1), loss="nosuch")
