"""Scalar helpers shared by the stencil kernels."""
from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from ..density_kernels import EXTERNAL, GAUSSIAN, _gaussian, _gaussian_grad, log_density_at, log_density_grad_at

# geo = [h0, h1, h2, x(padded index 0) per axis, box length per axis, identity, wrap,
#        box lower per axis, filter epsilon]
H0, H1, H2, X0, X1, X2, L0, L1, L2, IDENTITY, WRAP, LOW0, LOW1, LOW2, FILTER_EPS = range(15)
GEO_SIZE = 15


@njit(cache=True)
def log_floor(d, delta):
    """log d for d >= delta, continued linearly (slope 1/delta) below: strictly increasing,
    C^1 and finite on non-convex data, so a non-convex node is pushed back monotonically."""
    if d >= delta:
        return math.log(d)
    return math.log(delta) + (d - delta) / delta


@njit(cache=True)
def curvature_coef(d, delta):
    """Largest slope of log_floor at d: 1/max(d, delta). It bounds the explicit step by
    h^2 delta / 2 at worst, never by 0."""
    return 1.0 / max(d, delta)


@njit(cache=True)
def wrap(y, lower, length):
    return lower + (y - lower) % length


@njit(cache=True)
def _folded(geo, dim, y0, y1, y2):
    if geo[WRAP] != 0.0:
        y0 = wrap(y0, geo[LOW0], geo[L0])
        if dim > 1:
            y1 = wrap(y1, geo[LOW1], geo[L1])
        if dim > 2:
            y2 = wrap(y2, geo[LOW2], geo[L2])
    return y0, y1, y2


@njit(cache=True)
def log_target(code, par, ext, geo, i, j, k, dim, y0, y1, y2, c0, c1, c2):
    """log q at the map value y (unwrapped; folded into the box on periodic runs).

    EXTERNAL targets use the first-order expansion around the axis gradient c, whose value
    and gradient were evaluated in NumPy into `ext`.
    """
    if code == GAUSSIAN and geo[WRAP] == 0.0:
        # hot path, small enough for LLVM to inline (the general dispatch is not)
        return _gaussian(par, 1, dim, y0, y1, y2)
    if code == EXTERNAL:
        v = ext[0, i, j, k] + ext[1, i, j, k] * (y0 - c0)
        if dim > 1:
            v += ext[2, i, j, k] * (y1 - c1)
        if dim > 2:
            v += ext[3, i, j, k] * (y2 - c2)
        return v
    y0, y1, y2 = _folded(geo, dim, y0, y1, y2)
    return log_density_at(code, par, y0, y1, y2)


@njit(cache=True)
def log_target_grad(code, par, ext, geo, i, j, k, dim, y0, y1, y2, c0, c1, c2):
    """(log q(y), grad log q(y)), see `log_target`."""
    if code == GAUSSIAN and geo[WRAP] == 0.0:
        return _gaussian_grad(par, 1, dim, y0, y1, y2, True)
    if code == EXTERNAL:
        s0 = ext[1, i, j, k]
        s1 = ext[2, i, j, k] if dim > 1 else 0.0
        s2 = ext[3, i, j, k] if dim > 2 else 0.0
        return ext[0, i, j, k] + s0 * (y0 - c0) + s1 * (y1 - c1) + s2 * (y2 - c2), s0, s1, s2
    y0, y1, y2 = _folded(geo, dim, y0, y1, y2)
    return log_density_grad_at(code, par, y0, y1, y2)


@njit(cache=True)
def upwind_shift(s, w, d, delta):
    """Shift of the centred difference along a direction towards the upwind one.

    With slope s = d(log q)/d(direction), spacing |w| and second difference d, the cell
    Peclet number is P = |s| |w| max(d, delta) / 2. For P <= 1 the centred difference keeps
    the update monotone (shift 0, second order). For P > 1 the argument moves by
    theta * sign(s) * |w| d / 2 with theta = 1 - 1/P (theta -> 1 is the one-sided upwind
    difference), which makes the frozen-coefficient weight of the downwind neighbour
    exactly zero instead of negative. Returns (shift, P).
    """
    p = abs(s) * w * max(d, delta) * 0.5
    if p <= 1.0:
        return 0.0, p
    theta = 1.0 - 1.0 / p
    return theta * (w * d * 0.5 if s > 0 else -w * d * 0.5), p


@njit(cache=True)
def sym_eig3(a00, a11, a22, a01, a02, a12):
    """Eigenvalues (ascending) of a symmetric 3x3 matrix, trigonometric closed form."""
    p1 = a01 * a01 + a02 * a02 + a12 * a12
    q = (a00 + a11 + a22) / 3.0
    if p1 == 0.0:
        e = sorted([a00, a11, a22])
        return e[0], e[1], e[2]
    p2 = (a00 - q) ** 2 + (a11 - q) ** 2 + (a22 - q) ** 2 + 2.0 * p1
    p = math.sqrt(p2 / 6.0)
    b00, b11, b22 = (a00 - q) / p, (a11 - q) / p, (a22 - q) / p
    b01, b02, b12 = a01 / p, a02 / p, a12 / p
    r = 0.5 * (b00 * (b11 * b22 - b12 * b12) - b01 * (b01 * b22 - b12 * b02)
               + b02 * (b01 * b12 - b11 * b02))
    r = min(1.0, max(-1.0, r))
    phi = math.acos(r) / 3.0
    e_hi = q + 2.0 * p * math.cos(phi)
    e_lo = q + 2.0 * p * math.cos(phi + 2.0 * math.pi / 3.0)
    e_mid = 3.0 * q - e_hi - e_lo
    return e_lo, e_mid, e_hi


@njit(cache=True)
def euler_update(new, old, f, dt):
    """new = old + dt * f on flat arrays (f vanishes off the unknown nodes)."""
    for i in range(new.shape[0]):
        new[i] = old[i] + dt * f[i]


@njit(cache=True, parallel=True)
def euler_update_parallel(new, old, f, dt):
    for i in prange(new.shape[0]):
        new[i] = old[i] + dt * f[i]


@njit(cache=True)
def filter_function(x):
    """Froese-Oberman filter S: identity on [-1, 1], zero beyond +-2, linear in between."""
    ax = abs(x)
    if ax <= 1.0:
        return x
    if ax >= 2.0:
        return 0.0
    return (2.0 - ax) if x > 0 else -(2.0 - ax)


@njit(cache=True)
def filter_slope(x):
    ax = abs(x)
    if ax <= 1.0:
        return 1.0
    if ax >= 2.0:
        return 0.0
    return -1.0
