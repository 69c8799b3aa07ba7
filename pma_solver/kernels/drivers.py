"""Loops over the unknown nodes: serial and prange twins of the same few lines.

They are separate functions on purpose: one Python function compiled twice (with and
without parallel=True) shares one disk-cache entry in numba, so the second would load the
first. Reductions written to `stats` (see STATS): max centre coefficient, min convexity
margin, max cell Peclet number, max F, min F and sum of F * w (w = p * cell volume).
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from .stencils import fd2_node, filtered_node, wide_node

FD2 = 0
WIDE = 1
FILTERED = 2
STATS = ("coef_max", "margin_min", "peclet_max", "f_max", "f_min", "f_weighted_sum")
NSTATS = len(STATS)


@njit(cache=True)
def _row(scheme, dim, i, u, lo, hi, geo, logp, weight, code, par, ext, delta, dirs, dgeom, frames,
         out, active, D, G, row):
    row[0] = 0.0
    row[1] = np.inf
    row[2] = 0.0
    row[3] = -np.inf
    row[4] = np.inf
    row[5] = 0.0
    for j in range(lo[1], hi[1]):
        for k in range(lo[2], hi[2]):
            if scheme == FD2:
                f, c, m, a, p = fd2_node(u, i, j, k, dim, geo, logp, code, par, ext, delta)
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
def _reduce(rows, stats):
    stats[0] = rows[:, 0].max()
    stats[1] = rows[:, 1].min()
    stats[2] = rows[:, 2].max()
    stats[3] = rows[:, 3].max()
    stats[4] = rows[:, 4].min()
    stats[5] = rows[:, 5].sum()


@njit(cache=True)
def rhs_serial(scheme, dim, u, lo, hi, geo, logp, weight, code, par, ext, delta, dirs, dgeom,
               frames, out, active, stats):
    n = hi[0] - lo[0]
    rows = np.empty((n, 6))
    D = np.empty(dirs.shape[0])
    G = np.empty(dirs.shape[0])
    for r in range(n):
        _row(scheme, dim, lo[0] + r, u, lo, hi, geo, logp, weight, code, par, ext, delta, dirs,
             dgeom, frames, out, active, D, G, rows[r])
    _reduce(rows, stats)


@njit(cache=True, parallel=True)
def rhs_parallel(scheme, dim, u, lo, hi, geo, logp, weight, code, par, ext, delta, dirs, dgeom,
                 frames, out, active, stats):
    n = hi[0] - lo[0]
    rows = np.empty((n, 6))
    for r in prange(n):
        D = np.empty(dirs.shape[0])
        G = np.empty(dirs.shape[0])
        _row(scheme, dim, lo[0] + r, u, lo, hi, geo, logp, weight, code, par, ext, delta, dirs,
             dgeom, frames, out, active, D, G, rows[r])
    _reduce(rows, stats)
