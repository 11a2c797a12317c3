"""DeepRes checkpoints: slim and Lightning-style round trips; missing, foreign and damaged files."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from locres.errors import LocresError
from locres.io.checkpoints import export_slim, load_deepres
from locres.models.nets import CompactResNet, DeepResPaperNet


def _small_net() -> CompactResNet:
    torch.manual_seed(0)
    return CompactResNet(channels=[4, 8], kernel_sizes=[3, 3], strides=[2, 1], dense_widths=[8],
                         resolution_range_a=(2.5, 12.0)).eval()


def test_slim_round_trip_gives_identical_outputs(tmp_path):
    net = _small_net()
    out = export_slim(tmp_path / "sub" / "m.pt", net, voxel_size_a=1.0, resolution_range_a=(2.5, 12.0),
                      extra={"metrics": {"mae_a": 0.4}})
    assert out.is_file() and not list(out.parent.glob("*.tmp"))
    loaded, meta = load_deepres(out)
    assert meta["kind"] == "slim" and meta["voxel_size_a"] == 1.0
    assert meta["resolution_range_a"] == [2.5, 12.0]
    assert meta["metrics"] == {"mae_a": 0.4}
    assert not loaded.training
    x = torch.randn(2, 1, net.box_size, net.box_size, net.box_size)
    with torch.no_grad():
        assert torch.equal(loaded(x), net(x))


def test_lightning_checkpoint_with_prefixed_keys_and_dictconfig(tmp_path):
    net = DeepResPaperNet(box_size=5, filters=2, kernel_size=3, dense_width=4).eval()
    hp = OmegaConf.create({"net_config": net.net_config, "voxel_size_a": 1.0,
                           "resolution_range_a": [1.9, 13.0], "lr": 1e-3})
    state = {f"net.{k}": v for k, v in net.state_dict().items()}
    state["loss_fn.dummy"] = torch.zeros(1)  # other LightningModule state is ignored
    torch.save({"epoch": 3, "state_dict": state, "hyper_parameters": hp, "optimizer_states": []},
               tmp_path / "last.ckpt")
    loaded, meta = load_deepres(tmp_path / "last.ckpt")
    assert meta["kind"] == "lightning" and isinstance(loaded, DeepResPaperNet)
    x = torch.randn(3, 1, 5, 5, 5)
    with torch.no_grad():
        assert torch.equal(loaded(x), net(x))


def test_missing_foreign_and_damaged_files(tmp_path):
    with pytest.raises(LocresError, match="does not exist"):
        load_deepres(tmp_path / "nope.pt")
    (tmp_path / "text.pt").write_text("not a checkpoint\n")
    with pytest.raises(LocresError, match="damaged"):
        load_deepres(tmp_path / "text.pt")
    torch.save({"weights": torch.zeros(3)}, tmp_path / "foreign.pt")
    with pytest.raises(LocresError, match="not a locres"):
        load_deepres(tmp_path / "foreign.pt")
    good = export_slim(tmp_path / "good.pt", _small_net(), 1.0, (2.5, 12.0))
    data = good.read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(LocresError, match="damaged"):
        load_deepres(tmp_path / "cut.pt")
    blob = torch.load(good, weights_only=True)
    blob["net_config"]["_target_"] = "os.system"
    torch.save(blob, tmp_path / "evil.pt")
    with pytest.raises(LocresError, match="locres class"):
        load_deepres(tmp_path / "evil.pt")
    blob["net_config"] = _small_net().net_config | {"channels": [4, 16]}
    torch.save(blob, tmp_path / "mismatch.pt")
    with pytest.raises(LocresError, match="do not match"):
        load_deepres(tmp_path / "mismatch.pt")
