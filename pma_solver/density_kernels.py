"""Compiled evaluation of log-densities at arbitrary points, for use inside step kernels.

A density is flattened into (code, params): an integer kind and a float64 parameter
vector. The layouts (d = dimension) are

    GAUSSIAN      [d, mean(d), precision(d*d), log normaliser]
    MIXTURE       [d, K, K blocks of (log weight + log normaliser, mean(d), precision(d*d))]
    UNIFORM_BOX   [d, lower(d), upper(d), log value, ell]
    UNIFORM_BALL  [d, centre(d), radius, log value, ell]
    POLYGON       [2, m, vertices (m*2, counter-clockwise), log value, ell]
    GRID          [d, lower(d), upper(d), shape(d), values(prod shape)]  multilinear in values
    PRODUCT       [d, then per axis: code, length, 1-D params]

Outside a uniform density's support the solver uses log q = log q_in - dist/ell (ell: 1% of
the support's size): the exact map never goes there, so the extension does not change the
solution, but an iterate that overshoots is pulled back with a finite inward slope instead
of meeting a flat -inf. Grid densities are LOG_FLOOR outside their box.
Densities with unbounded support are never clamped: their log keeps the restoring slope
that pulls a far-out map value back.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

EXTERNAL = 0
GAUSSIAN = 1
MIXTURE = 2
UNIFORM_BOX = 3
UNIFORM_BALL = 4
POLYGON = 5
GRID = 6
PRODUCT = 7

LOG_FLOOR = -700.0


@njit(cache=True)
def _gaussian(par, o, d, y0, y1, y2):
    z0 = y0 - par[o]
    if d == 1:
        return par[o + 2] - 0.5 * par[o + 1] * z0 * z0
    z1 = y1 - par[o + 1]
    if d == 2:
        p = o + 2
        q = par[p] * z0 * z0 + 2.0 * par[p + 1] * z0 * z1 + par[p + 3] * z1 * z1
        return par[o + 6] - 0.5 * q
    z2 = y2 - par[o + 2]
    p = o + 3
    q = (par[p] * z0 * z0 + par[p + 4] * z1 * z1 + par[p + 8] * z2 * z2
         + 2.0 * (par[p + 1] * z0 * z1 + par[p + 2] * z0 * z2 + par[p + 5] * z1 * z2))
    return par[o + 12] - 0.5 * q


@njit(cache=True)
def _mixture(par, o, d, y0, y1, y2):
    # Streaming log-sum-exp: no allocation inside the stencil loop.
    k = int(par[o])
    block = 1 + d + d * d
    m = -np.inf
    s = 0.0
    for j in range(k):
        b = o + 1 + j * block
        v = par[b] + _gaussian_nolog(par, b + 1, d, y0, y1, y2)
        if v > m:
            s = s * math.exp(m - v) + 1.0
            m = v
        else:
            s += math.exp(v - m)
    return m + math.log(s)


@njit(cache=True)
def _gaussian_nolog(par, o, d, y0, y1, y2):
    z0 = y0 - par[o]
    if d == 1:
        return -0.5 * par[o + 1] * z0 * z0
    z1 = y1 - par[o + 1]
    if d == 2:
        p = o + 2
        return -0.5 * (par[p] * z0 * z0 + 2.0 * par[p + 1] * z0 * z1 + par[p + 3] * z1 * z1)
    z2 = y2 - par[o + 2]
    p = o + 3
    return -0.5 * (par[p] * z0 * z0 + par[p + 4] * z1 * z1 + par[p + 8] * z2 * z2
                   + 2.0 * (par[p + 1] * z0 * z1 + par[p + 2] * z0 * z2 + par[p + 5] * z1 * z2))


@njit(cache=True)
def _coord(k, y0, y1, y2):
    if k == 0:
        return y0
    if k == 1:
        return y1
    return y2


@njit(cache=True)
def _uniform_box(par, o, d, y0, y1, y2):
    """(log q, grad log q): constant inside, log q_in - dist/ell outside."""
    dist2 = 0.0
    e = np.zeros(3)
    for k in range(d):
        y = _coord(k, y0, y1, y2)
        lo = par[o + k]
        hi = par[o + d + k]
        if y < lo:
            e[k] = y - lo
        elif y > hi:
            e[k] = y - hi
        dist2 += e[k] * e[k]
    val = par[o + 2 * d]
    if dist2 == 0.0:
        return val, 0.0, 0.0, 0.0
    ell = par[o + 2 * d + 1]
    dist = math.sqrt(dist2)
    return val - dist / ell, -e[0] / (dist * ell), -e[1] / (dist * ell), -e[2] / (dist * ell)


@njit(cache=True)
def _uniform_ball(par, o, d, y0, y1, y2):
    r2 = 0.0
    z0 = y0 - par[o]
    z1 = (y1 - par[o + 1]) if d > 1 else 0.0
    z2 = (y2 - par[o + 2]) if d > 2 else 0.0
    r = math.sqrt(z0 * z0 + z1 * z1 + z2 * z2)
    rho = par[o + d]
    val = par[o + d + 1]
    if r <= rho:
        return val, 0.0, 0.0, 0.0
    ell = par[o + d + 2]
    return val - (r - rho) / ell, -z0 / (r * ell), -z1 / (r * ell), -z2 / (r * ell)


@njit(cache=True)
def _polygon(par, o, y0, y1):
    """Outside: penalised by the largest signed distance to the edge lines (a convex
    distance that equals the Euclidean one except near vertices)."""
    m = int(par[o])
    v = o + 1
    best = -np.inf
    n0 = n1 = 0.0
    for j in range(m):
        ax = par[v + 2 * j]
        ay = par[v + 2 * j + 1]
        jn = (j + 1) % m
        ex = par[v + 2 * jn] - ax
        ey = par[v + 2 * jn + 1] - ay
        length = math.sqrt(ex * ex + ey * ey)
        nx, ny = ey / length, -ex / length        # outward normal of a CCW polygon
        sd = (y0 - ax) * nx + (y1 - ay) * ny
        if sd > best:
            best, n0, n1 = sd, nx, ny
    val = par[v + 2 * m]
    if best <= 0.0:
        return val, 0.0, 0.0, 0.0
    ell = par[v + 2 * m + 1]
    return val - best / ell, -n0 / ell, -n1 / ell, 0.0


@njit(cache=True)
def _cell(par, lo, hi, sh, k, y):
    """Cell index and weight of coordinate y on axis k; index -1 when outside."""
    n = int(par[sh + k])
    a = par[lo + k]
    b = par[hi + k]
    if y < a or y > b:
        return -1, 0.0, n
    s = (y - a) / (b - a) * (n - 1)
    i = min(int(s), n - 2)
    return i, s - i, n


@njit(cache=True)
def _grid(par, o, d, y0, y1, y2):
    """Multilinear interpolation of tabulated density values; LOG_FLOOR outside the box."""
    lo, hi, sh, vals = o, o + d, o + 2 * d, o + 3 * d
    i0, w0, n0 = _cell(par, lo, hi, sh, 0, y0)
    i1, w1, n1 = (0, 0.0, 1) if d < 2 else _cell(par, lo, hi, sh, 1, y1)
    i2, w2, n2 = (0, 0.0, 1) if d < 3 else _cell(par, lo, hi, sh, 2, y2)
    if i0 < 0 or i1 < 0 or i2 < 0:
        return LOG_FLOOR
    total = 0.0
    for b0 in range(2):
        f0 = w0 if b0 else 1.0 - w0
        for b1 in range(2 if d > 1 else 1):
            f1 = (w1 if b1 else 1.0 - w1) if d > 1 else 1.0
            for b2 in range(2 if d > 2 else 1):
                f2 = (w2 if b2 else 1.0 - w2) if d > 2 else 1.0
                w = f0 * f1 * f2
                if w != 0.0:
                    flat = ((i0 + b0) * n1 + i1 + b1) * n2 + i2 + b2
                    total += w * par[vals + flat]
    if total <= 0.0:
        return LOG_FLOOR
    return math.log(total)


@njit(cache=True)
def _simple(code, par, o, d, y0, y1, y2):
    if code == GAUSSIAN:
        return _gaussian(par, o, d, y0, y1, y2)
    if code == MIXTURE:
        return _mixture(par, o, d, y0, y1, y2)
    if code == UNIFORM_BOX:
        return _uniform_box(par, o, d, y0, y1, y2)[0]
    if code == UNIFORM_BALL:
        return _uniform_ball(par, o, d, y0, y1, y2)[0]
    if code == POLYGON:
        return _polygon(par, o, y0, y1)[0]
    if code == GRID:
        return _grid(par, o, d, y0, y1, y2)
    return np.nan


@njit(cache=True)
def log_density_at(code, par, y0, y1, y2):
    """log q(y) for a flattened density; y2 (and y1) are ignored below 3 (2) dimensions."""
    d = int(par[0])
    if code == PRODUCT:
        o = 1
        total = 0.0
        for k in range(d):
            c = int(par[o])
            n = int(par[o + 1])
            total += _simple(c, par, o + 3, 1, _coord(k, y0, y1, y2), 0.0, 0.0)
            o += 2 + n
        return total
    return _simple(code, par, 1, d, y0, y1, y2)


@njit(cache=True)
def log_density_points(code, par, pts, out):
    """Vectorised log q over points of shape (n, d) (used for tests and for source values)."""
    d = pts.shape[1]
    for i in range(pts.shape[0]):
        y0 = pts[i, 0]
        y1 = pts[i, 1] if d > 1 else 0.0
        y2 = pts[i, 2] if d > 2 else 0.0
        out[i] = log_density_at(code, par, y0, y1, y2)


@njit(cache=True)
def _gaussian_grad(par, o, d, y0, y1, y2, with_norm):
    """(log value, gradient) of one Gaussian block [mean, precision(, lognorm)]."""
    z0 = y0 - par[o]
    if d == 1:
        g0 = -par[o + 1] * z0
        v = 0.5 * g0 * z0
        return v + (par[o + 2] if with_norm else 0.0), g0, 0.0, 0.0
    z1 = y1 - par[o + 1]
    if d == 2:
        p = o + 2
        g0 = -(par[p] * z0 + par[p + 1] * z1)
        g1 = -(par[p + 2] * z0 + par[p + 3] * z1)
        v = 0.5 * (g0 * z0 + g1 * z1)
        return v + (par[o + 6] if with_norm else 0.0), g0, g1, 0.0
    z2 = y2 - par[o + 2]
    p = o + 3
    g0 = -(par[p] * z0 + par[p + 1] * z1 + par[p + 2] * z2)
    g1 = -(par[p + 3] * z0 + par[p + 4] * z1 + par[p + 5] * z2)
    g2 = -(par[p + 6] * z0 + par[p + 7] * z1 + par[p + 8] * z2)
    v = 0.5 * (g0 * z0 + g1 * z1 + g2 * z2)
    return v + (par[o + 12] if with_norm else 0.0), g0, g1, g2


@njit(cache=True)
def _mixture_grad(par, o, d, y0, y1, y2):
    k = int(par[o])
    block = 1 + d + d * d
    m = -np.inf
    s = 0.0
    a0 = a1 = a2 = 0.0
    for j in range(k):
        b = o + 1 + j * block
        v, g0, g1, g2 = _gaussian_grad(par, b + 1, d, y0, y1, y2, False)
        v += par[b]
        if v > m:
            r = math.exp(m - v)
            s = s * r + 1.0
            a0 = a0 * r + g0
            a1 = a1 * r + g1
            a2 = a2 * r + g2
            m = v
        else:
            e = math.exp(v - m)
            s += e
            a0 += e * g0
            a1 += e * g1
            a2 += e * g2
    return m + math.log(s), a0 / s, a1 / s, a2 / s


@njit(cache=True)
def _simple_grad(code, par, o, d, y0, y1, y2):
    if code == GAUSSIAN:
        return _gaussian_grad(par, o, d, y0, y1, y2, True)
    if code == MIXTURE:
        return _mixture_grad(par, o, d, y0, y1, y2)
    if code == UNIFORM_BOX:
        return _uniform_box(par, o, d, y0, y1, y2)
    if code == UNIFORM_BALL:
        return _uniform_ball(par, o, d, y0, y1, y2)
    if code == POLYGON:
        return _polygon(par, o, y0, y1)
    # Tabulated densities: central differences.
    v = _simple(code, par, o, d, y0, y1, y2)
    e0 = 1e-6 * (1.0 + abs(y0))
    g0 = (_simple(code, par, o, d, y0 + e0, y1, y2) - _simple(code, par, o, d, y0 - e0, y1, y2)) / (2 * e0)
    g1 = 0.0
    g2 = 0.0
    if d > 1:
        e1 = 1e-6 * (1.0 + abs(y1))
        g1 = (_simple(code, par, o, d, y0, y1 + e1, y2) - _simple(code, par, o, d, y0, y1 - e1, y2)) / (2 * e1)
    if d > 2:
        e2 = 1e-6 * (1.0 + abs(y2))
        g2 = (_simple(code, par, o, d, y0, y1, y2 + e2) - _simple(code, par, o, d, y0, y1, y2 - e2)) / (2 * e2)
    return v, g0, g1, g2


@njit(cache=True)
def log_density_grad_at(code, par, y0, y1, y2):
    """(log q(y), grad log q(y)) for a flattened density."""
    d = int(par[0])
    if code == PRODUCT:
        o = 1
        total = 0.0
        g = np.zeros(3)
        for k in range(d):
            c = int(par[o])
            n = int(par[o + 1])
            v, gk, _, _ = _simple_grad(c, par, o + 3, 1, _coord(k, y0, y1, y2), 0.0, 0.0)
            total += v
            g[k] = gk
            o += 2 + n
        return total, g[0], g[1], g[2]
    return _simple_grad(code, par, 1, d, y0, y1, y2)
