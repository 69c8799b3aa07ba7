"""Damped Newton for one backward-Euler step  (v - u)/dt = F(v)  (dt = inf: F(v) = 0).

The Jacobian I/dt - dF/du is assembled from the compiled node Jacobians. For a monotone
scheme dF/du has non-negative off-diagonals and non-positive row sums, so I/dt - dF/du is
an M-matrix: its inverse is non-negative and the backward-Euler step is monotone for every
dt (discrete comparison principle). When constants only shift phi (periodic and transport
boundaries) the steady system is singular along constants; it is bordered with the drift
kappa as extra unknown and a fixed p-weighted mean.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from .metrics import rate_summary

LINEAR_SOLVERS = ("auto", "direct", "iterative")


AMG_FROM_UNKNOWNS = 1 << 17


def resolve_linear_solver(kind: str, dim: int, unknowns: int) -> str:
    """`auto`: SuperLU in 1D and 2D up to 2^17 unknowns; GMRES + AMG in 3D, where LU fill-in
    makes the direct solve 25x slower already at 33^3, and on larger 2D grids, where its
    cost grows like N^1.4 against N^1.05 for AMG (benchmarks/steady_state.py)."""
    if kind != "auto":
        return kind
    return "iterative" if dim == 3 or unknowns >= AMG_FROM_UNKNOWNS else "direct"


@dataclass
class NewtonResult:
    converged: bool
    iterations: int
    residual: float
    linear_time: float
    linear_iterations: int
    reason: str = ""           # set when the step failed (not merely unconverged)

    @property
    def failed(self) -> bool:
        return bool(self.reason)


class LinearSolver:
    """Sparse direct (SuperLU) or GMRES with a smoothed-aggregation AMG preconditioner (pyamg)."""

    # Inexact Newton: a relative linear residual of 1e-8 costs a few more Krylov iterations than
    # Newton's own quadratic rate needs, and never stalls on round-off like 1e-10 can
    def __init__(self, kind: str, rtol: float = 1e-8):
        self.kind = kind
        self.rtol = rtol
        self.iterations = 0

    def solve(self, A: sp.csr_matrix, b: np.ndarray) -> np.ndarray:
        if self.kind == "direct":
            self.iterations = 1
            return spla.splu(A.tocsc(), permc_spec="COLAMD").solve(b)
        import pyamg        # imported here: the direct path (1D, 2D) never pays for it
        M = pyamg.smoothed_aggregation_solver(A.tocsr(), symmetry="nonsymmetric").aspreconditioner()
        count = [0]

        def callback(_):
            count[0] += 1

        x, info = spla.gmres(A, b, M=M, rtol=self.rtol, atol=0.0, restart=50, maxiter=4,
                             callback=callback, callback_type="pr_norm")
        self.iterations = count[0]
        if info != 0 or not np.all(np.isfinite(x)):
            self.iterations += 1
            return spla.splu(A.tocsc(), permc_spec="COLAMD").solve(b)   # robust fallback
        return x


class NewtonSolver:
    def __init__(self, op, *, tol: float, max_iter: int, linear_solver: str):
        self.op = op
        self.tol = tol
        self.max_iter = max_iter
        self.linear = LinearSolver(resolve_linear_solver(linear_solver, op.dim, op.n_unknowns))
        self.bordered = op.boundary.removes_drift
        self.w = op.unknown_values(op.weight)
        self.w = self.w / self.w.sum() if self.w.sum() > 0 else self.w

    def _residual(self, v_state, u_old_vals, dt, kappa):
        """G(v) = (v - u)/dt - (F(v) - kappa) on the unknowns, and the kernel stats."""
        op = self.op
        op.boundary.fill(v_state, self.t)
        stats = op.evaluate(v_state)
        F = op.unknown_values(op.out)
        G = -(F - kappa)
        if math.isfinite(dt):
            G += (op.unknown_values(v_state) - u_old_vals) / dt
        return G, stats

    def step(self, new: np.ndarray, old: np.ndarray, t_new: float, dt: float, *, max_iter: int | None = None,
             require_convex: bool = True, pseudo_time: bool = False, rtol: float = 0.0) -> NewtonResult:
        """Solve for the state at t_new = t + dt into `new` (starting from `old`).

        In pseudo-time (steady solver) with drift-free boundaries the system is bordered
        with the drift kappa and a fixed p-weighted mean, so constants never stall it."""
        op = self.op
        self.t = t_new
        u_old = op.unknown_values(old)
        new[...] = old
        if op.boundary.moves_with_time:
            # carry the boundary increment into the interior (harmonically): starting Newton
            # from the old interior next to moved boundary values would create spurious
            # non-convex nodes
            op.boundary.fill(new, t_new)
            new += op.harmonic_lift(new - old)
        kappa = 0.0
        steady = not math.isfinite(dt)
        border = self.bordered and (steady or pseudo_time)
        G, stats = self._residual(new, u_old, dt, kappa)
        norm = float(np.max(np.abs(G))) if G.size else 0.0
        lin_time, lin_its = 0.0, 0
        margin0 = stats["margin_min"]
        # Round-off floor of G: terms of size max|F| and max|v|/dt cancel in it.
        scale = float(np.max(np.abs(op.unknown_values(op.out)))) if G.size else 0.0
        if math.isfinite(dt):
            scale += float(np.max(np.abs(u_old))) / dt if G.size else 0.0
        # rtol: a backward-Euler step only needs its residual reduced well below the O(dt^2)
        # truncation error, not to the steady-state tolerance
        tol = max(self.tol, 1e-13 * scale, rtol * norm)
        it = 0
        for it in range(1, (max_iter or self.max_iter) + 1):
            if not np.isfinite(norm):
                return NewtonResult(False, it - 1, norm, lin_time, lin_its, "non-finite residual")
            if norm <= tol:
                return NewtonResult(True, it - 1, norm, lin_time, lin_its)
            J = -op.jacobian(new)
            if not steady:
                J = J + sp.identity(J.shape[0], format="csr") / dt
            rhs = -G
            if border:
                n = J.shape[0]
                ones = np.ones((n, 1))
                J = sp.bmat([[J, sp.csr_matrix(ones)], [sp.csr_matrix(self.w[None, :]), None]], format="csr")
                rhs = np.concatenate([rhs, [0.0]])
            t0 = time.perf_counter()
            try:
                delta = self.linear.solve(J, rhs)
            except RuntimeError as exc:          # singular factor
                return NewtonResult(False, it, norm, lin_time, lin_its, f"linear solve failed: {exc}")
            lin_time += time.perf_counter() - t0
            lin_its += self.linear.iterations
            if border:
                delta, dkappa = delta[:-1], delta[-1]
            else:
                dkappa = 0.0
            base = op.unknown_values(new)
            lam = 1.0
            accepted = False
            for _ in range(12):                   # backtracking line search on max|G|
                trial = base + lam * delta
                op.set_unknowns(new, trial)
                G_try, stats = self._residual(new, u_old, dt, kappa + lam * dkappa)
                n_try = float(np.max(np.abs(G_try)))
                convex_ok = (not require_convex) or margin0 < 0 or stats["margin_min"] >= 0
                if np.isfinite(n_try) and convex_ok and n_try <= (1 - 1e-4 * lam) * norm:
                    accepted = True
                    break
                lam *= 0.5
            if not accepted:
                op.set_unknowns(new, base)
                self._residual(new, u_old, dt, kappa)
                return NewtonResult(False, it, norm, lin_time, lin_its, "line search failed")
            kappa += lam * dkappa
            G, norm = G_try, n_try
        return NewtonResult(norm <= tol, it, norm, lin_time, lin_its)
