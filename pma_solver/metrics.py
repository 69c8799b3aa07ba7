"""Error norms against the exact solution and per-step diagnostics.

Errors (one row per snapshot): interior nodes (all nodes when periodic); u compared modulo
its mean over those nodes; |e| is the Euclidean norm of the map error; l2 = sqrt(sum |e|^2 h^d).
Diagnostics (reference/math.md sections 3.4 and 8): residual max and L1(p), KL(rho_t|mu) =
-int R p, the drift int R p / int p, map error in L2(p) and max, convexity margin, dt.
"""
from __future__ import annotations

import math

import numpy as np


class ErrorMeter:
    def __init__(self, grid, source_weight: np.ndarray):
        self.grid = grid
        self.mask = grid.interior_mask()
        self.cell = grid.cell_volume
        self.pw = source_weight[self.mask]          # p * cell volume on the error region

    def potential_errors(self, u: np.ndarray, u_exact: np.ndarray) -> tuple[float, float]:
        a, b = u[self.mask], u_exact[self.mask]
        e = (a - a.mean()) - (b - b.mean())
        return float(np.max(np.abs(e))), float(math.sqrt(np.sum(e * e) * self.cell))

    def map_error_field(self, m: np.ndarray, m_exact: np.ndarray) -> np.ndarray:
        return np.sqrt(np.sum((m - m_exact) ** 2, axis=0))[self.mask]

    def snapshot_errors(self, u, m, u_exact, m_exact) -> dict:
        u_linf, u_l2 = self.potential_errors(u, u_exact)
        e = self.map_error_field(m, m_exact)
        return {"u_linf": u_linf, "u_l2": u_l2, "map_linf": float(e.max()),
                "map_l2": float(math.sqrt(np.sum(e * e) * self.cell))}

    def weighted_map_errors(self, m, m_exact) -> tuple[float, float]:
        """(L2(p), max) map error on the error region."""
        e = self.map_error_field(m, m_exact)
        return float(math.sqrt(np.sum(e * e * self.pw))), float(e.max())


def rate_summary(stats: dict, total_weight: float, removes_drift: bool) -> tuple[float, float]:
    """(residual max, drift) from the kernel reductions; drift = p-weighted mean of F."""
    drift = stats["f_weighted_sum"] / total_weight if total_weight > 0 else 0.0
    if removes_drift:
        residual = max(stats["f_max"] - drift, drift - stats["f_min"])
    else:
        residual = max(abs(stats["f_max"]), abs(stats["f_min"]))
    return residual, drift
