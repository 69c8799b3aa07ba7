"""The discrete right-hand side F(u) = log det D^2 phi + log q(grad phi) - log p.

`FlowOperator` does the grid bookkeeping (padding, ghost filling, source values, target
flattening, parallel dispatch) around the compiled node kernels.
"""
from __future__ import annotations

import math

import numba
import numpy as np

from . import density_kernels as dk
from .case import Case
from .errors import CaseError
from .kernels import common
from .kernels.drivers import FD2, FILTERED, NSTATS, STATS, WIDE, rhs_parallel, rhs_serial
from .kernels.jacobian import jacobian_parallel, jacobian_serial

PARALLEL_THRESHOLD = 16_384   # nodes; below this thread start-up costs more than it saves
AXPY_PARALLEL_THRESHOLD = 1 << 20   # the memory-bound Euler update gains from threads only when large


class FlowOperator:
    def __init__(self, case: Case):
        self.case = case
        grid, scheme, boundary = case.grid, case.scheme, case.boundary
        self.grid = grid
        self.dim = grid.dim
        self.g = g = scheme.ghost
        if boundary.periodic:
            from .boundary import check_periodic_grid
            check_periodic_grid(grid, g)
        boundary.setup(grid, g, case.exact)
        self.boundary = boundary
        self.shape = boundary.padded_shape
        self.lo, self.hi = boundary.lo, boundary.hi          # the unknown block
        self.slo, self.shi = boundary.scheme_lo, boundary.scheme_hi   # where the interior scheme runs
        self.unknown = tuple(slice(a, b) for a, b in zip(self.lo, self.hi))
        self.nodes = tuple(slice(g, g + n) for n in grid.shape) + (slice(None),) * (3 - self.dim)

        geo = np.zeros(common.GEO_SIZE)
        geo[common.H0:common.H0 + 3] = 1.0
        geo[common.H0:common.H0 + self.dim] = grid.spacing
        geo[common.X0:common.X0 + self.dim] = np.asarray(grid.lower) - g * np.asarray(grid.spacing)
        geo[common.L0:common.L0 + 3] = 1.0
        geo[common.L0:common.L0 + self.dim] = grid.length
        geo[common.LOW0:common.LOW0 + self.dim] = grid.lower
        geo[common.IDENTITY] = 1.0 if boundary.periodic else 0.0
        geo[common.WRAP] = 1.0 if boundary.periodic else 0.0
        geo[common.FILTER_EPS] = getattr(scheme, "filter_epsilon", 1.0)
        self.geo = geo

        self.points = points = grid.padded_points(g).reshape(self.shape + (self.dim,))
        logp = case.source.log_density(points)
        bad = ~np.isfinite(logp[self.unknown])
        if bad.any():
            x = points[self.unknown][bad][0]
            raise CaseError(f"the source density is zero or not finite at grid node x = {x.tolist()}; "
                            "the source must be positive on the grid (shrink the box)",
                            table="source", key="kind")
        self.logp = np.where(np.isfinite(logp), logp, dk.LOG_FLOOR)
        self.weight = np.zeros(self.shape)
        self.weight[self.unknown] = np.exp(self.logp[self.unknown]) * grid.cell_volume

        compiled = case.target.compiled()
        if compiled is None:
            self.code, self.par = dk.EXTERNAL, np.zeros(1)
            self.ext = np.zeros((1 + self.dim,) + self.shape)
        else:
            self.code, self.par = compiled
            self.par = np.ascontiguousarray(self.par, dtype=float)
            self.ext = np.zeros((1, 1, 1, 1))
        self.kernel = scheme.kernel
        self.delta = scheme.delta
        self.dirs, self.dgeom, self.frames = (np.ascontiguousarray(a) for a in scheme.stencil())
        self.out = np.zeros(self.shape)
        self.active = np.zeros(self.shape, dtype=np.int32)
        self.stats = np.zeros(NSTATS)
        # Unknown numbering for Jacobians: C order over the unknown block; -1 marks fixed
        # values; periodic ghosts carry the number of their image.
        self.uid = np.full(self.shape, -1, dtype=np.int64)
        self.n_unknowns = int(np.prod([b - a for a, b in zip(self.lo, self.hi)]))
        self.uid[self.unknown] = np.arange(self.n_unknowns).reshape(self.uid[self.unknown].shape)
        boundary.fill_ids(self.uid)
        self.jac_block = {FD2: 3 ** self.dim, WIDE: 1 + 2 * self.dim,
                          FILTERED: 3 ** self.dim + 1 + 2 * self.dim}[self.kernel]

    # -- state ---------------------------------------------------------------
    def initial_state(self, boundary_time: float = 0.0) -> np.ndarray:
        """Padded unknown at t = 0 (psi on the torus, phi otherwise), with boundary values at
        `boundary_time` (inf for the steady solver, whose initial guess is then corrected by
        the harmonic extension of the boundary mismatch so that it satisfies the boundary
        condition)."""
        init = self.case.initial
        x = self.points
        if init.kind in ("quadratic", "harmonic"):
            phi = 0.5 * np.sum(x * x, axis=-1)
        elif init.kind == "exact":
            phi = self.case.exact.potential(x)
        else:
            phi = init.expression(x)
        u = phi - 0.5 * np.sum(x * x, axis=-1) if self.boundary.periodic else phi
        u = np.ascontiguousarray(u, dtype=float)
        interior = u.copy()
        self.boundary.fill(u, boundary_time)
        matched = init.kind == "harmonic" or (math.isinf(boundary_time) and init.kind != "exact")
        if matched:
            u = self.boundary.matched_initial(self, u, interior)
        return u

    @property
    def harmonic_lift(self) -> "HarmonicLift":
        if getattr(self, "_lift", None) is None:
            self._lift = HarmonicLift(self.lo, self.hi, self.grid)
        return self._lift

    def potential(self, u: np.ndarray) -> np.ndarray:
        """phi at the grid nodes, shape grid.shape."""
        phi = u[self.nodes]
        if self.boundary.periodic:
            x = self.points[self.nodes]
            phi = phi + 0.5 * np.sum(x * x, axis=-1)
        return phi.reshape(self.grid.shape).copy()

    def gradient(self, u: np.ndarray) -> np.ndarray:
        """Centred axis gradient of phi at the grid nodes, shape (dim, *grid.shape)."""
        out = np.empty((self.dim,) + self.grid.shape)
        g = self.g
        for k in range(self.dim):
            plus = list(self.nodes)
            minus = list(self.nodes)
            n = self.grid.shape[k]
            plus[k] = slice(g + 1, g + 1 + n)
            minus[k] = slice(g - 1, g - 1 + n)
            grad = (u[tuple(plus)] - u[tuple(minus)]) / (2.0 * self.grid.spacing[k])
            if self.boundary.periodic:
                grad = grad + self.points[self.nodes][..., k]
            out[k] = grad.reshape(self.grid.shape)
        return out

    # -- evaluation ------------------------------------------------------------
    def _update_external(self, u: np.ndarray) -> None:
        """Value and gradient of log q at the axis gradient, for targets without a kernel."""
        grad = np.moveaxis(self.gradient(u), 0, -1)
        if self.boundary.periodic:
            grad = np.asarray(self.grid.lower) + np.mod(grad - np.asarray(self.grid.lower), self.grid.length)
        target = self.case.target
        lq = target.log_density(grad)
        lq = np.where(np.isfinite(lq), lq, dk.LOG_FLOOR)
        nodes = self.nodes
        shape = self.out[nodes].shape
        self.ext[0][nodes] = lq.reshape(shape)
        for k in range(self.dim):
            step = 1e-5 * (1.0 + np.abs(grad[..., k]))
            e = np.zeros(self.dim)
            e[k] = 1.0
            hp = target.log_density(grad + step[..., None] * e)
            hm = target.log_density(grad - step[..., None] * e)
            slope = np.where(np.isfinite(hp) & np.isfinite(hm), (hp - hm) / (2 * step), 0.0)
            self.ext[1 + k][nodes] = slope.reshape(shape)

    def evaluate(self, u: np.ndarray, diag: bool = True) -> dict:
        """Compute F(u) into self.out (unknown nodes) and return the kernel reductions
        (`diag=False` skips diagnostic-only work such as the fd2 Peclet number in 2D/3D)."""
        if self.code == dk.EXTERNAL:
            self._update_external(u)
        kernel = rhs_parallel if self._parallel() else rhs_serial
        kernel(self.kernel, self.dim, u, self.slo, self.shi, self.geo, self.logp, self.weight,
               self.code, self.par, self.ext, self.delta, self.dirs, self.dgeom, self.frames,
               self.out, self.active, self.stats, diag)
        self.boundary.rows(self, u)
        return dict(zip(STATS, self.stats.tolist()))

    def jacobian(self, u: np.ndarray):
        """dF/du on the unknowns (scipy CSR) at the state of the last `evaluate(u)` call."""
        import scipy.sparse as sp
        n, block = self.n_unknowns, self.jac_block
        rows = np.full(n * block, -1, dtype=np.int64)
        cols = np.full(n * block, -1, dtype=np.int64)
        vals = np.zeros(n * block)
        kernel = jacobian_parallel if self._parallel() else jacobian_serial
        kernel(self.kernel, self.dim, u, self.slo, self.shi, self.geo, self.logp, self.code, self.par,
               self.ext, self.delta, self.dirs, self.dgeom, self.frames, self.active, self.uid, rows,
               cols, vals, block)
        keep = cols >= 0
        J = sp.csr_matrix((vals[keep], (rows[keep], cols[keep])), shape=(n, n))
        return self.boundary.row_jacobian(self, u, J)

    def unknown_values(self, u: np.ndarray) -> np.ndarray:
        return u[self.unknown].reshape(-1).copy()

    def set_unknowns(self, u: np.ndarray, values: np.ndarray) -> None:
        u[self.unknown] = values.reshape(u[self.unknown].shape)

    def residual_field(self) -> np.ndarray:
        return self.out[self.unknown]

    def euler_step(self, new: np.ndarray, old: np.ndarray, dt: float) -> None:
        """new = old + dt * F(old) on the unknown nodes (F, evaluated last, is zero elsewhere)."""
        large = self.grid.size >= AXPY_PARALLEL_THRESHOLD and numba.get_num_threads() > 1
        update = common.euler_update_parallel if large else common.euler_update
        update(new.reshape(-1), old.reshape(-1), self.out.reshape(-1), dt)

    def _parallel(self) -> bool:
        return self.grid.size >= PARALLEL_THRESHOLD and numba.get_num_threads() > 1

    @property
    def total_weight(self) -> float:
        return float(self.weight.sum())

    def max_stable_dt(self) -> float:
        coef = self.stats[0]
        return math.inf if coef <= 0 else 1.0 / coef


class HarmonicLift:
    """Discrete harmonic extension into the unknown nodes of values given around them.

    Used to start the flow (|x|^2/2 + H matches Dirichlet data at t = 0: starting from data
    that disagree with the boundary can make the flow lose the boundary condition, since
    -log q(grad phi) grows quadratically and log det D^2 phi only logarithmically) and to
    carry the boundary increment of a time step into the interior as Newton's initial
    guess. The Laplacian is factorised once (1D, 2D) or gets an AMG hierarchy once (3D).
    """

    def __init__(self, lo, hi, grid):
        import scipy.sparse as sp
        import scipy.sparse.linalg as spla
        self.lo, self.hi, self.grid = lo, hi, grid
        self.inner = tuple(slice(a, b) for a, b in zip(lo, hi))
        shape = tuple(b - a for a, b in zip(lo, hi))
        self.shape = shape
        n = int(np.prod(shape))
        idx = np.arange(n).reshape(shape)
        rows, cols, vals = [], [], []
        diag = np.zeros(n)
        for k in range(grid.dim):
            w = 1.0 / grid.spacing[k] ** 2
            diag += 2 * w
            for step in (-1, 1):
                valid = np.ones(shape, dtype=bool)
                edge = [slice(None)] * 3
                edge[k] = -1 if step == 1 else 0
                valid[tuple(edge)] = False
                rows.append(idx[valid])
                cols.append(np.roll(idx, -step, axis=k)[valid])
                vals.append(np.full(valid.sum(), -w))
        A = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))
        A = (A + sp.diags(diag)).tocsr()
        if grid.dim == 3:
            # LU fill-in of the 3D Laplacian costs minutes at 65^3; AMG-preconditioned CG
            # on this SPD matrix takes a fraction of a second per solve
            import pyamg
            hierarchy = pyamg.smoothed_aggregation_solver(A, symmetry="symmetric")
            self._solve = lambda b: hierarchy.solve(b, tol=1e-12, accel="cg", maxiter=200)
        else:
            self._solve = spla.splu(A.tocsc()).solve

    def __call__(self, values: np.ndarray) -> np.ndarray:
        """Harmonic function on the unknowns with boundary values `values` (padded array)."""
        rhs = np.zeros(self.shape)
        for k in range(self.grid.dim):
            w = 1.0 / self.grid.spacing[k] ** 2
            for step in (-1, 1):
                edge = [slice(None)] * 3
                edge[k] = -1 if step == 1 else 0
                outside = [slice(a, b) for a, b in zip(self.lo, self.hi)]
                outside[k] = slice(self.hi[k], self.hi[k] + 1) if step == 1 else slice(self.lo[k] - 1, self.lo[k])
                rhs[tuple(edge)] += values[tuple(outside)].reshape(rhs[tuple(edge)].shape) * w
        out = np.zeros_like(values)
        out[self.inner] = self._solve(rhs.ravel()).reshape(self.shape)
        return out
