"""Dense resolution nets: local band features in, per-voxel resolution quantiles out.

:class:`DenseQuantileNet` reads the features of :mod:`locres.models.features` (on the model grid's
half-resolution grid) and is a CNN followed by dense layers: a per-voxel dense stem (1x1x1
convolutions), a context branch at a quarter of the model grid's resolution (residual 3x3x3
convolutions, dilated), and a dense head on both. The window of the features (up to 9 A) and the
context branch (about +-24 A at the default 1 A grid) give it more than 30 A of context on each side,
wide enough to judge 15 A. No normalisation layers: a crop and the whole map see the same arithmetic.

The head gives three values per voxel, turned into ordered quantiles in Angstrom: the median
``q50 = lo + (hi - lo) * sigmoid(z0)`` inside the trained range, and ``q_lo = q50 * exp(-softplus(z1))``,
``q_hi = q50 * exp(softplus(z2))`` around it, so ``q_lo <= q50 <= q_hi`` always. ``interval_scale``
``(s_lo, s_hi)`` multiplies those log distances (``q_lo = q50 * exp(-s_lo softplus(z1))``): 1 as trained;
:mod:`locres.models.interval_calibration` fits it on validation maps so the interval holds its levels.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from locres.errors import LocresError
from locres.models.features import BAND_RESOLUTIONS_A, INPUT_KINDS, n_feature_channels


class _Block(nn.Module):
    """Residual block: two 3x3x3 convolutions (dilated), GELU, added to the input."""

    def __init__(self, width: int, dilation: int = 1):
        super().__init__()
        self.a = nn.Conv3d(width, width, 3, padding=dilation, dilation=dilation, padding_mode="replicate")
        self.b = nn.Conv3d(width, width, 3, padding=dilation, dilation=dilation, padding_mode="replicate")
        nn.init.zeros_(self.b.weight)
        nn.init.zeros_(self.b.bias)

    def forward(self, x):
        return x + self.b(F.gelu(self.a(F.gelu(x))))


class DenseQuantileNet(nn.Module):
    """Per-voxel resolution quantiles from local band features.

    Parameters
    ----------
    inputs : "map" (single-map model) or "halves" (half-map model).
    n_bands : frequency bands of the features (:data:`locres.models.features.BAND_RESOLUTIONS_A`).
    width : channels of the stem and the context branch.
    dilations : one residual context block per entry, with that dilation.
    quantiles : the three quantile levels, low, median, high.
    resolution_range_a : (lo, hi) Angstrom: the median stays inside it.
    features : the feature version it reads (1: the first shipped half-map model; 2: the single-map
        model's; 3: version 2 with wide-window correlations and local-FSC crossings for half maps; 4: also
        the local SSNR against the half-map difference; 5: version 2 with each band's noise floor for a
        single map; 6: version 5 with the resolutions where band power falls to its floor).
    interval_scale : (s_lo, s_hi), factors on the log distance of the low and high quantiles from the
        median (1, 1 as trained; a calibrated model carries the fitted ones).
    """

    fully_convolutional = True
    output_stride = 2  # outputs sit on model voxels 2 i, like the features

    def __init__(
        self,
        inputs: str = "map",
        n_bands: int = len(BAND_RESOLUTIONS_A),
        width: int = 24,
        dilations: Sequence[int] = (1, 2),
        quantiles: Sequence[float] = (0.1, 0.5, 0.9),
        resolution_range_a: Sequence[float] = (2.0, 20.0),
        features: int = 1,
        interval_scale: Sequence[float] = (1.0, 1.0),
    ) -> None:
        super().__init__()
        if inputs not in INPUT_KINDS:
            raise LocresError(f"unknown inputs '{inputs}': choose map or halves")
        q = [float(v) for v in quantiles]
        if len(q) != 3 or not 0 < q[0] < q[1] < q[2] < 1:
            raise LocresError(f"quantiles must be three increasing levels in (0, 1), got {quantiles}")
        lo, hi = (float(r) for r in resolution_range_a)
        if not 0 < lo < hi:
            raise LocresError(f"resolution_range_a must satisfy 0 < lo < hi, got {resolution_range_a}")
        scale = [float(v) for v in interval_scale]
        if len(scale) != 2 or not all(v > 0 for v in scale):
            raise LocresError(f"interval_scale must be two positive factors, got {interval_scale}")
        w = int(width)
        self.interval_scale = scale
        self.inputs, self.quantiles, self.lo_a, self.hi_a = inputs, q, lo, hi
        self.feature_version = int(features)  # which locres.models.features version it reads
        self.in_channels = n_feature_channels(inputs, int(n_bands), self.feature_version)
        self.stem = nn.Sequential(nn.Conv3d(self.in_channels, w, 1), nn.GELU(), nn.Conv3d(w, w, 1))
        self.context = nn.Sequential(*[_Block(w, int(d)) for d in dilations])
        self.head = nn.Sequential(
            nn.Conv3d(2 * w, w, 1), nn.GELU(), nn.Conv3d(w, w, 1), nn.GELU(), nn.Conv3d(w, 3, 1)
        )
        last = self.head[-1]
        nn.init.zeros_(last.weight)
        with torch.no_grad():
            last.bias.copy_(torch.tensor([-1.0, -1.0, -1.0]))
        self.box_size = 1
        self.net_config = {
            "_target_": f"{__name__}.DenseQuantileNet",
            "inputs": inputs,
            "n_bands": int(n_bands),
            "width": w,
            "dilations": [int(d) for d in dilations],
            "quantiles": q,
            "resolution_range_a": [lo, hi],
            "features": self.feature_version,
            "interval_scale": scale,
        }

    def to_quantiles_a(self, z: torch.Tensor) -> torch.Tensor:
        """Head values (B, 3, ...) -> ordered quantiles in Angstrom (B, 3, ...)."""
        mid = self.lo_a + (self.hi_a - self.lo_a) * torch.sigmoid(z[:, 0])
        s_lo, s_hi = self.interval_scale
        low = mid * torch.exp(-s_lo * F.softplus(z[:, 1]))
        high = mid * torch.exp(s_hi * F.softplus(z[:, 2]))
        return torch.stack([low, mid, high], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, d, h, w) features -> (B, 3, d, h, w) quantiles (low, median, high) in Angstrom."""
        if x.ndim != 5 or x.shape[1] != self.in_channels:
            raise LocresError(f"expected features (B, {self.in_channels}, d, h, w), got {tuple(x.shape)}")
        h = F.gelu(self.stem(x))
        c = self.context(F.avg_pool3d(h, 2, ceil_mode=True))
        c = F.interpolate(c, size=h.shape[2:], mode="trilinear", align_corners=False)
        return self.to_quantiles_a(self.head(torch.cat([h, c], dim=1)))


def _old_input_index(name: str, old_width: int, new_width: int, n_old_in: int) -> torch.Tensor:
    """Where the old net's input channels of layer ``name`` sit in the grown net's: the same positions,
    except the head's first layer, which reads ``cat([stem, context])`` and so finds the old context
    channels after all the new stem's."""
    if name.startswith("head.0."):
        return torch.cat([torch.arange(old_width), new_width + torch.arange(old_width)])
    return torch.arange(n_old_in)


def load_grown(net: DenseQuantileNet, state: dict[str, torch.Tensor]) -> dict[str, int]:
    """Load ``state``, the weights of a smaller net of the same layers, into ``net``, so that the grown
    net starts as exactly the old one.

    A net grows in two ways, together or apart: appended input channels (a newer feature version, the
    same channels first) and a greater width. The old weights go to the old positions; every weight from
    a new channel into an old one is zero, so old channels compute what they did and the output layer
    reads nothing new; weights into the new channels keep ``net``'s fresh initialisation, so they learn.
    Returns ``{"appended_inputs": n, "width_from": w_old}``; weights of another shape are refused.
    """
    own = net.state_dict()
    if set(own) != set(state):
        raise LocresError("the weights are of another net (different layers)")
    old_width = int(state["stem.0.weight"].shape[0])
    new_width = int(own["stem.0.weight"].shape[0])
    appended = int(own["stem.0.weight"].shape[1] - state["stem.0.weight"].shape[1])
    for name, value in state.items():
        target = own[name]
        fits = value.ndim == target.ndim and all(a <= b for a, b in zip(value.shape, target.shape))
        if not fits or appended < 0 or old_width > new_width or value.shape[2:] != target.shape[2:]:
            raise LocresError(
                f"the weights do not fit: {name} is {tuple(value.shape)}, the net's {tuple(target.shape)}"
            )
        n_out = value.shape[0]
        if value.ndim == 1:  # biases
            target[:n_out] = value
            continue
        cols = _old_input_index(name, old_width, new_width, value.shape[1])
        if int(cols.max()) >= target.shape[1]:
            raise LocresError(f"the weights do not fit: {name} is {tuple(value.shape)}")
        target[:n_out] = 0.0  # old outputs read no new channel
        target[:n_out, cols] = value
    net.load_state_dict(own)
    return {"appended_inputs": appended, "width_from": old_width}

