"""ResMap building blocks: ladder, steerable basis, per-level operators, null distribution, BY-FDR.

Everything here is small (at most ``w^3 x 20`` matrices) and runs in float64 NumPy; the whole-map
work lives in :mod:`locres.methods.resmap`.

The local model at trial resolution ``res`` (Angstrom) around a voxel is, on the ``w^3`` window
``t = a * vx * i`` (``i = -r..r`` per axis, ``a = (2 pi / res) sqrt(2/5)``, ``r = ceil(res / 2 vx)``),
weighted by ``k(t) = exp(-|t|^2)``:

    y(t) ~ c0 + sum_6 g_j (4 (d_j.t)^2 - 2) + sum_10 h_j ((e_j.t)^3 - 2.254 (e_j.t))

(G2 and H2 steerable filters along the 6 icosahedral axes ``d_j`` and the 10 dodecahedral axes
``e_j``). Every column is ``k^{1/2}`` times a polynomial of total degree <= 3, so the weighted design
lies in the 20-dim space spanned by the separable functions ``q_a(z) q_b(y) q_c(x)`` (``a+b+c <= 3``,
``q_a`` orthonormal 1-D polynomials under the weight ``exp(-s^2)``). All operators are written in
those 20 coordinates, and the whole-map responses to the 20 separable kernels are cheap FFT passes.
"""

from __future__ import annotations

import functools
import itertools
import logging
import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from locres.errors import LocresError

log = logging.getLogger(__name__)

PHI = (1.0 + math.sqrt(5.0)) / 2.0
H2_LINEAR = 2.254
# the 20 separable degree triples (a, b, c) with a + b + c <= 3; index 0 is the constant
DEGREES = [d for n in range(4) for d in itertools.product(range(4), repeat=3) if sum(d) == n]


def default_min_res_a(voxel_size_a: float) -> float:
    """Finest trial resolution: 2.2 voxels, rounded to 0.1 Angstrom (the reference default)."""
    return round(22.0 * voxel_size_a) / 10.0


def default_max_res_a(voxel_size_a: float) -> float:
    """Coarsest trial resolution: 10 voxels, rounded to 0.5 Angstrom.

    The reference stops at 4 voxels (``round(8 vx) / 2``), which leaves everything coarser than
    about 4 A unassigned at 1 A/voxel; 10 voxels covers the usual 2.5-10 A range of real maps.
    """
    return round(20.0 * voxel_size_a) / 2.0


def resolution_ladder_a(voxel_size_a: float, min_res_a: float | None = None, max_res_a: float | None = None,
                        step_a: float = 1.0) -> list[float]:
    """Trial resolutions from fine to coarse: ``min, min + step, ...`` up to the first one >= ``max``.

    A ``min_res_a`` at or below 2.2 voxels is raised to :func:`default_min_res_a` (a window then has
    too few samples per axis for a cubic fit). Levels are ``min + k * step`` rounded to 1e-6 A (the
    reference accumulates floats).
    """
    vx = float(voxel_size_a)
    if not vx > 0:
        raise LocresError(f"voxel size must be positive, got {voxel_size_a} A: set input.voxel_size")
    lo = default_min_res_a(vx) if min_res_a is None else float(min_res_a)
    if lo <= 2.2 * vx:
        if min_res_a is not None:
            log.warning("min_res_a %.3g A is at or below 2.2 voxels; using %.3g A", lo, default_min_res_a(vx))
        lo = default_min_res_a(vx)
    hi = default_max_res_a(vx) if max_res_a is None else float(max_res_a)
    step = float(step_a)
    if not step >= 0.25:
        raise LocresError(f"step_a must be at least 0.25 A, got {step_a}")
    ladder = []
    k = 0
    while True:
        res = round(lo + k * step, 6)
        ladder.append(res)
        if res >= hi or k > 10000:
            break
        k += 1
    return ladder


def window_radius(res_a: float, voxel_size_a: float) -> int:
    """Half width ``r = ceil(res / (2 vx))`` of the ``(2r+1)^3`` window (voxels)."""
    return int(math.ceil(round(res_a / (2.0 * voxel_size_a), 9)))


def steerable_directions() -> tuple[np.ndarray, np.ndarray]:
    """Unit axes of the G2 basis (6 x 3, icosahedral) and of the H2 basis (10 x 3, dodecahedral)."""
    g = [(1, 0, PHI), (PHI, 1, 0), (0, PHI, 1), (1, 0, -PHI), (-PHI, 1, 0), (0, -PHI, 1)]
    h = [(1, PHI, 1 / PHI), (1 / PHI, 1, PHI), (PHI, 1 / PHI, 1),
         (1, -PHI, 1 / PHI), (1 / PHI, 1, -PHI), (-PHI, 1 / PHI, 1),
         (1, 1, 1), (-1, 1, 1), (1, -1, 1), (-1, -1, 1)]
    g, h = np.asarray(g, float), np.asarray(h, float)
    return g / np.linalg.norm(g, axis=1, keepdims=True), h / np.linalg.norm(h, axis=1, keepdims=True)


def design_matrix(t: np.ndarray) -> np.ndarray:
    """Unweighted ResMap design at points ``t`` (N, 3): constant, 6 G2 and 10 H2 columns -> (N, 17)."""
    dg, dh = steerable_directions()
    ug, uh = t @ dg.T, t @ dh.T
    return np.concatenate([np.ones((t.shape[0], 1)), 4.0 * ug**2 - 2.0, uh**3 - H2_LINEAR * uh], axis=1)


def _orthonormal_columns(a: np.ndarray, rel_tol: float = 1e-10) -> np.ndarray:
    """Orthonormal basis of the column space of ``a`` (singular values above ``rel_tol`` * max)."""
    u, s, _ = np.linalg.svd(a, full_matrices=False)
    return u[:, s > rel_tol * s[0]] if s.size and s[0] > 0 else u[:, :0]


@dataclass
class LevelOperators:
    """Everything one trial resolution needs; shapes in the docstrings of the fields' users.

    ``kernels_1d``: (4, w) 1-D correlation kernels ``sqrt(g) q_a``; the response to degree triple
    (a, b, c) is the correlation of the map with ``kernels_1d[a] (z) kernels_1d[b] (y) kernels_1d[c] (x)``.
    ``stat_dirs``: (19, n_stat) orthonormal directions in the 19 non-constant response coordinates;
    ``LRS * sigma^2 = |stat_dirs^T m|^2``. ``null_eigs``: eigenvalues of the null ``sum l_j chi2_1``.
    """

    res_a: float
    radius: int
    kernels_1d: np.ndarray
    stat_dirs: np.ndarray
    null_eigs: np.ndarray
    all_eigs: np.ndarray
    basis: np.ndarray          # (N, 20) orthonormal separable functions phi_alpha on the window
    sqrt_k: np.ndarray         # (N,)
    noise_dirs: np.ndarray     # (20, 16) orthonormal span of the 16 non-constant weighted columns
    noise_trace: float         # E[y^T Lambda_d y] / sigma^2 for a block-demeaned white-noise window

    @property
    def width(self) -> int:
        return 2 * self.radius + 1


def level_operators(res_a: float, voxel_size_a: float, keep_fraction: float = 0.1,
                    null_model: str = "consistent") -> LevelOperators:
    """Build the operators of trial resolution ``res_a`` (see the module docstring).

    ``Lambda = K H - k k^T / sum k`` (full fit minus constant-only fit) equals ``C C^T`` with
    ``C = sqrt(K) Phi Gamma`` (``Gamma``: 16 orthonormal coordinates), so its nonzero eigenvalues are
    those of ``C^T C`` (16 x 16). Eigenvalues above ``keep_fraction * max`` are kept.

    ``null_model="consistent"`` (default): the statistic uses only the kept eigen-directions, so it follows
    exactly the null ``sum_kept l_j chi2_1`` the threshold is computed from. ``null_model="reference"``:
    the statistic uses all 16 directions but the threshold only the kept ones (anti-conservative).
    """
    r = window_radius(res_a, voxel_size_a)
    if r < 2:
        raise LocresError(f"trial resolution {res_a} A is under 4 voxels wide: raise min_res_a")
    scale = (2.0 * math.pi / res_a) * math.sqrt(2.0 / 5.0) * voxel_size_a
    s1 = scale * np.arange(-r, r + 1, dtype=float)
    g1 = np.exp(-(s1**2))  # exponent -|t|^2 (the reference's effective kernel, see resmap.py)
    vander = np.stack([s1**p for p in range(4)], axis=1) * np.sqrt(g1)[:, None]
    q1, _ = np.linalg.qr(vander)  # (w, 4), column a = sqrt(g) * poly of degree a, orthonormal
    q1 = q1 * np.sign(np.diag(_))[None, :]
    kernels_1d = np.sqrt(g1)[None, :] * q1.T  # (4, w): the correlation kernels sqrt(g) q_a
    basis = np.stack([np.einsum("i,j,k->ijk", q1[:, a], q1[:, b], q1[:, c]).ravel() for a, b, c in DEGREES],
                     axis=1)  # (N, 20)
    tz, ty, tx = np.meshgrid(s1, s1, s1, indexing="ij")
    t = np.stack([tz.ravel(), ty.ravel(), tx.ravel()], axis=1)
    k = np.exp(-np.sum(t**2, axis=1))
    sqrt_k = np.sqrt(k)
    coef = basis.T @ (sqrt_k[:, None] * design_matrix(t))  # (20, 17) coordinates of sqrt(K) A
    full = _orthonormal_columns(coef)
    full = full - np.outer(np.eye(20)[:, 0], full[0])  # remove the constant direction e0
    gamma = _orthonormal_columns(full)  # (20, 16)
    c_mat = sqrt_k[:, None] * (basis @ gamma)  # (N, 16)
    eigs, vecs = np.linalg.eigh(c_mat.T @ c_mat)
    eigs = np.clip(eigs, 0.0, None)
    keep = eigs > keep_fraction * eigs.max()
    if null_model == "consistent":
        stat_dirs = gamma @ vecs[:, keep]
    elif null_model == "reference":
        stat_dirs = gamma
    else:
        raise LocresError(f"null_model must be 'consistent' or 'reference', got '{null_model}'")
    noise_dirs = _orthonormal_columns(coef[:, 1:])
    # E[(y - ybar)^T Lambda_d (y - ybar)] = sigma^2 (tr Lambda_d - 1^T Lambda_d 1 / N)
    lam_d_1 = k - sqrt_k * (basis @ (noise_dirs @ (noise_dirs.T @ (basis.T @ sqrt_k))))
    tr_lam_d = k.sum() - np.sum((sqrt_k[:, None] * (basis @ noise_dirs)) ** 2)
    noise_trace = float(tr_lam_d - lam_d_1.sum() / k.size)
    return LevelOperators(res_a=float(res_a), radius=r, kernels_1d=kernels_1d, stat_dirs=stat_dirs[1:],
                          null_eigs=np.sort(eigs[keep])[::-1], all_eigs=np.sort(eigs)[::-1], basis=basis,
                          sqrt_k=sqrt_k, noise_dirs=noise_dirs, noise_trace=noise_trace)


def block_noise_variance(blocks: np.ndarray, ops: LevelOperators) -> np.ndarray:
    """Per-block noise variance ``(y - ybar)^T Lambda_d (y - ybar) / E`` for blocks (B, N) -> (B,).

    ``Lambda_d = K - K H_d`` is the weighted residual operator of the 16 non-constant columns; ``E``
    makes the estimate unbiased for white noise after demeaning (the reference divides by
    ``tr Lambda_d`` and reads about 2 % low).
    """
    y = blocks - blocks.mean(axis=1, keepdims=True)
    wy = y * ops.sqrt_k[None, :]
    proj = (wy @ ops.basis) @ ops.noise_dirs
    return (np.sum(wy**2, axis=1) - np.sum(proj**2, axis=1)) / ops.noise_trace


def _ruben_coefficients(eigs: np.ndarray, tol: float = 1e-15, max_terms: int = 20000):
    """Mixture weights ``a_k`` of Ruben's series: ``P(Q <= x) = sum_k a_k F_{n+2k}(x / beta)``."""
    return _ruben_cached(tuple(float(v) for v in np.asarray(eigs, float).ravel()), tol, max_terms)


@functools.lru_cache(maxsize=64)
def _ruben_cached(eig_tuple: tuple, tol: float, max_terms: int):
    eigs = np.asarray(eig_tuple)
    if eigs.size == 0 or not np.all(eigs > 0):
        raise LocresError("the null distribution needs positive eigenvalues")
    beta = eigs.min()
    gam = 1.0 - beta / eigs
    g_max = float(gam.max())
    if g_max > 0:  # terms decay like g_max^k: stop well past tol
        max_terms = min(max_terms, int(-2.0 * math.log(tol) / max(-math.log(g_max), 1e-12)) + 200)
    a = np.zeros(max_terms)
    a[0] = np.exp(0.5 * np.sum(np.log(beta / eigs)))
    d = 0.5 * np.sum(gam[None, :] ** np.arange(1, max_terms)[:, None], axis=1)  # d[k-1] = d_k
    total = a[0]
    for k in range(1, max_terms):
        a[k] = np.dot(d[:k][::-1], a[:k]) / k
        total += a[k]
        if 1.0 - total < tol:
            return beta, a[: k + 1]
    return beta, a


def weighted_chisq_sf(x: np.ndarray | float, eigs: np.ndarray) -> np.ndarray:
    """``P(sum_j l_j chi2_1 > x)`` by Ruben's series (all terms positive: accurate far in the tail)."""
    beta, a = _ruben_coefficients(eigs)
    n = len(eigs)
    x = np.atleast_1d(np.asarray(x, float))
    dof = n + 2 * np.arange(a.size)
    sf = stats.chi2.sf(x[:, None] / beta, dof[None, :]) @ a
    return np.clip(sf, 0.0, 1.0)


def null_threshold(eigs: np.ndarray, p_value: float) -> float:
    """``thrU``: the ``1 - p`` quantile of ``sum_j l_j chi2_1`` (Brent root of ``sf(x) - p``)."""
    from scipy.optimize import brentq

    hi = float(np.sum(eigs)) + 60.0 * float(np.max(eigs))
    while weighted_chisq_sf(hi, eigs)[0] > p_value:
        hi *= 2.0
    return float(brentq(lambda v: weighted_chisq_sf(v, eigs)[0] - p_value, 0.0, hi, xtol=1e-10))


def by_threshold(lrs: np.ndarray, eigs: np.ndarray, p_value: float) -> tuple[float, int]:
    """Benjamini-Yekutieli step-up on the statistics ``lrs`` (m,) -> (threshold, number rejected).

    p-values ``sf(lrs)``; reject the ``k`` smallest where ``k`` is the largest index with
    ``p_(k) <= k p / (m c_m)``, ``c_m = sum_{i=1..m} 1/i``. Voxels with ``lrs >= threshold`` pass
    (threshold ``inf`` when none does). Only candidates above the uncorrected threshold are scored.
    """
    m = lrs.size
    if m == 0:
        return math.inf, 0
    c_m = float(np.sum(1.0 / np.arange(1, m + 1))) if m < 10**6 else math.log(m) + 0.5772156649 + 0.5 / m
    thr_u = null_threshold(eigs, p_value)
    cand = np.sort(lrs[lrs > thr_u])[::-1]
    if cand.size == 0:
        return math.inf, 0
    # p-values by interpolating log sf on a grid (sf is smooth and log-concave-ish in the tail)
    grid = np.linspace(thr_u, max(float(cand[0]), thr_u * 1.0001), 600)
    log_sf = np.log(np.maximum(weighted_chisq_sf(grid, eigs), 1e-300))
    pvals = np.exp(np.interp(cand, grid, log_sf))
    ranks = np.arange(1, cand.size + 1)
    ok = np.nonzero(pvals <= ranks * p_value / (m * c_m))[0]
    if ok.size == 0:
        return math.inf, 0
    k = int(ok[-1]) + 1
    return float(cand[k - 1]), k
