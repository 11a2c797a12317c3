"""The training helpers of locres/training.py: scoring boxes, phantoms, the metrics command."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

from locres.io.checkpoints import export_slim
from locres.models.nets import CompactResNet
from locres.training import evaluate_boxes, evaluate_phantoms, main


class _FirstVoxel(torch.nn.Module):
    """Predicts the first voxel of each box: lets a test choose every prediction."""

    def forward(self, x):
        return x[:, 0, 0, 0, 0]


def test_evaluate_boxes_known_answer():
    y = torch.tensor([3.0, 5.0, 7.0, 10.0, 14.0, 2.2])
    err = torch.tensor([1.0, -1.0, 1.0, -1.0, 2.0, 0.5])
    x = torch.zeros(len(y), 1, 3, 3, 3)
    x[:, 0, 0, 0, 0] = y + err
    out = evaluate_boxes(_FirstVoxel(), TensorDataset(x, y), batch_size=4)  # two batches
    assert out["n_boxes"] == 6
    assert out["mae_a"] == pytest.approx(6.5 / 6) and out["bias_a"] == pytest.approx(2.5 / 6)
    assert out["mae_per_bin_a"] == {"2-4": 0.75, "4-6": 1.0, "6-9": 1.0, "9-15": 1.5}
    assert out["boxes_per_bin"] == {"2-4": 2, "4-6": 1, "6-9": 1, "9-15": 2}
    assert out["mae_2.5-12_a"] == pytest.approx(1.0)  # 3, 5, 7 and 10 A


def _pdb(path, n=40, seed=0):
    rng = np.random.default_rng(seed)
    xyz = rng.uniform(-6, 6, (n, 3))
    lines = [f"ATOM  {i + 1:5d}  CA  ALA A{i + 1:4d}    {x:8.3f}{y:8.3f}{z:8.3f}  1.00 20.00           C"
             for i, (x, y, z) in enumerate(xyz)]
    path.write_text("\n".join([*lines, "END"]) + "\n")
    return path


def test_evaluate_phantoms_scores_every_model(tmp_path):
    torch.manual_seed(0)
    net = CompactResNet(channels=[2, 2], kernel_sizes=[3, 3], strides=[1, 1], dense_widths=[4])
    ckpt = export_slim(tmp_path / "tiny.pt", net, 1.0, (2.0, 15.0))
    files = [_pdb(tmp_path / "1abc.pdb", seed=1), _pdb(tmp_path / "2xyz.pdb", seed=2)]
    out = evaluate_phantoms(str(ckpt), files, resolution_range_a=(4.0, 8.0), snr=5.0)
    assert [r["entry"] for r in out["phantoms"]] == ["1abc", "2xyz"]
    for kind in ("clean", "map"):
        maes = [r[kind]["mae_a"] for r in out["phantoms"]]
        assert all(m >= abs(r[kind]["bias_a"]) for m, r in zip(maes, out["phantoms"]))  # |mean| <= mean |.|
        assert out[f"mean_mae_{kind}_a"] == pytest.approx(np.mean(maes), abs=1e-3)


def test_metrics_command_needs_a_checkpoint(capsys):
    with pytest.raises(SystemExit, match="usage: python -m locres.training CKPT"):
        main([])
