"""Node operators F(u)(x) = log det D^2 u + log q(grad u) - log p at one grid node.

`fd2_node`: centred second differences, log det of the centred Hessian (exact on
quadratics, second order; monotone in 1D only). Eigenvalues below delta enter through
`log_floor`, so a non-convex node stays finite. Centre coefficient a = (2 sum_k 1/h_k^2) /
max(lambda_min, delta): explicit Euler is stable for dt <= 1/a (linearised, von Neumann).

`wide_node`: min over orthogonal frames {v} of sum_v log_floor(D_vv u) + log q(grad_f u), with
D_vv the centred second difference along lattice direction v and grad_f u the centred
gradient expressed in that frame. Each frame term is non-decreasing in every neighbour
value as long as the cell Peclet number |d_v log q| |w_v| max(D_vv, delta) / 2 <= 1, so the
minimum is monotone. Centre coefficient: max over frames of sum_v 2/(|w_v|^2 max(D_vv, delta)):
the explicit step is monotone for dt <= 1/a.

Both return (F, centre coefficient, convexity margin, active frame, Peclet number).
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from .common import H0, H1, H2, IDENTITY, X0, X1, X2, log_floor, log_target, sym_eig3


@njit(cache=True)
def fd2_node(u, i, j, k, dim, geo, logp, code, par, ext, delta):
    c = u[i, j, k]
    ident = geo[IDENTITY]
    h0 = geo[H0]
    d00 = (u[i + 1, j, k] - 2.0 * c + u[i - 1, j, k]) / (h0 * h0) + ident
    g0 = (u[i + 1, j, k] - u[i - 1, j, k]) / (2.0 * h0) + ident * (geo[X0] + i * h0)
    g1 = 0.0
    g2 = 0.0
    inv_h2 = 1.0 / (h0 * h0)
    if dim == 1:
        lam = d00
        logdet = log_floor(d00, delta)
    else:
        h1 = geo[H1]
        inv_h2 += 1.0 / (h1 * h1)
        d11 = (u[i, j + 1, k] - 2.0 * c + u[i, j - 1, k]) / (h1 * h1) + ident
        d01 = (u[i + 1, j + 1, k] - u[i + 1, j - 1, k] - u[i - 1, j + 1, k]
               + u[i - 1, j - 1, k]) / (4.0 * h0 * h1)
        g1 = (u[i, j + 1, k] - u[i, j - 1, k]) / (2.0 * h1) + ident * (geo[X1] + j * h1)
        if dim == 2:
            half_tr = 0.5 * (d00 + d11)
            rad = math.sqrt(0.25 * (d00 - d11) ** 2 + d01 * d01)
            lam = half_tr - rad
            if lam >= delta:
                logdet = math.log(d00 * d11 - d01 * d01)
            else:
                logdet = log_floor(lam, delta) + log_floor(half_tr + rad, delta)
        else:
            h2 = geo[H2]
            inv_h2 += 1.0 / (h2 * h2)
            d22 = (u[i, j, k + 1] - 2.0 * c + u[i, j, k - 1]) / (h2 * h2) + ident
            d02 = (u[i + 1, j, k + 1] - u[i + 1, j, k - 1] - u[i - 1, j, k + 1]
                   + u[i - 1, j, k - 1]) / (4.0 * h0 * h2)
            d12 = (u[i, j + 1, k + 1] - u[i, j + 1, k - 1] - u[i, j - 1, k + 1]
                   + u[i, j - 1, k - 1]) / (4.0 * h1 * h2)
            g2 = (u[i, j, k + 1] - u[i, j, k - 1]) / (2.0 * h2) + ident * (geo[X2] + k * h2)
            e0, e1, e2 = sym_eig3(d00, d11, d22, d01, d02, d12)
            lam = e0
            if lam >= delta:
                det = (d00 * (d11 * d22 - d12 * d12) - d01 * (d01 * d22 - d12 * d02)
                       + d02 * (d01 * d12 - d11 * d02))
                logdet = math.log(det) if det > 0.0 else log_floor(e0, delta) + log_floor(e1, delta) + log_floor(e2, delta)
            else:
                logdet = log_floor(e0, delta) + log_floor(e1, delta) + log_floor(e2, delta)
    lq = log_target(code, par, ext, geo, i, j, k, dim, g0, g1, g2, g0, g1, g2)
    coef = 2.0 * inv_h2 / max(lam, delta)
    return logdet + lq - logp[i, j, k], coef, lam, 0, 0.0


@njit(cache=True)
def wide_node(u, i, j, k, dim, geo, logp, code, par, ext, delta, dirs, dgeom, frames, D, G, diag):
    """dirs (ndir, 3) lattice offsets, axes first; dgeom (ndir, 4) = [|w|, w_hat]; frames (nf, 3)."""
    c = u[i, j, k]
    ident = geo[IDENTITY]
    x0 = geo[X0] + i * geo[H0]
    x1 = geo[X1] + j * geo[H1]
    x2 = geo[X2] + k * geo[H2]
    margin = np.inf
    for v in range(dirs.shape[0]):
        o0, o1, o2 = dirs[v, 0], dirs[v, 1], dirs[v, 2]
        up = u[i + o0, j + o1, k + o2]
        um = u[i - o0, j - o1, k - o2]
        w = dgeom[v, 0]
        D[v] = (up - 2.0 * c + um) / (w * w) + ident
        G[v] = (up - um) / (2.0 * w) + ident * (x0 * dgeom[v, 1] + x1 * dgeom[v, 2] + x2 * dgeom[v, 3])
        if D[v] < margin:
            margin = D[v]
    c0 = G[0]
    c1 = G[1] if dim > 1 else 0.0
    c2 = G[2] if dim > 2 else 0.0
    best = np.inf
    active = 0
    coef = 0.0
    peclet = 0.0
    for f in range(frames.shape[0]):
        s = 0.0
        cf = 0.0
        y0 = 0.0
        y1 = 0.0
        y2 = 0.0
        for m in range(dim):
            v = frames[f, m]
            dv = D[v]
            s += log_floor(dv, delta)
            w = dgeom[v, 0]
            cf += 2.0 / (w * w * max(dv, delta))
            y0 += G[v] * dgeom[v, 1]
            y1 += G[v] * dgeom[v, 2]
            y2 += G[v] * dgeom[v, 3]
        val = s + log_target(code, par, ext, geo, i, j, k, dim, y0, y1, y2, c0, c1, c2)
        if val < best:
            best = val
            active = f
        if cf > coef:
            coef = cf
    if diag:
        peclet = _peclet(code, par, ext, geo, i, j, k, dim, delta, dgeom, frames[active], D, G, c0, c1, c2)
    return best - logp[i, j, k], coef, margin, active, peclet


@njit(cache=True)
def _peclet(code, par, ext, geo, i, j, k, dim, delta, dgeom, frame, D, G, c0, c1, c2):
    """Cell Peclet number of a frame: max_v |d log q / d w_hat_v| |w_v| max(D_vv, delta) / 2."""
    eps = 1e-6
    peclet = 0.0
    y0 = y1 = y2 = 0.0
    for n in range(dim):
        vv = frame[n]
        y0 += G[vv] * dgeom[vv, 1]
        y1 += G[vv] * dgeom[vv, 2]
        y2 += G[vv] * dgeom[vv, 3]
    for m in range(dim):
        v = frame[m]
        lp = log_target(code, par, ext, geo, i, j, k, dim, y0 + eps * dgeom[v, 1], y1 + eps * dgeom[v, 2],
                        y2 + eps * dgeom[v, 3], c0, c1, c2)
        lm = log_target(code, par, ext, geo, i, j, k, dim, y0 - eps * dgeom[v, 1], y1 - eps * dgeom[v, 2],
                        y2 - eps * dgeom[v, 3], c0, c1, c2)
        pe = abs(lp - lm) / (2.0 * eps) * dgeom[v, 0] * max(D[v], delta) / 2.0
        if pe > peclet:
            peclet = pe
    return peclet
