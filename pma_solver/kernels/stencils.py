"""Node operators F(u)(x) = log det D^2 u + log q(grad u) - log p at one grid node.

`fd2_node`: centred second differences, log det of the centred Hessian (exact on
quadratics, second order; monotone in 1D only). Eigenvalues below delta enter through
`log_floor`, so a non-convex node stays finite. Centre coefficient a = (2 sum_k 1/h_k^2) /
max(lambda_min, delta): explicit Euler is stable for dt <= 1/a (linearised, von Neumann).

`wide_node`: min over orthogonal frames {v} of sum_v log_floor(D_vv u) + log q(grad_f u), with
D_vv the centred second difference along lattice direction v and grad_f u the gradient
from centred differences along the frame's directions. Centre coefficient: max over frames
of sum_v 2/(|w_v|^2 max(D_vv, delta)): the explicit step is monotone for dt <= 1/a.

Gradient argument of q: centred differences along each direction, in 1D and for
wide_stencil shifted towards the upwind difference only where the cell Peclet number
|d log q| |w| max(D, delta)/2 exceeds 1 (`upwind_shift`): second order where the solution
is resolved, and the frozen-coefficient update is monotone everywhere. fd2 in 2D/3D (not
monotone anyway) keeps plain centred differences and stays exact on quadratics.

`filtered_node`: the Froese-Oberman filtered combination of the two.

All return (F, centre coefficient, convexity margin, active frame, max Peclet number).
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from ..density_kernels import GAUSSIAN, _gaussian
from .common import (FILTER_EPS, H0, H1, H2, IDENTITY, WRAP, X0, X1, X2, curvature_coef, filter_function,
                     log_floor, log_target, log_target_grad, sym_eig3, upwind_shift)


@njit(cache=True)
def _peclet(s, w, d, delta):
    return abs(s) * w * max(d, delta) * 0.5


@njit(cache=True, inline="always")
def fd2_node_2d(u, i, j, h0, h1, ident, x0, x1, delta, gauss, m0, m1, p00, p01, p11, lnorm,
                code, par, ext, geo, logp):
    """fd2 in 2D for the explicit step's hot loop (same formulas as `fd2_node`). Grid and
    Gaussian-target constants arrive as scalars: loaded once per row they stay in
    registers, whereas array loads would be repeated at every node because the output
    array might alias them."""
    c = u[i, j, 0]
    # reciprocals: without fastmath the compiler keeps a division per use
    r00 = 1.0 / (h0 * h0)
    r11 = 1.0 / (h1 * h1)
    r01 = 0.25 / (h0 * h1)
    r0 = 0.5 / h0
    r1 = 0.5 / h1
    d00 = (u[i + 1, j, 0] - 2.0 * c + u[i - 1, j, 0]) * r00 + ident
    d11 = (u[i, j + 1, 0] - 2.0 * c + u[i, j - 1, 0]) * r11 + ident
    d01 = (u[i + 1, j + 1, 0] - u[i + 1, j - 1, 0] - u[i - 1, j + 1, 0] + u[i - 1, j - 1, 0]) * r01
    g0 = (u[i + 1, j, 0] - u[i - 1, j, 0]) * r0 + ident * (x0 + i * h0)
    g1 = (u[i, j + 1, 0] - u[i, j - 1, 0]) * r1 + ident * (x1 + j * h1)
    half_tr = 0.5 * (d00 + d11)
    rad = math.sqrt(0.25 * (d00 - d11) ** 2 + d01 * d01)
    lam = half_tr - rad
    if lam >= delta:
        logdet = math.log(d00 * d11 - d01 * d01)
    else:
        logdet = log_floor(lam, delta) + log_floor(half_tr + rad, delta)
    if gauss:
        z0 = g0 - m0
        z1 = g1 - m1
        lq = lnorm - 0.5 * (p00 * z0 * z0 + 2.0 * p01 * z0 * z1 + p11 * z1 * z1)
    else:
        lq = log_target(code, par, ext, geo, i, j, 0, 2, g0, g1, 0.0, g0, g1, 0.0)
    return logdet + lq - logp[i, j, 0], lam


@njit(cache=True)
def fd2_node(u, i, j, k, dim, geo, logp, code, par, ext, delta, diag):
    c = u[i, j, k]
    ident = geo[IDENTITY]
    h0 = geo[H0]
    h1 = geo[H1]
    h2 = geo[H2]
    d00 = (u[i + 1, j, k] - 2.0 * c + u[i - 1, j, k]) / (h0 * h0) + ident
    g0 = (u[i + 1, j, k] - u[i - 1, j, k]) / (2.0 * h0) + ident * (geo[X0] + i * h0)
    d11 = d22 = g1 = g2 = 0.0
    inv_h2 = 1.0 / (h0 * h0)
    if dim == 1:
        lam = d00
        logdet = log_floor(d00, delta)
    else:
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
            inv_h2 += 1.0 / (h2 * h2)
            d22 = (u[i, j, k + 1] - 2.0 * c + u[i, j, k - 1]) / (h2 * h2) + ident
            d02 = (u[i + 1, j, k + 1] - u[i + 1, j, k - 1] - u[i - 1, j, k + 1]
                   + u[i - 1, j, k - 1]) / (4.0 * h0 * h2)
            d12 = (u[i, j + 1, k + 1] - u[i, j + 1, k - 1] - u[i, j - 1, k + 1]
                   + u[i, j - 1, k - 1]) / (4.0 * h1 * h2)
            g2 = (u[i, j, k + 1] - u[i, j, k - 1]) / (2.0 * h2) + ident * (geo[X2] + k * h2)
            e0, e1, e2 = sym_eig3(d00, d11, d22, d01, d02, d12)
            lam = e0
            det = (d00 * (d11 * d22 - d12 * d12) - d01 * (d01 * d22 - d12 * d02)
                   + d02 * (d01 * d12 - d11 * d02))
            if lam >= delta and det > 0.0:
                logdet = math.log(det)
            else:
                logdet = log_floor(e0, delta) + log_floor(e1, delta) + log_floor(e2, delta)
    peclet = 0.0
    if dim == 1:
        # The 1D three-point scheme is monotone: keep it so where the Peclet number exceeds 1.
        lq, s0, s1, s2 = log_target_grad(code, par, ext, geo, i, j, k, dim, g0, g1, g2, g0, g1, g2)
        a0, peclet = upwind_shift(s0, h0, d00, delta)
        if a0 != 0.0:
            lq = log_target(code, par, ext, geo, i, j, k, dim, g0 + a0, 0.0, 0.0, g0, 0.0, 0.0)
    elif diag:
        # not monotone in 2D/3D: the Peclet number is only reported (diagnostic steps)
        lq, s0, s1, s2 = log_target_grad(code, par, ext, geo, i, j, k, dim, g0, g1, g2, g0, g1, g2)
        peclet = max(_peclet(s0, h0, d00, delta), max(_peclet(s1, h1, d11, delta), _peclet(s2, h2, d22, delta)))
    else:
        lq = log_target(code, par, ext, geo, i, j, k, dim, g0, g1, g2, g0, g1, g2)
    coef = 2.0 * inv_h2 * curvature_coef(lam, delta)
    return logdet + lq - logp[i, j, k], coef, lam, 0, peclet


@njit(cache=True)
def wide_node(u, i, j, k, dim, geo, logp, code, par, ext, delta, dirs, dgeom, frames, D, G):
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
        y0 = y1 = y2 = 0.0
        for m in range(dim):
            v = frames[f, m]
            s += log_floor(D[v], delta)
            w = dgeom[v, 0]
            cf += 2.0 / (w * w) * curvature_coef(D[v], delta)
            y0 += G[v] * dgeom[v, 1]
            y1 += G[v] * dgeom[v, 2]
            y2 += G[v] * dgeom[v, 3]
        lq, q0, q1, q2 = log_target_grad(code, par, ext, geo, i, j, k, dim, y0, y1, y2, c0, c1, c2)
        z0 = y0
        z1 = y1
        z2 = y2
        shifted = False
        pf = 0.0
        for m in range(dim):
            v = frames[f, m]
            slope = q0 * dgeom[v, 1] + q1 * dgeom[v, 2] + q2 * dgeom[v, 3]
            a, p = upwind_shift(slope, dgeom[v, 0], D[v], delta)
            pf = max(pf, p)
            if a != 0.0:
                shifted = True
                z0 += a * dgeom[v, 1]
                z1 += a * dgeom[v, 2]
                z2 += a * dgeom[v, 3]
        if shifted:
            lq = log_target(code, par, ext, geo, i, j, k, dim, z0, z1, z2, c0, c1, c2)
        val = s + lq
        if val < best:
            best = val
            active = f
            peclet = pf
        if cf > coef:
            coef = cf
    return best - logp[i, j, k], coef, margin, active, peclet


@njit(cache=True)
def filtered_node(u, i, j, k, dim, geo, logp, code, par, ext, delta, dirs, dgeom, frames, D, G):
    """Froese-Oberman (2013) filtered scheme: F_mono + eps S((F_fd2 - F_mono)/eps).

    Equal to fd2 (second order, exact on quadratics) where the two schemes differ by less
    than eps, equal to the monotone wide stencil where they differ by more than 2 eps
    (non-smooth or degenerate regions); a perturbation of size eps of a monotone scheme.
    """
    fm, cm, mm, am, pm = wide_node(u, i, j, k, dim, geo, logp, code, par, ext, delta, dirs, dgeom, frames, D, G)
    fa, ca, ma, aa, pa = fd2_node(u, i, j, k, dim, geo, logp, code, par, ext, delta, False)
    eps = geo[FILTER_EPS]
    return fm + eps * filter_function((fa - fm) / eps), max(cm, ca), mm, am, pm
