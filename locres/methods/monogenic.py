"""Monogenic signal tools shared by MonoRes, MonoDir and MonoTomo.

The monogenic amplitude of a band of a map measures, at every voxel, how much signal the map holds at
frequencies above a given one. It is built in Fourier space from the Riesz transform (the 3-D analogue of
the Hilbert transform) and is evaluated here for several bands and several volumes at once, in float32,
with torch on the requested device.

Conventions (see ``specs/monogenic.md`` section 0): arrays are (z, y, x); spectra are unshifted real FFTs
(``torch.fft.rfftn``); frequencies are *digital* (cycles per voxel, 0..0.5) and measured per axis with that
axis' own length, so non-cubic boxes are handled exactly.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch

from locres.core.devices import resolve_device as resolve_torch_device_name
from locres.core.fourier import frequency_grid_per_a
from locres.errors import LocresError

log = logging.getLogger(__name__)


def resolve_device(device: str | None) -> torch.device:
    """:func:`locres.core.devices.resolve_device` as a ``torch.device``."""
    return torch.device(resolve_torch_device_name(device))


SMALL_VOLUME_VOXELS = 600_000


@contextmanager
def threads_for_volume(shape_zyx: tuple[int, ...], device: str | None):
    """Run small CPU volumes (< ``SMALL_VOLUME_VOXELS``) on one torch thread, restoring the count after.

    On small grids the FFTs and element-wise ops take well under a millisecond and thread hand-offs
    dominate; on a busy machine two threads were measured 14x slower than one on a 40^3 map.
    """
    small = int(np.prod(shape_zyx)) < SMALL_VOLUME_VOXELS and resolve_device(device).type == "cpu"
    old = torch.get_num_threads()
    if small and old > 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if small and old > 1:
            torch.set_num_threads(old)


@dataclass
class Band:
    """One band of the sweep: high pass from ``f_high_pass`` to ``f``, amplitude low pass to ``f_low_pass``.

    All three are digital frequencies (cycles/voxel); ``resolution_a`` is the resolution the band tests.
    """

    f: float
    f_high_pass: float
    f_low_pass: float
    resolution_a: float


def reference_fftfreq(n: int) -> np.ndarray:
    """Signed digital frequencies of the n FFT indices as the reference programs number them: index n/2
    of an even axis is +0.5 (Xmipp's ``FFT_IDX2DIGFREQ``), where ``np.fft.fftfreq`` says -0.5.

    The sign matters to the Riesz components and to MonoDir's cones on the Nyquist planes of z and y (on
    x, the half axis of the rFFT, both say +0.5): with -0.5 the z component's Nyquist plane enters with the
    other sign, and a cone around a direction with z and y parts takes in other Nyquist bins (800-1100
    of ~15000 in a 112^3 box). That moved MonoDir's noise thresholds by 0.1-2 %, and so ~10 % of its
    per-direction resolutions by one step, against the original."""
    f = np.fft.fftfreq(int(n))
    if n % 2 == 0:
        f[n // 2] = 0.5
    return f


class FourierGrid:
    """Digital frequencies of the rFFT of ``shape_zyx`` on ``device`` (Nyquist signs as the reference:
    :func:`reference_fftfreq`).

    Attributes
    ----------
    norm : torch.Tensor, (Z, Y, X//2+1) float32
        |u| in cycles/voxel.
    riesz : torch.Tensor, (3, Z, Y, X//2+1) float32
        u_k / |u| for k = z, y, x (0 at DC): the Riesz transform multiplies the spectrum by -i times these.
    """

    def __init__(self, shape_zyx: tuple[int, int, int], device: torch.device | str = "cpu",
                 riesz: bool = True):
        self.shape = tuple(int(n) for n in shape_zyx)
        self.device = torch.device(device)
        nz, ny, nx = self.shape
        norm = frequency_grid_per_a(self.shape, 1.0)  # digital |u| from the shared grid
        self.norm = torch.from_numpy(norm).to(self.device)
        if not riesz:  # |u| only (smoothing)
            return
        axes = [reference_fftfreq(nz), reference_fftfreq(ny), np.fft.rfftfreq(nx)]
        inv = np.where(norm > 0, 1.0 / np.maximum(norm, 1e-12), 0.0).astype(np.float32)
        comps = [axes[0][:, None, None] * inv, axes[1][None, :, None] * inv, axes[2][None, None, :] * inv]
        self.riesz = torch.from_numpy(np.stack([c.astype(np.float32) for c in comps])).to(self.device)

    def component(self, k: int) -> torch.Tensor:
        """u_k for axis k (0=z, 1=y, 2=x) broadcast over the grid, cycles/voxel."""
        return self.riesz[k] * self.norm


def highpass_transfer(norm: torch.Tensor, f: float, f_high_pass: float) -> torch.Tensor:
    """0 below ``f_high_pass``, raised cosine up to ``f``, 1 above (digital frequencies)."""
    width = max(f - f_high_pass, 1e-9)
    t = (norm - f_high_pass).div_(width).clamp_(0.0, 1.0)  # in place: one temporary, same values
    return t.mul_(torch.pi).cos_().neg_().add_(1.0).mul_(0.5)


def lowpass_transfer(norm: torch.Tensor, f: float, f_low_pass: float) -> torch.Tensor:
    """1 below ``f``, raised cosine down to 0 at ``f_low_pass``, 0 above (digital frequencies)."""
    width = max(f_low_pass - f, 1e-9)
    t = (norm - f).div_(width).clamp_(0.0, 1.0)
    return t.mul_(torch.pi).cos_().add_(1.0).mul_(0.5)


def to_spectrum(volumes: np.ndarray | torch.Tensor, device: torch.device | str) -> torch.Tensor:
    """rFFT of one volume (Z, Y, X) or a stack (C, Z, Y, X), float32 -> complex64 on ``device``."""
    t = torch.as_tensor(np.asarray(volumes, dtype=np.float32) if isinstance(volumes, np.ndarray) else volumes)
    t = t.to(device=device, dtype=torch.float32)
    return torch.fft.rfftn(t, dim=(-3, -2, -1))


def monogenic_amplitude(spectra: torch.Tensor, grid: FourierGrid, bands: list[Band],
                        weight: torch.Tensor | None = None,
                        amplitude_taper: torch.Tensor | None = None) -> torch.Tensor:
    """Low-passed monogenic amplitude of several volumes in several bands at once.

    Parameters
    ----------
    spectra : torch.Tensor, (C, Z, Y, X//2+1) complex64
        rFFTs of C volumes (e.g. signal and noise) on ``grid.device``.
    grid : FourierGrid
        Frequencies for the volumes' shape.
    bands : list of Band
        B bands; for each, the spectrum is high-passed (raised cosine from ``f_high_pass`` to ``f``),
        the amplitude sqrt(s^2 + |Riesz|^2) is taken in real space and low-passed (raised cosine from
        ``f`` to ``f_low_pass``).
    weight : torch.Tensor, (Z, Y, X//2+1) float32, optional
        Extra Fourier weight applied first (a directional cone).
    amplitude_taper : torch.Tensor, (Z, Y, X) float32, optional
        Real-space weight on the amplitude before its low pass (MonoDir's soft edge at the box border).

    Returns
    -------
    torch.Tensor, (C, B, Z, Y, X) float32
        The amplitude maps.
    """
    if spectra.ndim != 4:
        raise LocresError("monogenic_amplitude expects spectra shaped (C, Z, Y, X//2+1)")
    shape = grid.shape
    hp = torch.stack([highpass_transfer(grid.norm, b.f, b.f_high_pass) for b in bands])  # (B, ...)
    if weight is not None:
        hp = hp * weight
    filtered = spectra[:, None] * hp[None]  # (C, B, ...)
    del hp
    dims = (-3, -2, -1)
    amp = torch.fft.irfftn(filtered, s=shape, dim=dims)
    amp = amp * amp
    for k in range(3):
        # Riesz component k: spectrum times -i u_k/|u|, i.e. (re, im) -> (im u_k/|u|, -re u_k/|u|)
        comp = torch.fft.irfftn(filtered * (-1j * grid.riesz[k]), s=shape, dim=dims)
        amp.addcmul_(comp, comp)
        del comp
    del filtered
    amp.sqrt_()
    if amplitude_taper is not None:
        amp.mul_(amplitude_taper)
    lp = torch.stack([lowpass_transfer(grid.norm, b.f, b.f_low_pass) for b in bands])
    return torch.fft.irfftn(torch.fft.rfftn(amp, dim=dims) * lp[None], s=shape, dim=dims)


def full_band_amplitude(volume: np.ndarray, device: torch.device | str = "cpu") -> np.ndarray:
    """Monogenic amplitude of the whole spectrum (no high or low pass), (Z, Y, X) float32."""
    grid = FourierGrid(volume.shape, device)
    spec = to_spectrum(volume, grid.device)
    spec[..., 0, 0, 0] = 0  # drop the mean
    amp = torch.fft.irfftn(spec, s=grid.shape) ** 2
    for k in range(3):
        amp += torch.fft.irfftn(spec * (-1j * grid.riesz[k]), s=grid.shape) ** 2
    return amp.sqrt_().cpu().numpy()


def gaussian_smooth(volume: np.ndarray | torch.Tensor, sigma_ref: float,
                    grid: FourierGrid | None = None) -> torch.Tensor:
    """Gaussian smoothing as the reference does it: FFT times exp(-pi^2 sigma^2 |u|^2).

    ``sigma_ref`` is in the reference's convention (a Gaussian of std ``sigma_ref / sqrt(2)`` voxels).
    Returns a float32 tensor on the grid's device (periodic boundaries).
    """
    t = torch.as_tensor(volume, dtype=torch.float32)
    if grid is None:
        grid = FourierGrid(tuple(t.shape[-3:]), t.device)
    t = t.to(grid.device)
    g = torch.exp(-(torch.pi**2) * sigma_ref**2 * grid.norm**2)
    return torch.fft.irfftn(torch.fft.rfftn(t, dim=(-3, -2, -1)) * g, s=grid.shape, dim=(-3, -2, -1))


def smooth_within(values: torch.Tensor, support: torch.Tensor, sigma_ref: float,
                  grid: FourierGrid, support_smoothed: torch.Tensor | None = None) -> torch.Tensor:
    """Gaussian average of ``values`` over the voxels of ``support`` only (normalised convolution).

    Voxels outside ``support`` do not pull the average (the reference smooths the zeros outside the mask
    in, which drags boundary values toward 0 A; we do not copy that). ``support_smoothed``: the
    smoothed support from an earlier call with the same support and sigma (saves two FFTs).
    """
    w = support.to(torch.float32)
    num = gaussian_smooth(values * w, sigma_ref, grid)
    den = gaussian_smooth(w, sigma_ref, grid) if support_smoothed is None else support_smoothed
    return torch.where(den > 1e-3, num / den.clamp_min(1e-3), values)


def reference_normal_quantile(p: float) -> float:
    """The standard normal quantile as the reference computes it (its ``icdf_gauss``): the rational
    approximation of Abramowitz & Stegun 26.2.23, |error| < 4.5e-4 (1.64521 at p = 0.95, against the
    exact 1.64485). The ports use it for their critical values (MonoRes' z test, MonoDir's outlier test),
    so that a voxel on the edge of a test falls on the reference's side of it."""
    if not 0.0 < p < 1.0:
        raise LocresError(f"significance must lie in (0, 1), got {p}")
    c0, c1, c2 = 2.515517, 0.802853, 0.010328
    d1, d2, d3 = 1.432788, 0.189269, 0.001308
    t = float(np.sqrt(-2.0 * np.log(min(p, 1.0 - p))))
    z = t - ((c2 * t + c1) * t + c0) / (((d3 * t + d2) * t + d1) * t + 1.0)
    return z if p >= 0.5 else -z


def percentile_threshold(values: torch.Tensor, p: float) -> float:
    """sorted(values)[int(len(values) * p)] (no interpolation), as the reference."""
    n = int(values.numel())
    if n == 0:
        raise LocresError("no noise voxels to set a threshold from: give a mask that leaves room around "
                          "the particle, or half maps")
    k = min(int(n * p), n - 1) + 1
    return float(torch.kthvalue(values.reshape(-1).float().cpu(), k).values)


def sweep_step(active: torch.Tensor, above: torch.Tensor, res: torch.Tensor, fails: torch.Tensor,
               resolution_a: float, fallback_resolution_a: float
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One step of the per-voxel sweep shared by MonoRes, MonoDir and MonoTomo.

    Active voxels whose amplitude is ``above`` the noise threshold take ``resolution_a`` and reset their
    failure count; the others count a failure, and after two in a row they take
    ``fallback_resolution_a`` (the resolution two steps back) and leave the sweep.

    Returns the updated ``(active, res, fails)``.
    """
    passed = active & above
    failed = active & ~passed
    res = torch.where(passed, resolution_a, res)
    fails = torch.where(passed, 0, fails + failed.to(torch.int8))
    done = failed & (fails >= 2)
    res = torch.where(done, fallback_resolution_a, res)
    return active & ~done, res, fails


def snap_index(resolution_a: float, voxel_size_a: float, n: int) -> int:
    """Index on an n-point frequency axis nearest to ``voxel_size_a / resolution_a``."""
    return int(np.floor(n * voxel_size_a / resolution_a + 0.5))


def check_resolution_range(min_resolution_a: float, max_resolution_a: float, voxel_size_a: float,
                           what: str = "resolution range") -> None:
    """Raise a one-line LocresError for a range beyond Nyquist or inverted."""
    nyquist = 2.0 * voxel_size_a
    if min_resolution_a < nyquist - 1e-6:
        raise LocresError(f"{what}: min_resolution_a={min_resolution_a:g} A is beyond Nyquist "
                          f"({nyquist:g} A at {voxel_size_a:g} A/voxel); set it to {nyquist:g} A or more")
    if max_resolution_a <= min_resolution_a:
        raise LocresError(f"{what}: max_resolution_a={max_resolution_a:g} A must be coarser (larger) than "
                          f"min_resolution_a={min_resolution_a:g} A; swap or widen them")


def edge_taper(shape_zyx: tuple[int, int, int], width_px: float = 7.0) -> np.ndarray:
    """Xmipp MonoDir's soft spherical edge: 1 to radius N/2 - width, raised cosine to 0 at N/2, 0 beyond.

    N is the smallest box edge (the reference assumes a cube); radius from index N//2 per axis. (Z, Y, X)
    float32.
    """
    siz = min(shape_zyx) // 2
    r = centred_radius(shape_zyx)
    limit = siz - width_px
    t = np.clip((r - limit) / width_px, 0.0, 1.0)
    return np.where(r > siz, 0.0, 0.5 * (1.0 + np.cos(np.pi * t))).astype(np.float32)


def centred_radius(shape_zyx: tuple[int, int, int]) -> np.ndarray:
    """Distance in voxels from the box centre (index N//2 on every axis), (Z, Y, X) float32."""
    zz, yy, xx = [np.arange(n, dtype=np.float32) - n // 2 for n in shape_zyx]
    return np.sqrt(zz[:, None, None] ** 2 + yy[None, :, None] ** 2 + xx[None, None, :] ** 2)


def radius_limit(volume: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    """(Rprot, radius limit) in voxels: the protein radius and where a masked-out 'cliff' starts.

    Rprot is the distance from the box centre of the farthest mask voxel. Walking one-voxel shells outward
    from Rprot, the first shell whose variance falls below 1 % of the previous one's (a map that was
    masked to zero outside a sphere) sets the limit to the shell before it; with no cliff the limit is the
    largest radius in the box.
    """
    radius = centred_radius(volume.shape)
    rprot = float(radius[mask].max()) if mask.any() else 0.0
    shell = np.rint(radius).astype(np.int32)
    rmax = int(shell.max())
    counts = np.bincount(shell.ravel(), minlength=rmax + 1)
    v = volume.astype(np.float64).ravel()
    s1 = np.bincount(shell.ravel(), weights=v, minlength=rmax + 1)
    s2 = np.bincount(shell.ravel(), weights=v * v, minlength=rmax + 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        var = s2 / np.maximum(counts, 1) - (s1 / np.maximum(counts, 1)) ** 2
    start = int(np.ceil(rprot))
    limit = float(rmax)
    for rad in range(max(start, 1), rmax + 1):
        if counts[rad] == 0 or counts[rad - 1] == 0:
            continue
        if var[rad - 1] > 0 and var[rad] / var[rad - 1] < 0.01:
            limit = float(rad - 1)
            break
    return rprot, limit


def _full_odd_weight(half: torch.Tensor, nx: int) -> torch.Tensor:
    """Full-grid weight w (Z, Y, X) equal in effect to ``irfftn`` of the half-grid multiplier -i * ``half``.

    ``irfftn`` reads a half spectrum as the half of a Hermitian one: a bin in the open half stands for
    its mirror too (conjugated), and on the self-mirror planes (kx = 0 and, for even X, kx = X/2) only the
    Hermitian part counts. Building the full multiplier the same way keeps the packed transforms below
    equal to the real ones, Nyquist bins included.
    """
    nz, ny, h = half.shape
    dev = half.device
    zi = (-torch.arange(nz, device=dev)) % nz
    yi = (-torch.arange(ny, device=dev)) % ny
    mirrored = half[zi][:, yi]  # (-kz, -ky) at the same kx
    full = torch.empty((nz, ny, nx), dtype=half.dtype, device=dev)
    full[..., :h] = half
    if nx > h:
        xi = nx - torch.arange(h, nx, device=dev)
        full[..., h:] = -mirrored[..., xi]
    planes = [0] + ([nx // 2] if nx % 2 == 0 else [])
    for j in planes:
        full[..., j] = 0.5 * (half[..., j] - mirrored[..., j])
    return full


class PackedMonogenic:
    """Low-passed monogenic amplitudes of two real volumes with full complex FFTs, two outputs per FFT.

    Equal (to float rounding) to :func:`monogenic_amplitude` on the pair, at about half its transforms:
    for a real volume v with spectrum V, the high-passed map s and its Riesz components r_x, r_y, r_z
    come out in pairs, ``ifftn(V h (1 + w_x)) = s + i r_x`` and ``ifftn(V h (w_y - i w_z)) = r_z + i r_y``
    (h the high pass, w_k = u_k/|u| made Hermitian as ``irfftn`` reads it); the two amplitudes are then
    low-passed each by a real forward and inverse transform. Four complex and four real transforms per band
    instead of ten inverse and two forward real ones.

    Speed: the products ``V (1 + w_x)`` and ``V (w_y - i w_z)`` are made once (the band then multiplies
    them by h alone, one pass each). (Transforming only the box of the spectrum that the amplitude's
    low pass keeps, axis by axis, was tried and measured slower beyond f = 0.1: torch's one-axis FFTs
    along strided axes cost more than the whole 3-D transform.)

    Parameters
    ----------
    volume_a, volume_b : (Z, Y, X) float32
        The two volumes (e.g. signal and noise); ``volume_b`` None: one volume (MonoRes on one map),
        whose s + i r_x and r_z + i r_y still take one complex transform each instead of two real ones.
    device : torch.device or str
    riesz_y : str
        "u_y" (the Riesz transform); "stale_ux": MonoTomo's original multiplies the y component by the
        x frequency its previous loop ended on (``(X // 2) / X``, 0.5 for even X) instead of u_y, so its
        "r_y" is that constant times the spectrum over |u|; kept only to show how much of the two
        programs' disagreement that accounts for.
    """

    def __init__(self, volume_a: np.ndarray, volume_b: np.ndarray | None = None,
                 device: torch.device | str = "cpu", riesz_y: str = "u_y"):
        if riesz_y not in ("u_y", "stale_ux"):
            raise LocresError(f"riesz_y must be 'u_y' or 'stale_ux', got {riesz_y!r}")
        half = FourierGrid(volume_a.shape, device)
        self.shape = half.shape
        self.device = half.device
        nx = self.shape[2]
        m1 = _full_odd_weight(half.riesz[2], nx).add_(1.0)
        w_y = half.riesz[1]
        if riesz_y == "stale_ux":
            inv = torch.where(half.norm > 0, 1.0 / half.norm.clamp_min(1e-12), 0.0)
            w_y = (nx // 2) / nx * inv
        m2 = torch.complex(_full_odd_weight(w_y, nx), -_full_odd_weight(half.riesz[0], nx))
        del half
        fz, fy, fx = [np.fft.fftfreq(n).astype(np.float32) for n in self.shape]
        norm = np.sqrt(fz[:, None, None] ** 2 + fy[None, :, None] ** 2 + fx[None, None, :] ** 2)
        self.norm = torch.from_numpy(norm.astype(np.float32)).to(self.device)
        if volume_b is None:  # one volume: its full spectrum, the low pass by real transforms
            spectra = (torch.fft.fftn(torch.as_tensor(volume_a, dtype=torch.float32).to(self.device)),)
        else:
            packed = torch.complex(torch.as_tensor(volume_a, dtype=torch.float32),
                                   torch.as_tensor(volume_b, dtype=torch.float32)).to(self.device)
            both = torch.fft.fftn(packed)
            del packed
            flip = both.conj()[self._mirror_index()]
            spectra = (0.5 * (both + flip), -0.5j * (both - flip))  # V_a, V_b (Hermitian)
            del both, flip
        # real-by-complex products on the (re, im) view: no promoted copy of the real factor
        self.products = [(torch.view_as_complex(torch.view_as_real(v) * m1[..., None]), v * m2)
                         for v in spectra]

    def _mirror_index(self) -> tuple[torch.Tensor, ...]:
        idx = [(-torch.arange(n, device=self.device)) % n for n in self.shape]
        return (idx[0][:, None, None], idx[1][None, :, None], idx[2][None, None, :])

    def _amplitude(self, products: tuple[torch.Tensor, torch.Tensor], hp: torch.Tensor) -> torch.Tensor:
        amp = None
        for prod in products:  # s + i r_x, then r_z + i r_y: amp = sqrt(s^2 + r_x^2 + r_z^2 + r_y^2)
            filtered = torch.view_as_complex(torch.view_as_real(prod) * hp[..., None])
            c = torch.view_as_real(torch.fft.ifftn(filtered))
            del filtered
            if amp is None:
                amp = c[..., 0].square()
            else:
                amp.addcmul_(c[..., 0], c[..., 0])
            amp.addcmul_(c[..., 1], c[..., 1])
            del c
        return amp.sqrt_()

    def amplitudes(self, band: Band, amplitude_taper: torch.Tensor | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The volumes' low-passed monogenic amplitudes in ``band``, each (Z, Y, X) float32.

        With one volume the second is None (its low pass is one real forward and one real inverse FFT).
        """
        hp = highpass_transfer(self.norm, band.f, band.f_high_pass)
        a = self._amplitude(self.products[0], hp)
        if len(self.products) == 1:
            del hp
            if amplitude_taper is not None:
                a.mul_(amplitude_taper)
            nxh = self.shape[2] // 2 + 1
            lp = lowpass_transfer(self.norm[..., :nxh], band.f, band.f_low_pass)
            spec = torch.fft.rfftn(a)
            del a
            spec = torch.view_as_complex(torch.view_as_real(spec).mul_(lp[..., None]))
            return torch.fft.irfftn(spec, s=self.shape), None
        b = self._amplitude(self.products[1], hp)
        del hp
        if amplitude_taper is not None:
            a.mul_(amplitude_taper)
            b.mul_(amplitude_taper)
        # two real transforms each (the transfer on the half grid) beat one packed complex pair here:
        # measured ~35 % faster on 64 x 256 x 256, the same numbers to float rounding
        nxh = self.shape[2] // 2 + 1
        lp = lowpass_transfer(self.norm[..., :nxh], band.f, band.f_low_pass)[..., None]
        out = []
        for amp in (a, b):
            spec = torch.view_as_real(torch.fft.rfftn(amp)).mul_(lp)
            out.append(torch.fft.irfftn(torch.view_as_complex(spec), s=self.shape))
        del a, b
        return out[0], out[1]
