"""Half tomograms with known local resolution: particles in a slab, noise that varies across X-Y.

Each particle is a cloud of random point "atoms" inside a sphere, low-passed (raised cosine, no power
beyond 1/resolution) to its own resolution in a small box and pasted into a slab-shaped tomogram. The two
half tomograms share the particles and carry independent Gaussian noise whose standard deviation grows
linearly along X (and a little along Y), so a single global noise threshold is wrong on one side.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from locres.core.fourier import lowpass_raised_cosine
from locres.errors import LocresError

log = logging.getLogger(__name__)


@dataclass
class TomogramPhantom:
    """A simulated half-tomogram pair with its ground truth, all (Z, Y, X) float32.

    ``truth_a`` holds each particle's resolution (Angstrom) inside its sphere and 0 elsewhere;
    ``particles`` lists ``{"centre_zyx", "radius_px", "resolution_a"}``; ``noise_sigma_yx`` is the
    noise standard deviation of one half tomogram over the X-Y plane, (Y, X).
    """

    half1: np.ndarray
    half2: np.ndarray
    clean: np.ndarray
    truth_a: np.ndarray
    voxel_size_a: float
    particles: list[dict] = field(default_factory=list)
    noise_sigma_yx: np.ndarray | None = None


def _particle(radius_px: int, resolution_a: float, voxel_size_a: float, rng: np.random.Generator,
              atoms_per_voxel: float = 0.15) -> np.ndarray:
    """One low-passed point-cloud particle in a cube of side 2*(radius+pad)+1, peak-normalised."""
    pad = max(4, int(np.ceil(resolution_a / voxel_size_a)))
    side = 2 * (radius_px + pad) + 1
    c = side // 2
    n_atoms = int(atoms_per_voxel * 4.0 / 3.0 * np.pi * radius_px**3) + 1
    pts = rng.uniform(-radius_px, radius_px, size=(4 * n_atoms, 3))
    pts = pts[np.linalg.norm(pts, axis=1) <= radius_px][:n_atoms]
    box = np.zeros((side, side, side), np.float32)
    idx = np.clip(np.rint(pts + c).astype(int), 0, side - 1)
    np.add.at(box, tuple(idx.T), 1.0)
    box = lowpass_raised_cosine(box, voxel_size_a, resolution_a)
    return box / max(float(box.std()), 1e-12)


def simulate_half_tomograms(shape_zyx: tuple[int, int, int] = (32, 128, 128), voxel_size_a: float = 10.0,
                            resolutions_a: tuple[float, ...] = (25.0, 35.0, 50.0),
                            particle_radius_px: int = 8, noise_sigma_range: tuple[float, float] = (0.3, 0.9),
                            seed: int = 0) -> TomogramPhantom:
    """Simulate a half-tomogram pair with one particle per entry of ``resolutions_a``.

    Parameters
    ----------
    shape_zyx : (Z, Y, X)
        Tomogram shape, e.g. (128, 512, 512) or (32, 128, 128); Z is the thin slab axis.
    voxel_size_a : float
        Voxel size in Angstrom.
    resolutions_a : tuple of float
        Resolution (Angstrom) of each particle; must be at least Nyquist (2 voxels).
    particle_radius_px : int
        Particle radius in voxels.
    noise_sigma_range : (low, high)
        Noise std of one half (relative to a particle's std) at the two X ends; it varies linearly in X
        and by a further 20 % in Y.
    seed : int
        Random seed.

    Returns
    -------
    TomogramPhantom
    """
    nz, ny, nx = shape_zyx
    nyq = 2.0 * voxel_size_a
    if min(resolutions_a) < nyq:
        raise LocresError(f"particle resolution {min(resolutions_a)} A is beyond Nyquist ({nyq} A)")
    rng = np.random.default_rng(seed)
    clean = np.zeros(shape_zyx, np.float32)
    truth = np.zeros(shape_zyx, np.float32)
    rp = int(particle_radius_px)
    margin = rp + 12
    if nz < 2 * (rp + 2) or ny < 2 * margin or nx < 2 * margin:
        raise LocresError(f"tomogram {shape_zyx} too small for particles of radius {rp} px")
    particles: list[dict] = []
    zz, yy, xx = np.ogrid[:nz, :ny, :nx]
    for res in resolutions_a:
        for _ in range(1000):  # place without overlap
            centre = (nz // 2, int(rng.integers(margin, ny - margin)), int(rng.integers(margin, nx - margin)))
            if all(np.hypot(centre[1] - p["centre_zyx"][1], centre[2] - p["centre_zyx"][2]) > 2 * rp + 6
                   for p in particles):
                break
        else:
            raise LocresError(f"cannot place {len(resolutions_a)} particles in a {shape_zyx} tomogram")
        box = _particle(rp, float(res), voxel_size_a, rng)
        h = box.shape[0] // 2
        sl = tuple(slice(c - h, c + h + 1) for c in centre)
        src = tuple(slice(max(0, -(c - h)), box.shape[0] - max(0, c + h + 1 - n))
                    for c, n in zip(centre, shape_zyx))
        dst = tuple(slice(max(0, s.start), min(n, s.stop)) for s, n in zip(sl, shape_zyx))
        clean[dst] += box[src]
        inside = (zz - centre[0]) ** 2 + (yy - centre[1]) ** 2 + (xx - centre[2]) ** 2 <= rp**2
        truth[inside] = res
        particles.append({"centre_zyx": list(centre), "radius_px": rp, "resolution_a": float(res)})
    lo, hi = noise_sigma_range
    sig_x = lo + (hi - lo) * np.linspace(0.0, 1.0, nx, dtype=np.float32)
    sig_y = 1.0 + 0.2 * np.linspace(-1.0, 1.0, ny, dtype=np.float32)
    sigma_yx = (sig_y[:, None] * sig_x[None, :]).astype(np.float32)
    half1 = clean + sigma_yx[None] * rng.standard_normal(shape_zyx, dtype=np.float32)
    half2 = clean + sigma_yx[None] * rng.standard_normal(shape_zyx, dtype=np.float32)
    log.info("simulated half tomograms %s with %d particles", shape_zyx, len(particles))
    return TomogramPhantom(half1=half1.astype(np.float32), half2=half2.astype(np.float32), clean=clean,
                           truth_a=truth, voxel_size_a=float(voxel_size_a), particles=particles,
                           noise_sigma_yx=sigma_yx)
