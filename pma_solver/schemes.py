"""Spatial schemes for log det D^2 phi, chosen by name (`[scheme] name`).

A scheme owns its options, its ghost width and its stencil description; the compiled node
operators live in kernels/stencils.py.
"""
from __future__ import annotations

import itertools
import math

import numpy as np

from .config import Table
from .grid import Grid
from .kernels.drivers import FD2, FILTERED, WIDE
from .registry import Registry

REGISTRY = Registry("name")
register = REGISTRY.register


class Scheme:
    name = "abstract"
    kernel = FD2
    ghost = 1
    monotone = False

    def __init__(self, t: Table, grid: Grid):
        # delta: curvature floor. Second differences (Hessian eigenvalues for fd2) below it
        # enter as log(delta) + (d - delta)/delta: finite, monotone, and the explicit step
        # stays above cfl * h^2 * delta / (2 d) while a non-convex start is pushed back.
        self.delta = t.number("delta", 1e-3, positive=True)
        self.grid = grid

    def stencil(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(dirs (ndir,3) int, dgeom (ndir,4) = [|w|, w_hat], frames (nf,3) int); axes first."""
        raise NotImplementedError

    def state(self) -> dict:
        dirs, _, frames = self.stencil()
        return {"name": self.name, "delta": self.delta, "ghost": self.ghost,
                "monotone": self.monotone, "directions": dirs[:, :self.grid.dim].tolist(),
                "frames": frames[:, :self.grid.dim].tolist()}


def _pad_frames(frames: np.ndarray) -> np.ndarray:
    out = np.zeros((len(frames), 3), dtype=np.int64)
    out[:, :frames.shape[1]] = frames
    return out


def _direction_geometry(dirs: np.ndarray, grid: Grid) -> np.ndarray:
    h = np.zeros(3)
    h[:grid.dim] = grid.spacing
    w = dirs * h
    length = np.linalg.norm(w, axis=1)
    return np.column_stack([length, w / length[:, None]])


@register("fd2")
class CentredScheme(Scheme):
    """Centred second differences; exact on quadratics, second order, monotone only in 1D."""

    kernel = FD2

    def __init__(self, t: Table, grid: Grid):
        super().__init__(t, grid)
        self.monotone = grid.dim == 1

    def stencil(self):
        d = self.grid.dim
        dirs = np.zeros((d, 3), dtype=np.int64)
        dirs[np.arange(d), np.arange(d)] = 1
        return dirs, _direction_geometry(dirs, self.grid), _pad_frames(np.arange(d).reshape(1, d))


@register("wide_stencil")
class WideStencilScheme(Scheme):
    """Froese-Oberman frame minimum over lattice directions with max-norm <= stencil_radius.

    Directions are primitive lattice vectors (gcd 1, one per +-pair); frames are the sets of
    `dim` directions that are mutually orthogonal in physical coordinates (so unequal
    spacing keeps only the genuinely orthogonal pairs; the axis frame always qualifies).
    Near the boundary the stencil reads a ghost layer of width `stencil_radius` filled by
    the boundary condition (exact values or periodic images).
    """

    kernel = WIDE
    monotone = True

    def __init__(self, t: Table, grid: Grid):
        super().__init__(t, grid)
        self.radius = t.integer("stencil_radius", 1, low=1, high=4)
        self.ghost = self.radius
        self._stencil = _frames(grid, self.radius)
        # Froese-Oberman filtering with fd2 (default): second order where the solution is
        # smooth, monotone fallback where fd2 and the frame minimum disagree by more than
        # 2 eps. The plain frame minimum (filtered = false) is exactly monotone but has an
        # error floor set by the angular resolution of the stencil, which the Dirichlet slow
        # mode amplifies (README, wide-stencil accuracy table).
        self.filtered = t.boolean("filtered", True)
        if self.filtered:
            self.kernel = FILTERED
            self.monotone = False
            self.filter_epsilon = t.number("filter_epsilon", math.sqrt(max(grid.spacing)), positive=True)

    def stencil(self):
        return self._stencil

    def state(self):
        s = super().state()
        s["stencil_radius"] = self.radius
        s["filtered"] = self.filtered
        if self.filtered:
            s["filter_epsilon"] = self.filter_epsilon
        return s


def _frames(grid: Grid, r: int):
    d = grid.dim
    dirs = [tuple(int(k == a) for k in range(d)) for a in range(d)]
    for v in itertools.product(range(-r, r + 1), repeat=d):
        if all(c == 0 for c in v) or math.gcd(*[abs(c) for c in v]) != 1:
            continue
        first = next(c for c in v if c != 0)
        if first < 0 or v in dirs:
            continue
        dirs.append(v)
    dirs_arr = np.zeros((len(dirs), 3), dtype=np.int64)
    dirs_arr[:, :d] = np.array(dirs)
    geom = _direction_geometry(dirs_arr, grid)
    unit = geom[:, 1:1 + d]
    frames = []
    for combo in itertools.combinations(range(len(dirs)), d):
        gram = unit[list(combo)] @ unit[list(combo)].T
        if np.allclose(gram, np.eye(d), atol=1e-12):
            frames.append(combo)
    return dirs_arr, geom, _pad_frames(np.array(frames, dtype=np.int64))


def parse_scheme(t: Table, grid: Grid) -> Scheme:
    name = t.string("name", "fd2", choices=REGISTRY)
    scheme = REGISTRY[name](t, grid)
    t.done()
    return scheme
