"""Slow, obvious NumPy twins of the compiled node operators (used only by tests).

`reference_rhs(op, u)` recomputes F on the unknown nodes of a FlowOperator from the padded
potential with array slicing, following the formulas in kernels/stencils.py line by line
but without sharing any code with them.
"""
from __future__ import annotations

import numpy as np

from .kernels.common import FILTER_EPS
from .kernels.drivers import FD2, FILTERED


def _log_floor(d, delta):
    return np.where(d >= delta, np.log(np.maximum(d, delta)), np.log(delta) + (d - delta) / delta)


def _shift(u, off, lo, hi):
    return u[tuple(slice(a + o, b + o) for a, b, o in zip(lo, hi, off))]


def _target(op, y):
    """log q and its gradient at map values y (..., dim) by NumPy (central differences)."""
    dim = op.dim
    if op.boundary.periodic:
        low = np.asarray(op.grid.lower)
        y = low + np.mod(y - low, op.grid.length)
    lq = op.case.target.log_density(y)
    grad = np.zeros(y.shape)
    for k in range(dim):
        e = np.zeros(dim)
        e[k] = 1e-6 * 1.0
        step = 1e-6 * (1.0 + np.abs(y[..., k]))
        grad[..., k] = (op.case.target.log_density(y + step[..., None] * np.eye(dim)[k])
                        - op.case.target.log_density(y - step[..., None] * np.eye(dim)[k])) / (2 * step)
    return lq, grad


def _upwind(s, w, d, delta):
    p = np.abs(s) * w * np.maximum(d, delta) / 2
    theta = np.where(p > 1, 1 - 1 / np.maximum(p, 1), 0.0)
    return theta * np.sign(s) * w * d / 2, p


def reference_rhs(op, u: np.ndarray) -> np.ndarray:
    if op.kernel == FILTERED:
        # Froese-Oberman filter: F_mono + eps S((F_fd2 - F_mono)/eps)
        mono, accurate = _wide(op, u), _fd2(op, u)
        eps = op.geo[FILTER_EPS]
        x = (accurate - mono) / eps
        ax = np.abs(x)
        filt = np.where(ax <= 1, x, np.where(ax >= 2, 0.0, np.sign(x) * (2 - ax)))
        return mono + eps * filt
    return _fd2(op, u) if op.kernel == FD2 else _wide(op, u)


def _fd2(op, u):
    lo, hi, dim, delta = op.lo, op.hi, op.dim, op.delta
    h = list(op.grid.spacing)
    x = _shift(op.points, (0, 0, 0), lo, hi)
    ident = 1.0 if op.boundary.periodic else 0.0
    c = _shift(u, (0, 0, 0), lo, hi)
    e = np.eye(3, dtype=int)
    D = np.zeros(c.shape + (dim, dim))
    g = np.zeros(c.shape + (dim,))
    for a in range(dim):
        D[..., a, a] = (_shift(u, e[a], lo, hi) - 2 * c + _shift(u, -e[a], lo, hi)) / h[a] ** 2 + ident
        g[..., a] = (_shift(u, e[a], lo, hi) - _shift(u, -e[a], lo, hi)) / (2 * h[a]) + ident * x[..., a]
        for b in range(a + 1, dim):
            D[..., a, b] = D[..., b, a] = (
                _shift(u, e[a] + e[b], lo, hi) - _shift(u, e[a] - e[b], lo, hi)
                - _shift(u, e[b] - e[a], lo, hi) + _shift(u, -e[a] - e[b], lo, hi)) / (4 * h[a] * h[b])
    lam = np.linalg.eigvalsh(D)
    logdet = np.where(lam[..., 0] >= delta, np.log(np.abs(np.linalg.det(D))),
                      _log_floor(lam, delta).sum(axis=-1))
    y = g.copy()
    if dim == 1:
        _, s = _target(op, g)
        y[..., 0] += _upwind(s[..., 0], h[0], D[..., 0, 0], delta)[0]
    lq = op.case.target.log_density(_fold(op, y))
    return logdet + lq - _shift(op.logp, (0, 0, 0), lo, hi)


def _wide(op, u):
    lo, hi, dim, delta = op.lo, op.hi, op.dim, op.delta
    x = _shift(op.points, (0, 0, 0), lo, hi)
    ident = 1.0 if op.boundary.periodic else 0.0
    c = _shift(u, (0, 0, 0), lo, hi)
    dirs, geom, frames = op.dirs, op.dgeom, op.frames
    Dv, Gv = [], []
    for v in range(len(dirs)):
        w = geom[v, 0]
        up, um = _shift(u, dirs[v], lo, hi), _shift(u, -dirs[v], lo, hi)
        Dv.append((up - 2 * c + um) / w ** 2 + ident)
        Gv.append((up - um) / (2 * w) + ident * np.einsum("...k,k->...", x, geom[v, 1:1 + dim]))
    best = np.full(c.shape, np.inf)
    for f in frames:
        f = f[:dim]
        y = sum(Gv[v][..., None] * geom[v, 1:1 + dim] for v in f)
        _, s = _target(op, y)
        z = y.copy()
        for v in f:
            slope = np.einsum("...k,k->...", s, geom[v, 1:1 + dim])
            z += _upwind(slope, geom[v, 0], Dv[v], delta)[0][..., None] * geom[v, 1:1 + dim]
        val = sum(_log_floor(Dv[v], delta) for v in f) + op.case.target.log_density(_fold(op, z))
        best = np.minimum(best, val)
    return best - _shift(op.logp, (0, 0, 0), lo, hi)


def _fold(op, y):
    if op.boundary.periodic:
        low = np.asarray(op.grid.lower)
        return low + np.mod(y - low, op.grid.length)
    return y
