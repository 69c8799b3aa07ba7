"""Boundary conditions: which nodes are unknown and how the ghost layer is filled.

The potential is stored on the grid padded by `g` ghost nodes per side (g = stencil reach).
* `dirichlet_exact`: boundary and ghost nodes take the closed-form potential, transient
  when the case has an exact flow from its initial condition, steady otherwise.
* `periodic`: the unknown is psi = phi - |x|^2/2 on the torus; ghosts are periodic images.
"""
from __future__ import annotations

import numpy as np

from .config import Table
from .errors import CaseError
from .grid import Grid

REGISTRY: dict[str, type["Boundary"]] = {}


def register(name: str):
    def deco(cls):
        cls.kind = name
        REGISTRY[name] = cls
        return cls
    return deco


class Boundary:
    kind = "abstract"
    periodic = False     # unknown is psi with phi = |x|^2/2 + psi
    needs_exact = False
    allows_unnormalized = False
    removes_drift = False    # constants in log p, log q only shift phi: judge the residual modulo its mean

    def __init__(self, t: Table, grid: Grid):
        self.grid = grid

    def setup(self, grid: Grid, g: int, exact) -> None:
        self.g = g
        self.exact = exact
        d = grid.dim
        self.padded_shape = tuple(list(np.array(grid.shape) + 2 * g) + [1] * (3 - d))
        self.lo, self.hi = self.unknown_range(grid, g)

    def unknown_range(self, grid: Grid, g: int):
        raise NotImplementedError

    def fill(self, u: np.ndarray, t: float) -> None:
        """Fill the non-unknown nodes of the padded potential at time t."""
        raise NotImplementedError

    def state(self) -> dict:
        return {"kind": self.kind}


def _ranges(grid: Grid, g: int, inset: int):
    lo = np.zeros(3, dtype=np.int64)
    hi = np.ones(3, dtype=np.int64)
    for k in range(grid.dim):
        lo[k] = g + inset
        hi[k] = g + grid.shape[k] - inset
    return lo, hi


@register("dirichlet_exact")
class DirichletExact(Boundary):
    needs_exact = True

    def __init__(self, t: Table, grid: Grid):
        super().__init__(t, grid)
        if any(n < 3 for n in grid.shape):
            raise t.error("kind", "dirichlet_exact needs at least 3 nodes per axis")

    def unknown_range(self, grid, g):
        return _ranges(grid, g, 1)

    def setup(self, grid, g, exact):
        super().setup(grid, g, exact)
        pts = grid.padded_points(g)
        mask = np.ones(pts.shape[:-1], dtype=bool)
        inner = tuple(slice(lo, hi) for lo, hi in zip(self.lo[:grid.dim], self.hi[:grid.dim]))
        mask[inner] = False
        self.shell = mask.reshape(self.padded_shape)
        self.shell_points = pts[mask]
        self._steady_values = None if exact.transient else exact.potential(self.shell_points)

    def fill(self, u, t):
        values = self._steady_values
        if values is None:
            values = self.exact.potential(self.shell_points, t)
        u[self.shell] = values


@register("periodic")
class Periodic(Boundary):
    periodic = True
    allows_unnormalized = True
    removes_drift = True

    def unknown_range(self, grid, g):
        return _ranges(grid, g, 0)

    def fill(self, u, t):
        g = self.g
        for k in range(self.grid.dim):
            n = self.grid.shape[k]
            src_lo = [slice(None)] * 3
            dst_lo = [slice(None)] * 3
            src_lo[k] = slice(n, n + g)          # last g interior nodes -> low ghosts
            dst_lo[k] = slice(0, g)
            u[tuple(dst_lo)] = u[tuple(src_lo)]
            src_hi = [slice(None)] * 3
            dst_hi = [slice(None)] * 3
            src_hi[k] = slice(g, 2 * g)          # first g interior nodes -> high ghosts
            dst_hi[k] = slice(n + g, n + 2 * g)
            u[tuple(dst_hi)] = u[tuple(src_hi)]


def parse_boundary(t: Table, grid: Grid) -> Boundary:
    kind = t.string("kind", "dirichlet_exact", choices=REGISTRY)
    boundary = REGISTRY[kind](t, grid)
    t.done()
    return boundary


def check_periodic_grid(grid: Grid, g: int) -> None:
    if any(n < 2 * g + 1 for n in grid.shape):
        raise CaseError(f"periodic grids need at least {2 * g + 1} nodes per axis for this stencil",
                        table="grid", key="shape")
