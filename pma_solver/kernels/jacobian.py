"""Jacobian dF/du of the node operators, assembled as COO triplets for scipy.sparse.

fd2: d logdet(H) = tr(M dH) with M = V diag(1/max(lambda, delta)) V^T (= H^{-1} when every
eigenvalue is above delta), plus grad log q(y) . dy/du for the centred gradient y.
wide_stencil: the Jacobian of the active frame (the minimum is attained there):
sum_v (1/max(D_vv, delta)) dD_vv + grad log q(z) . dz/du. Where the cell Peclet number exceeds 1
the upwind shift sign(s)|w|D/2 - 1/s is differentiated in D only (not in the slope s), so
the Jacobian is exact wherever the Peclet number is <= 1 and nearly so elsewhere.
`uid` maps padded nodes to unknown indices (-1: fixed boundary value; periodic ghosts map
to their image). Each node owns a block of `block` slots; unused slots keep col = -1.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from .common import FILTER_EPS, H0, H1, H2, IDENTITY, X0, X1, X2, filter_slope, log_target_grad, upwind_shift
from .drivers import FD2, WIDE
from .stencils import fd2_node, wide_node


@njit(cache=True)
def _shift_slope(p, d, delta):
    """d(shift)/dD in units of sign(s) |w| / 2. For D >= delta the shift is
    sign(s) |w| D / 2 - 1/s, whose D-derivative is the full upwind one (1); below delta the
    blend factor 1 - 1/P does not depend on D. The slope's own dependence on u (through the
    Hessian of log q) is left out."""
    return 1.0 if d >= delta else 1.0 - 1.0 / p


@njit(cache=True)
def _put(uid, i, j, k, value, row, rows, cols, vals, slot):
    c = uid[i, j, k]
    rows[slot] = row
    cols[slot] = c
    vals[slot] = value * vals[slot] if c >= 0 else 0.0   # vals[slot] holds the row weight


@njit(cache=True)
def _floor_inverse(m00, m11, m22, m01, m02, m12, dim, delta):
    """V diag(1/max(lambda, delta)) V^T for the symmetric Hessian (entries of the upper triangle)."""
    a = np.zeros((3, 3))
    a[0, 0] = m00
    if dim > 1:
        a[1, 1] = m11
        a[0, 1] = a[1, 0] = m01
    if dim > 2:
        a[2, 2] = m22
        a[0, 2] = a[2, 0] = m02
        a[1, 2] = a[2, 1] = m12
    w, v = np.linalg.eigh(a[:dim, :dim])
    out = np.zeros((3, 3))
    for p in range(dim):
        f = 1.0 / max(w[p], delta)
        for r in range(dim):
            for c in range(dim):
                out[r, c] += f * v[r, p] * v[c, p]
    return out


@njit(cache=True)
def fd2_jac(u, i, j, k, dim, geo, code, par, ext, delta, uid, rows, cols, vals, base):
    c = u[i, j, k]
    ident = geo[IDENTITY]
    h = np.array([geo[H0], geo[H1], geo[H2]])
    e = np.zeros((3, 3), dtype=np.int64)
    for a in range(3):
        e[a, a] = 1
    hess = np.zeros((3, 3))
    g = np.zeros(3)
    x = np.array([geo[X0] + i * h[0], geo[X1] + j * h[1], geo[X2] + k * h[2]])
    for a in range(dim):
        up = u[i + e[a, 0], j + e[a, 1], k + e[a, 2]]
        um = u[i - e[a, 0], j - e[a, 1], k - e[a, 2]]
        hess[a, a] = (up - 2.0 * c + um) / (h[a] * h[a]) + ident
        g[a] = (up - um) / (2.0 * h[a]) + ident * x[a]
        for b in range(a + 1, dim):
            hess[a, b] = (u[i + e[a, 0] + e[b, 0], j + e[a, 1] + e[b, 1], k + e[a, 2] + e[b, 2]]
                          - u[i + e[a, 0] - e[b, 0], j + e[a, 1] - e[b, 1], k + e[a, 2] - e[b, 2]]
                          - u[i - e[a, 0] + e[b, 0], j - e[a, 1] + e[b, 1], k - e[a, 2] + e[b, 2]]
                          + u[i - e[a, 0] - e[b, 0], j - e[a, 1] - e[b, 1], k - e[a, 2] - e[b, 2]]) / (4.0 * h[a] * h[b])
            hess[b, a] = hess[a, b]
    M = _floor_inverse(hess[0, 0], hess[1, 1], hess[2, 2], hess[0, 1], hess[0, 2], hess[1, 2], dim, delta)
    lq, s0, s1, s2 = log_target_grad(code, par, ext, geo, i, j, k, dim, g[0], g[1], g[2], g[0], g[1], g[2])
    s = np.array([s0, s1, s2])
    theta = 0.0
    if dim == 1:
        a0, p0 = upwind_shift(s0, h[0], hess[0, 0], delta)
        if a0 != 0.0:
            theta = _shift_slope(p0, hess[0, 0], delta)
            y0 = g[0] + a0
            _, s0b, _, _ = log_target_grad(code, par, ext, geo, i, j, k, 1, y0, 0.0, 0.0, g[0], 0.0, 0.0)
            s[0] = s0b
    row = uid[i, j, k]
    slot = base
    # Coefficients on the 3^dim cube of offsets.
    for o0 in range(-1, 2):
        for o1 in range(-1, 2) if dim > 1 else range(0, 1):
            for o2 in range(-1, 2) if dim > 2 else range(0, 1):
                off = np.array([o0, o1, o2])
                nz = abs(o0) + abs(o1) + abs(o2)
                val = 0.0
                if nz == 0:
                    for a in range(dim):
                        val += M[a, a] * (-2.0 / (h[a] * h[a]))
                    if dim == 1 and theta != 0.0:
                        sgn = 1.0 if s0 > 0 else -1.0
                        val += s[0] * theta * sgn * h[0] * 0.5 * (-2.0 / (h[0] * h[0]))
                elif nz == 1:
                    a = 0
                    for q in range(3):
                        if off[q] != 0:
                            a = q
                    val = M[a, a] / (h[a] * h[a]) + s[a] * off[a] / (2.0 * h[a])
                    if dim == 1 and theta != 0.0:
                        sgn = 1.0 if s0 > 0 else -1.0
                        val += s[0] * theta * sgn * h[0] * 0.5 / (h[0] * h[0])
                elif nz == 2:
                    a = -1
                    b = -1
                    for q in range(3):
                        if off[q] != 0:
                            if a < 0:
                                a = q
                            else:
                                b = q
                    val = 2.0 * M[a, b] * off[a] * off[b] / (4.0 * h[a] * h[b])
                if nz <= 2:
                    _put(uid, i + o0, j + o1, k + o2, val, row, rows, cols, vals, slot)
                slot += 1
    return lq


@njit(cache=True)
def wide_jac(u, i, j, k, dim, geo, code, par, ext, delta, dirs, dgeom, frame, uid, rows, cols, vals, base):
    """Jacobian row of the active `frame` (indices of `dim` directions)."""
    c = u[i, j, k]
    ident = geo[IDENTITY]
    x0 = geo[X0] + i * geo[H0]
    x1 = geo[X1] + j * geo[H1]
    x2 = geo[X2] + k * geo[H2]
    D = np.zeros(3)
    G = np.zeros(3)
    for m in range(dim):
        v = frame[m]
        up = u[i + dirs[v, 0], j + dirs[v, 1], k + dirs[v, 2]]
        um = u[i - dirs[v, 0], j - dirs[v, 1], k - dirs[v, 2]]
        w = dgeom[v, 0]
        D[m] = (up - 2.0 * c + um) / (w * w) + ident
        G[m] = (up - um) / (2.0 * w) + ident * (x0 * dgeom[v, 1] + x1 * dgeom[v, 2] + x2 * dgeom[v, 3])
    y0 = y1 = y2 = 0.0
    for m in range(dim):
        v = frame[m]
        y0 += G[m] * dgeom[v, 1]
        y1 += G[m] * dgeom[v, 2]
        y2 += G[m] * dgeom[v, 3]
    # Only slopes are needed here; for EXTERNAL targets they are constant per node.
    lq, q0, q1, q2 = log_target_grad(code, par, ext, geo, i, j, k, dim, y0, y1, y2, y0, y1, y2)
    theta = np.zeros(3)
    sgn = np.zeros(3)
    z0, z1, z2 = y0, y1, y2
    for m in range(dim):
        v = frame[m]
        slope = q0 * dgeom[v, 1] + q1 * dgeom[v, 2] + q2 * dgeom[v, 3]
        a, p = upwind_shift(slope, dgeom[v, 0], D[m], delta)
        if a != 0.0:
            theta[m] = _shift_slope(p, D[m], delta)
            sgn[m] = 1.0 if slope > 0 else -1.0
            z0 += a * dgeom[v, 1]
            z1 += a * dgeom[v, 2]
            z2 += a * dgeom[v, 3]
    if z0 != y0 or z1 != y1 or z2 != y2:
        lq, q0, q1, q2 = log_target_grad(code, par, ext, geo, i, j, k, dim, z0, z1, z2, y0, y1, y2)
    row = uid[i, j, k]
    centre = 0.0
    slot = base + 1
    for m in range(dim):
        v = frame[m]
        w = dgeom[v, 0]
        curv = 1.0 / max(D[m], delta)          # slope of log_floor
        slope = q0 * dgeom[v, 1] + q1 * dgeom[v, 2] + q2 * dgeom[v, 3]
        # dF/dD_v and dF/dG_v; D_v = (u+ - 2u + u-)/w^2, G_v = (u+ - u-)/(2w)
        dD = curv + slope * theta[m] * sgn[m] * w * 0.5
        plus = dD / (w * w) + slope / (2.0 * w)
        minus = dD / (w * w) - slope / (2.0 * w)
        centre += -2.0 * dD / (w * w)
        _put(uid, i + dirs[v, 0], j + dirs[v, 1], k + dirs[v, 2], plus, row, rows, cols, vals, slot)
        _put(uid, i - dirs[v, 0], j - dirs[v, 1], k - dirs[v, 2], minus, row, rows, cols, vals, slot + 1)
        slot += 2
    _put(uid, i, j, k, centre, row, rows, cols, vals, base)
    return lq


@njit(cache=True)
def _weights(vals, start, count, w):
    for s in range(start, start + count):
        vals[s] = w


@njit(cache=True)
def _jac_row(scheme, dim, i, u, lo, hi, geo, logp, code, par, ext, delta, dirs, dgeom, frames, active,
             uid, rows, cols, vals, block, D, G):
    n_fd2 = 3 ** dim
    for j in range(lo[1], hi[1]):
        for k in range(lo[2], hi[2]):
            base = uid[i, j, k] * block
            if scheme == FD2:
                _weights(vals, base, n_fd2, 1.0)
                fd2_jac(u, i, j, k, dim, geo, code, par, ext, delta, uid, rows, cols, vals, base)
            elif scheme == WIDE:
                _weights(vals, base, 1 + 2 * dim, 1.0)
                wide_jac(u, i, j, k, dim, geo, code, par, ext, delta, dirs, dgeom,
                         frames[active[i, j, k]], uid, rows, cols, vals, base)
            else:
                # filtered: d/du [F_m + eps S((F_a - F_m)/eps)] = (1 - S') J_m + S' J_a
                fm = wide_node(u, i, j, k, dim, geo, logp, code, par, ext, delta, dirs, dgeom, frames, D, G)[0]
                fa = fd2_node(u, i, j, k, dim, geo, logp, code, par, ext, delta, False)[0]
                sp = filter_slope((fa - fm) / geo[FILTER_EPS])
                _weights(vals, base, n_fd2, sp)
                fd2_jac(u, i, j, k, dim, geo, code, par, ext, delta, uid, rows, cols, vals, base)
                _weights(vals, base + n_fd2, 1 + 2 * dim, 1.0 - sp)
                wide_jac(u, i, j, k, dim, geo, code, par, ext, delta, dirs, dgeom,
                         frames[active[i, j, k]], uid, rows, cols, vals, base + n_fd2)


@njit(cache=True)
def jacobian_serial(scheme, dim, u, lo, hi, geo, logp, code, par, ext, delta, dirs, dgeom, frames, active,
                    uid, rows, cols, vals, block):
    D = np.empty(dirs.shape[0])
    G = np.empty(dirs.shape[0])
    for i in range(lo[0], hi[0]):
        _jac_row(scheme, dim, i, u, lo, hi, geo, logp, code, par, ext, delta, dirs, dgeom, frames, active,
                 uid, rows, cols, vals, block, D, G)


@njit(cache=True, parallel=True)
def jacobian_parallel(scheme, dim, u, lo, hi, geo, logp, code, par, ext, delta, dirs, dgeom, frames, active,
                      uid, rows, cols, vals, block):
    for i in prange(lo[0], hi[0]):
        D = np.empty(dirs.shape[0])
        G = np.empty(dirs.shape[0])
        _jac_row(scheme, dim, i, u, lo, hi, geo, logp, code, par, ext, delta, dirs, dgeom, frames, active,
                 uid, rows, cols, vals, block, D, G)
