"""Scalar helpers shared by the stencil kernels."""
from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from ..density_kernels import EXTERNAL, log_density_at

# geo = [h0, h1, h2, x(padded index 0) per axis, box length per axis, identity, wrap, box lower per axis]
H0, H1, H2, X0, X1, X2, L0, L1, L2, IDENTITY, WRAP, LOW0, LOW1, LOW2 = range(14)


@njit(cache=True)
def log_floor(d, delta):
    """log d for d >= delta, continued linearly (slope 1/delta) below: monotone, C^1, finite."""
    if d >= delta:
        return math.log(d)
    return math.log(delta) + (d - delta) / delta


@njit(cache=True)
def wrap(y, lower, length):
    return lower + (y - lower) % length


@njit(cache=True)
def log_target(code, par, ext, geo, i, j, k, dim, y0, y1, y2, c0, c1, c2):
    """log q at the map value y (unwrapped).

    Compiled targets are evaluated exactly (at y folded into the box on periodic runs);
    EXTERNAL targets use the first-order expansion around the axis gradient c, whose value
    and gradient were evaluated in NumPy into `ext`.
    """
    if code == EXTERNAL:
        v = ext[0, i, j, k] + ext[1, i, j, k] * (y0 - c0)
        if dim > 1:
            v += ext[2, i, j, k] * (y1 - c1)
        if dim > 2:
            v += ext[3, i, j, k] * (y2 - c2)
        return v
    if geo[WRAP] != 0.0:
        y0 = wrap(y0, geo[LOW0], geo[L0])
        if dim > 1:
            y1 = wrap(y1, geo[LOW1], geo[L1])
        if dim > 2:
            y2 = wrap(y2, geo[LOW2], geo[L2])
    return log_density_at(code, par, y0, y1, y2)


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
