"""Loops over the unknown nodes: serial and prange twins of the same few lines.

They are separate functions on purpose: one Python function compiled twice (with and
without parallel=True) shares one disk-cache entry in numba, so the second would load the
first. Reductions written to `stats` (see STATS): max centre coefficient, min convexity
margin, max cell Peclet number (fd2 in 2D/3D computes it only when `diag`), max F, min F
and sum of F * w (w = p * cell volume).
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from ..density_kernels import GAUSSIAN
from .common import H0, H1, IDENTITY, WRAP, X0, X1
from .stencils import fd2_node, fd2_node_2d, filtered_node, wide_node

FD2 = 0
WIDE = 1
FILTERED = 2
STATS = ("coef_max", "margin_min", "peclet_max", "f_max", "f_min", "f_weighted_sum")
NSTATS = len(STATS)


@njit(cache=True)
def _row(scheme, dim, i, u, lo, hi, geo, logp, weight, code, par, ext, delta, dirs, dgeom, frames,
         out, active, D, G, diag, row):
    row[0] = 0.0
    row[1] = np.inf
    row[2] = 0.0
    row[3] = -np.inf
    row[4] = np.inf
    row[5] = 0.0
    if scheme == FD2 and dim == 2 and not diag:
        _row_fd2_2d(i, u, lo, hi, geo, logp, weight, code, par, ext, delta, out, row)
        return
    for j in range(lo[1], hi[1]):
        for k in range(lo[2], hi[2]):
            if scheme == FD2:
                f, c, m, a, p = fd2_node(u, i, j, k, dim, geo, logp, code, par, ext, delta, diag)
            elif scheme == WIDE:
                f, c, m, a, p = wide_node(u, i, j, k, dim, geo, logp, code, par, ext, delta,
                                          dirs, dgeom, frames, D, G)
            else:
                f, c, m, a, p = filtered_node(u, i, j, k, dim, geo, logp, code, par, ext, delta,
                                              dirs, dgeom, frames, D, G)
            out[i, j, k] = f
            active[i, j, k] = a
            row[0] = max(row[0], c)
            row[1] = min(row[1], m)
            row[2] = max(row[2], p)
            row[3] = max(row[3], f)
            row[4] = min(row[4], f)
            row[5] += f * weight[i, j, k]


@njit(cache=True)
def _row_fd2_2d(i, u, lo, hi, geo, logp, weight, code, par, ext, delta, out, row):
    """The hot loop of the explicit step in 2D, unswitched from the scheme dispatch."""
    h0, h1, ident, x0, x1 = geo[H0], geo[H1], geo[IDENTITY], geo[X0], geo[X1]
    gauss = code == GAUSSIAN and geo[WRAP] == 0.0
    m0 = m1 = p00 = p01 = p11 = lnorm = 0.0
    if gauss:
        m0, m1, p00, p01, p11, lnorm = par[1], par[2], par[3], par[4], par[6], par[7]
    mmin = np.inf
    fmax = -np.inf
    fmin = np.inf
    fsum = 0.0
    for j in range(lo[1], hi[1]):
        f, m = fd2_node_2d(u, i, j, h0, h1, ident, x0, x1, delta, gauss, m0, m1, p00, p01, p11, lnorm,
                           code, par, ext, geo, logp)
        out[i, j, 0] = f
        mmin = min(mmin, m)
        fmax = max(fmax, f)
        fmin = min(fmin, f)
        fsum += f * weight[i, j, 0]
    # centre coefficient 2 (1/h0^2 + 1/h1^2) / max(lambda_min, delta), from the row minimum
    row[0] = 2.0 * (1.0 / (h0 * h0) + 1.0 / (h1 * h1)) / max(mmin, delta)
    row[1] = mmin
    row[3] = fmax
    row[4] = fmin
    row[5] = fsum


@njit(cache=True)
def _reduce(rows, stats):
    stats[0] = rows[:, 0].max()
    stats[1] = rows[:, 1].min()
    stats[2] = rows[:, 2].max()
    stats[3] = rows[:, 3].max()
    stats[4] = rows[:, 4].min()
    stats[5] = rows[:, 5].sum()


@njit(cache=True)
def rhs_serial(scheme, dim, u, lo, hi, geo, logp, weight, code, par, ext, delta, dirs, dgeom,
               frames, out, active, stats, diag):
    n = hi[0] - lo[0]
    rows = np.empty((n, 6))
    D = np.empty(dirs.shape[0])
    G = np.empty(dirs.shape[0])
    for r in range(n):
        _row(scheme, dim, lo[0] + r, u, lo, hi, geo, logp, weight, code, par, ext, delta, dirs,
             dgeom, frames, out, active, D, G, diag, rows[r])
    _reduce(rows, stats)


@njit(cache=True, parallel=True)
def rhs_parallel(scheme, dim, u, lo, hi, geo, logp, weight, code, par, ext, delta, dirs, dgeom,
                 frames, out, active, stats, diag):
    n = hi[0] - lo[0]
    rows = np.empty((n, 6))
    for r in prange(n):
        D = np.empty(dirs.shape[0])
        G = np.empty(dirs.shape[0])
        _row(scheme, dim, lo[0] + r, u, lo, hi, geo, logp, weight, code, par, ext, delta, dirs,
             dgeom, frames, out, active, D, G, diag, rows[r])
    _reduce(rows, stats)
