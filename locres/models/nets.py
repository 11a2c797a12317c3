"""Resolution networks: standardised boxes ``(B, 1, b, b, b)`` in, resolution in Angstrom ``(B,)`` out.

Two families share the contract (``net.box_size`` odd, ``net.fully_convolutional``, ``net.net_config``):

- :class:`DeepResPaperNet` is the published DeepRes network (one 13^3 convolution with 'same' padding,
  flatten, dense 512, dense 1; 36,067,009 parameters). It only works box by box.
- :class:`CompactResNet` (the default model) is a small stack of *valid* 3D convolutions followed by
  dense layers written as 1x1x1 convolutions, so the same weights run over a whole map in one pass:
  :meth:`CompactResNet.forward_volume` returns exactly what box-by-box evaluation returns at every
  box position. A layer with stride > 1 makes the net cheaper: :meth:`CompactResNet.forward_volume_coarse`
  evaluates only every ``output_stride``-th box position (still exact there), and inference
  interpolates between them.

Scale invariance per box: the convolutions of :class:`CompactResNet` have no bias and use ReLU, so
the trunk is positively homogeneous in its input; its features at each position are divided by the
root-mean-square of the input box that produced them (a fixed, separable box average of ``x**2``).
This gives every box the same answer whatever its absolute scale, like the per-box L2 normalisation
of the reference, while staying fully convolutional.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from locres.errors import LocresError

OUTPUT_KINDS = ("linear", "softplus", "exp", "sigmoid")
NORM_KINDS = ("none", "batch")


def _check_output(output: str, resolution_range_a: Sequence[float]) -> tuple[float, float]:
    if output not in OUTPUT_KINDS:
        raise LocresError(f"unknown output '{output}': choose one of {', '.join(OUTPUT_KINDS)}")
    lo, hi = (float(v) for v in resolution_range_a)
    if not 0.0 < lo < hi:
        raise LocresError(f"resolution_range_a must be [lo, hi] with 0 < lo < hi, "
                          f"got {list(resolution_range_a)}")
    return lo, hi


def _init_output_bias(layer: nn.Module, output: str, lo: float, hi: float) -> None:
    """Start the output near the middle of the trained range (geometric mean for exp)."""
    with torch.no_grad():
        layer.weight.mul_(0.1)
        if output == "linear":
            layer.bias.fill_(0.5 * (lo + hi))
        elif output == "softplus":
            mid = 0.5 * (lo + hi)
            layer.bias.fill_(mid + math.log(-math.expm1(-mid)))  # softplus^-1(mid)
        elif output == "exp":
            layer.bias.fill_(0.5 * (math.log(lo) + math.log(hi)))
        else:
            layer.bias.zero_()


def _to_resolution(z: torch.Tensor, output: str, lo: float, hi: float) -> torch.Tensor:
    """Map the raw head output to a resolution in Angstrom."""
    if output == "linear":
        return z
    if output == "softplus":
        return F.softplus(z)
    if output == "exp":
        return torch.exp(z.clamp(max=math.log(1e4)))
    return lo + (hi - lo) * torch.sigmoid(z)


def _check_boxes(x: torch.Tensor, box_size: int) -> None:
    if x.dim() != 5 or x.shape[1] != 1 or tuple(x.shape[2:]) != (box_size,) * 3:
        raise LocresError(
            f"the net takes boxes of shape (B, 1, {box_size}, {box_size}, {box_size}), got {tuple(x.shape)}"
        )


class DeepResPaperNet(nn.Module):
    """The published DeepRes network (Ramirez-Aportela et al. 2019), box by box only.

    Box ``(B, 1, 13, 13, 13)`` -> Conv3d(32, 13^3, 'same') -> ReLU -> Dropout(0.2) -> Flatten (70,304)
    -> Linear(512) -> ReLU -> Dropout(0.2) -> Linear(1). With the defaults it has 36,067,009 parameters.
    (Keras flattens channels-last, torch channels-first: the count and the function class are the same.)

    Parameters
    ----------
    box_size, filters, kernel_size, dense_width, dropout
        The published values by default (13, 32, 13, 512, 0.2).
    normalise_box
        Divide each box by its L2 norm before the convolution, as the reference's data pipeline does
        (adds no parameters; makes the answer independent of the box's scale).
    output
        ``"linear"`` (published), ``"softplus"``, ``"exp"`` or ``"sigmoid"`` (into ``resolution_range_a``).
    resolution_range_a
        The trained range [lo, hi] in Angstrom (sets the initial output and the sigmoid's range).
    """

    fully_convolutional = False
    output_stride = 1

    def __init__(self, box_size: int = 13, filters: int = 32, kernel_size: int = 13, dense_width: int = 512,
                 dropout: float = 0.2, normalise_box: bool = True, output: str = "linear",
                 resolution_range_a: Sequence[float] = (1.9, 13.0)) -> None:
        super().__init__()
        if box_size % 2 == 0 or kernel_size % 2 == 0:
            raise LocresError(f"box_size and kernel_size must be odd, got {box_size} and {kernel_size}")
        self.lo_a, self.hi_a = _check_output(output, resolution_range_a)
        self.box_size = int(box_size)
        self.output = output
        self.normalise_box = bool(normalise_box)
        self.net_config = {
            "_target_": f"{__name__}.DeepResPaperNet", "box_size": box_size, "filters": filters,
            "kernel_size": kernel_size, "dense_width": dense_width, "dropout": dropout,
            "normalise_box": normalise_box, "output": output, "resolution_range_a": [self.lo_a, self.hi_a],
        }
        self.conv = nn.Conv3d(1, filters, kernel_size, padding=kernel_size // 2)
        self.dropout1 = nn.Dropout(dropout)
        self.dense = nn.Linear(filters * box_size**3, dense_width)
        self.dropout2 = nn.Dropout(dropout)
        self.out = nn.Linear(dense_width, 1)
        _init_output_bias(self.out, output, self.lo_a, self.hi_a)

    @property
    def receptive_field(self) -> int:
        return self.box_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 1, b, b, b)`` standardised boxes -> ``(B,)`` resolution in Angstrom."""
        _check_boxes(x, self.box_size)
        if self.normalise_box:
            x = x / (x.flatten(1).norm(dim=1).view(-1, 1, 1, 1, 1) + 1e-6)
        h = self.dropout1(F.relu(self.conv(x)))
        h = self.dropout2(F.relu(self.dense(h.flatten(1))))
        return _to_resolution(self.out(h).view(-1), self.output, self.lo_a, self.hi_a)


class CompactResNet(nn.Module):
    """Small fully convolutional resolution net: valid convolutions, then dense layers as 1x1x1 convs.

    Parameters
    ----------
    channels, kernel_sizes, strides
        One entry per conv block (Conv3d without padding, [BatchNorm3d], ReLU). The box size is the
        receptive field of the stack and must be odd; a box yields exactly one output.
    dense_widths
        Hidden widths of the head (each a 1x1x1 conv + ReLU + dropout); a final layer gives 1 value.
    dropout
        Dropout rate in the head (training only).
    norm
        ``"none"`` (default) or ``"batch"``. Batch norm is an affine per channel at inference, so the
        box/volume equivalence holds in eval mode, but its shift breaks the exact per-box scale
        invariance; keep ``"none"`` unless you know why.
    box_normalise
        Divide the trunk's features by the input box's RMS (exact per-box scale invariance; needs
        ``conv_bias=False`` and ``norm="none"`` to be exact).
    conv_bias
        Give the trunk convolutions a bias (off by default, see ``box_normalise``).
    output, resolution_range_a
        How the head's value becomes Angstrom (see :data:`OUTPUT_KINDS`) and the trained range.
    eps
        Floor of the box RMS, in units of the standardised map.
    """

    fully_convolutional = True

    def __init__(self, channels: Sequence[int] = (16, 16, 32, 32, 48, 64),
                 kernel_sizes: Sequence[int] = (5, 3, 3, 3, 3, 3),
                 strides: Sequence[int] = (1, 1, 2, 1, 1, 1), dense_widths: Sequence[int] = (64,),
                 dropout: float = 0.1, norm: str = "none",
                 box_normalise: bool = True, conv_bias: bool = False,
                 output: str = "exp", resolution_range_a: Sequence[float] = (2.0, 15.0),
                 eps: float = 1e-3) -> None:
        super().__init__()
        channels, kernel_sizes, strides = list(channels), list(kernel_sizes), list(strides)
        dense_widths = list(dense_widths)
        if not (len(channels) == len(kernel_sizes) == len(strides)) or not channels:
            raise LocresError("channels, kernel_sizes and strides must be non-empty lists of the same length")
        if norm not in NORM_KINDS:
            raise LocresError(f"unknown norm '{norm}': choose one of {', '.join(NORM_KINDS)}")
        if any(k < 1 for k in kernel_sizes) or any(s < 1 for s in strides):
            raise LocresError("kernel sizes and strides must be positive")
        self.lo_a, self.hi_a = _check_output(output, resolution_range_a)
        self.output = output
        self.box_normalise = bool(box_normalise)
        self.eps = float(eps)
        self.strides = strides
        # receptive field = box size: walk back from one output voxel
        size = 1
        for k, s in zip(reversed(kernel_sizes), reversed(strides)):
            size = (size - 1) * s + k
        if size % 2 == 0:
            raise LocresError(f"the conv stack's receptive field is {size} (even): "
                              "choose kernels giving an odd box")
        self.box_size = size
        self.output_stride = math.prod(strides)
        self.net_config = {
            "_target_": f"{__name__}.CompactResNet", "channels": channels, "kernel_sizes": kernel_sizes,
            "strides": strides, "dense_widths": dense_widths, "dropout": dropout, "norm": norm,
            "box_normalise": box_normalise, "conv_bias": conv_bias, "output": output,
            "resolution_range_a": [self.lo_a, self.hi_a], "eps": eps,
        }
        self.convs = nn.ModuleList()
        self.norms = nn.ModuleList()
        c_in = 1
        for c, k in zip(channels, kernel_sizes):
            conv = nn.Conv3d(c_in, c, k, bias=conv_bias)
            nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
            self.convs.append(conv)
            self.norms.append(nn.BatchNorm3d(c) if norm == "batch" else nn.Identity())
            c_in = c
        self.head = nn.ModuleList()
        for w in dense_widths:
            self.head.append(nn.Conv3d(c_in, w, 1))
            c_in = w
        self.out = nn.Conv3d(c_in, 1, 1)
        self.dropout = nn.Dropout(dropout)
        _init_output_bias(self.out, output, self.lo_a, self.hi_a)

    @property
    def receptive_field(self) -> int:
        return self.box_size

    def _box_rms(self, x: torch.Tensor, stride: int) -> torch.Tensor:
        """RMS of every b^3 box of ``x`` (valid), at box starts 0, stride, 2*stride... (separable mean)."""
        b = self.box_size
        m = x * x
        m = F.avg_pool3d(m, (b, 1, 1), stride=(stride, 1, 1))
        m = F.avg_pool3d(m, (1, b, 1), stride=(1, stride, 1))
        m = F.avg_pool3d(m, (1, 1, b), stride=(1, 1, stride))
        return torch.sqrt(m.clamp(min=0.0) + self.eps**2)

    def _run(self, x: torch.Tensor, dense: bool) -> torch.Tensor:
        """Trunk + head over ``x`` (B, 1, D, H, W): dense (dilated, stride 1) or at the natural stride."""
        if x.dim() != 5 or x.shape[1] != 1:
            raise LocresError(f"the net takes (B, 1, D, H, W) input, got {tuple(x.shape)}")
        if min(x.shape[2:]) < self.box_size:
            raise LocresError(f"input {tuple(x.shape[2:])} is smaller than the net's box ({self.box_size})")
        h = x
        dilation = 1
        for conv, norm, s in zip(self.convs, self.norms, self.strides):
            if dense:
                h = F.conv3d(h, conv.weight, conv.bias, stride=1, dilation=dilation)
                dilation *= s
            else:
                h = conv(h) if s == 1 else F.conv3d(h, conv.weight, conv.bias, stride=s)
            h = F.relu(norm(h))
        if self.box_normalise:
            rms = self._box_rms(x, 1 if dense else self.output_stride)
            if dense:
                h = h / rms
            else:
                h = h / rms[..., : h.shape[2], : h.shape[3], : h.shape[4]]
        for layer in self.head:
            h = self.dropout(F.relu(layer(h)))
        return _to_resolution(self.out(h), self.output, self.lo_a, self.hi_a)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 1, b, b, b)`` standardised boxes -> ``(B,)`` resolution in Angstrom."""
        _check_boxes(x, self.box_size)
        return self._run(x, dense=False).reshape(-1)

    def forward_volume(self, x: torch.Tensor) -> torch.Tensor:
        """Every box position of ``x`` (B, 1, D, H, W) -> ``(B, 1, D-b+1, H-b+1, W-b+1)`` in Angstrom.

        Output ``[..., i, j, k]`` is the net's answer for the box whose corner is ``(i, j, k)`` (centre
        ``(i, j, k) + b // 2``). Strided layers are run with stride 1 and the later layers dilated, so
        the result equals box-by-box evaluation at every position.
        """
        return self._run(x, dense=True)

    def forward_volume_coarse(self, x: torch.Tensor) -> torch.Tensor:
        """Like :meth:`forward_volume` but only at box corners that are multiples of ``output_stride``.

        Returns ``forward_volume(x)[..., ::s, ::s, ::s]`` (s = ``output_stride``), about s^3 times
        cheaper in the layers after the strided one.
        """
        return self._run(x, dense=False)


def count_parameters(net: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in net.parameters() if p.requires_grad)
