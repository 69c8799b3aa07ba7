"""Closed-form Brenier potentials and maps used for boundary data and error reports.

* `GaussianFlow`: N(m1,S1) -> N(m2,S2) in any dimension. The flow from a quadratic
  phi0 = x^T A0 x/2 + b0.x + c0 stays quadratic, with (reference/math.md 7.4)
      A' = S1^{-1} - A S2^{-1} A,   M = A m1 + b,   M' = -A S2^{-1} (M - m2),
      c' = log det A - (b-m2)^T S2^{-1} (b-m2)/2 + m1^T S1^{-1} m1/2 + log(det S1/det S2)/2,
  solved exactly by [U; V] = expm(t H)[A0; I], H = [[0, S1^{-1}], [S2^{-1}, 0]], A = U V^{-1},
  M = m2 + V^{-T}(M0 - m2); c by Gauss-Legendre quadrature of c'.
* `OneDimensionalMap`: T = F_q^{-1}(F_p(x)) for any pair of 1D densities (bisection on the
  CDF or survival function, ~1e-14), phi = integral of T by Gauss-Legendre panels.
* `ProductMap`: separable pairs, phi = sum of 1D potentials.
* `ExpressionSolution`: manufactured potentials and maps from the case file.
* Transport boundaries (grad phi(X) = Y, `transport_solution`): the densities are restricted
  to X and Y, so the closed forms are those of the restricted pairs: 1D and separable
  box -> box pairs by CDF inversion of the restricted factors, Gaussian pairs only when the
  affine Gaussian map sends the box X exactly onto Y (then it pushes p|X onto q|Y).
"""
from __future__ import annotations

import math

import numpy as np

from .densities import Density, GaussianDensity, ProductDensity
from .expression import Expression


_GL12 = np.polynomial.legendre.leggauss(12)
_GL16 = np.polynomial.legendre.leggauss(16)


class ExactSolution:
    kind = "abstract"
    transient = False

    def potential(self, points: np.ndarray, t: float = math.inf) -> np.ndarray:
        raise NotImplementedError

    def map(self, points: np.ndarray, t: float = math.inf) -> np.ndarray:
        raise NotImplementedError

    def state(self) -> dict:
        return {"kind": self.kind, "transient": self.transient}


class GaussianFlow(ExactSolution):
    kind = "gaussian"
    _CHUNK = 2.0      # exact propagation is restarted every _CHUNK time units (no overflow)
    _PANEL = 0.125    # Gauss-Legendre panel width for c(t)

    def __init__(self, source: GaussianDensity, target: GaussianDensity, A0=None, b0=None,
                 c0: float = 0.0, transient: bool = True):
        d = source.dim
        self.m1, self.S1 = source.mean, source.cov
        self.m2, self.S2 = target.mean, target.cov
        self.P1, self.P2 = np.linalg.inv(self.S1), np.linalg.inv(self.S2)
        self.A0 = np.eye(d) if A0 is None else np.asarray(A0, float)
        b0 = np.zeros(d) if b0 is None else np.asarray(b0, float)
        self.transient = transient
        H = np.block([[np.zeros((d, d)), self.P1], [self.P2, np.zeros((d, d))]])
        # H is similar to a symmetric matrix up to sign structure: real eigenvalues
        # +-sqrt(eig(S1^{-1} S2^{-1})), diagonalisable, so expm(sH) = W e^{s Lambda} W^{-1}.
        lam, W = np.linalg.eig(H)
        self._lam, self._W, self._Winv = lam.real, W.real, np.linalg.inv(W.real)
        self.H = H
        # Restart the exact propagation often enough that exp(chunk * rate) stays tame.
        self._CHUNK = min(2.0, 20.0 / max(float(np.max(np.abs(self._lam))), 1e-12))
        self._PANEL = self._CHUNK / 16
        self.const = 0.5 * self.m1 @ self.P1 @ self.m1 + 0.5 * (
            np.linalg.slogdet(self.S1)[1] - np.linalg.slogdet(self.S2)[1])
        # Steady Brenier map A* = S1^{-1/2} (S1^{1/2} S2 S1^{1/2})^{1/2} S1^{-1/2}.
        r1 = _sqrtm(self.S1)
        r1i = np.linalg.inv(r1)
        self.A_star = r1i @ _sqrtm(r1 @ self.S2 @ r1) @ r1i
        self.b_star = self.m2 - self.A_star @ self.m1
        self._chunks = [(self.A0, self.A0 @ self.m1 + b0, float(c0))]   # (A, M, c) at k*_CHUNK
        self._panels: dict[int, float] = {}
        self._settled = self._settling_time() if transient else 0.0

    # -- exact propagation ---------------------------------------------------
    def _propagate(self, A, M, s: np.ndarray):
        """(A(s), M(s)) for an array of times s >= 0 measured from a state (A, M)."""
        d = len(M)
        E = np.einsum("ij,nj,jk->nik", self._W, np.exp(np.outer(s, self._lam)), self._Winv)
        UV = E @ np.vstack([A, np.eye(d)])                        # (n, 2d, d)
        U, V = UV[:, :d], UV[:, d:]
        A_s = np.linalg.solve(np.transpose(V, (0, 2, 1)), np.transpose(U, (0, 2, 1)))
        A_s = 0.5 * (A_s + np.transpose(A_s, (0, 2, 1)))
        M_s = self.m2 + np.linalg.solve(np.transpose(V, (0, 2, 1)), (M - self.m2)[None, :, None])[..., 0]
        return A_s, M_s

    def _rate_c(self, A_s, M_s):
        b = M_s - np.einsum("nij,j->ni", A_s, self.m1)
        r = b - self.m2
        return (np.linalg.slogdet(A_s)[1] - 0.5 * np.einsum("ni,ij,nj->n", r, self.P2, r)
                + self.const)

    def _integrate_c(self, A, M, s0: float, s1: float) -> float:
        """Integral of c' over [s0, s1], times measured from the state (A, M)."""
        if s1 <= s0:
            return 0.0
        x, w = _GL12
        nodes = 0.5 * (s0 + s1) + 0.5 * (s1 - s0) * x
        A_s, M_s = self._propagate(A, M, nodes)
        return 0.5 * (s1 - s0) * float(w @ self._rate_c(A_s, M_s))

    def _chunk(self, k: int):
        while len(self._chunks) <= k:
            A, M, c = self._chunks[-1]
            c_next = c + sum(self._integrate_c(A, M, j * self._PANEL, (j + 1) * self._PANEL)
                             for j in range(int(round(self._CHUNK / self._PANEL))))
            A_n, M_n = self._propagate(A, M, np.array([self._CHUNK]))
            self._chunks.append((A_n[0], M_n[0], c_next))
        return self._chunks[k]

    def _settling_time(self) -> float:
        """First chunk time after which A, M, c equal their limits to round-off (then the
        steady coefficients are returned without propagation)."""
        scale = 1.0 + np.abs(self.A_star).max() + np.abs(self.m2).max()
        for k in range(1, 2000):
            A, M, c = self._chunk(k)
            A_n, M_n, c_n = self._chunk(k + 1)
            if (np.abs(A - self.A_star).max() < 1e-15 * scale and np.abs(M - self.m2).max() < 1e-15 * scale
                    and abs(c_n - c) < 1e-15 * (1.0 + abs(c))):
                self._c_limit = c
                return k * self._CHUNK
        return math.inf

    def coefficients(self, t: float):
        """(A, b, c) of phi(t, x) = x^T A x / 2 + b.x + c."""
        if not self.transient or math.isinf(t):
            return self.A_star, self.b_star, None
        t = max(float(t), 0.0)
        if t >= self._settled:
            return self.A_star, self.b_star, self._c_limit
        k = int(t // self._CHUNK)
        A, M, c = self._chunk(k)
        s = t - k * self._CHUNK
        j = int(s // self._PANEL)
        key = (k, j)
        if key not in self._panels:
            self._panels[key] = c + sum(self._integrate_c(A, M, i * self._PANEL, (i + 1) * self._PANEL)
                                        for i in range(j))
        c_t = self._panels[key] + self._integrate_c(A, M, j * self._PANEL, s)
        A_t, M_t = self._propagate(A, M, np.array([s]))
        A_t, M_t = A_t[0], M_t[0]
        return A_t, M_t - A_t @ self.m1, c_t

    def potential(self, points, t=math.inf):
        A, b, c = self.coefficients(t)
        x = np.asarray(points, float)
        value = 0.5 * np.einsum("...i,ij,...j->...", x, A, x) + x @ b
        if c is None:   # steady potential, defined up to a constant
            return value
        return value + c

    def map(self, points, t=math.inf):
        A, b, _ = self.coefficients(t)
        return np.asarray(points, float) @ A.T + b

    def state(self):
        return {"kind": self.kind, "transient": self.transient, "A_star": self.A_star.tolist(),
                "b_star": self.b_star.tolist()}


def _sqrtm(m: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh(m)
    return (v * np.sqrt(w)) @ v.T


class OneDimensionalMap(ExactSolution):
    """Monotone rearrangement T = F_q^{-1} o F_p between two 1D densities."""

    kind = "cdf_inversion"

    def __init__(self, source: Density, target: Density, reference: float = 0.0):
        self.source, self.target = source, target
        self.reference = reference
        self.lo, self.hi = target.quantile_bracket()

    def _transport(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, float)
        cp, sp = self.source.cdf(x), self.source.sf(x)
        total_p = cp + sp
        use_left = cp <= sp
        goal = np.where(use_left, cp, sp) / total_p
        lo = np.full(x.shape, self.lo)
        hi = np.full(x.shape, self.hi)
        for _ in range(200):
            mid = 0.5 * (lo + hi)
            cq, sq = self.target.cdf(mid), self.target.sf(mid)
            tot = cq + sq
            # F_q(mid) < goal (left) or S_q(mid) > goal (right) means the root is above mid.
            above = np.where(use_left, cq / tot < goal, sq / tot > goal)
            lo = np.where(above, mid, lo)
            hi = np.where(above, hi, mid)
            if np.all(hi - lo <= 4e-16 * np.maximum(1.0, np.abs(mid))):
                break
        return 0.5 * (lo + hi)

    def map(self, points, t=math.inf):
        x = np.asarray(points, float)
        return self._transport(x[..., 0])[..., None]

    def potential(self, points, t=math.inf):
        x = np.asarray(points, float)[..., 0]
        return self.potential_1d(x)

    def potential_1d(self, x: np.ndarray) -> np.ndarray:
        """phi(x) = int_reference^x T(s) ds, by 16-point Gauss-Legendre panels of width <= 0.05."""
        flat = np.asarray(x, float).ravel()
        knots = np.unique(np.concatenate([flat, [self.reference]]))
        fine = [knots[:1]]
        for a, b in zip(knots[:-1], knots[1:]):
            m = max(1, int(math.ceil((b - a) / 0.05)))
            fine.append(np.linspace(a, b, m + 1)[1:])
        fine = np.concatenate(fine)
        gx, gw = _GL16
        a, b = fine[:-1], fine[1:]
        nodes = 0.5 * (a + b)[:, None] + 0.5 * (b - a)[:, None] * gx
        panel = 0.5 * (b - a) * (self._transport(nodes) @ gw)
        cum = np.concatenate([[0.0], np.cumsum(panel)])
        cum -= np.interp(self.reference, fine, cum)
        return np.interp(flat, fine, cum).reshape(np.shape(x))


class ProductMap(ExactSolution):
    kind = "product"

    def __init__(self, maps: list[OneDimensionalMap]):
        self.maps = maps

    def map(self, points, t=math.inf):
        x = np.asarray(points, float)
        return np.stack([m._transport(x[..., k]) for k, m in enumerate(self.maps)], axis=-1)

    def potential(self, points, t=math.inf):
        x = np.asarray(points, float)
        return sum(m.potential_1d(x[..., k]) for k, m in enumerate(self.maps))


class ExpressionSolution(ExactSolution):
    kind = "expression"

    def __init__(self, potential: Expression, maps: list[Expression]):
        self.potential_expr, self.map_exprs = potential, maps

    def potential(self, points, t=math.inf):
        return self.potential_expr(points)

    def map(self, points, t=math.inf):
        return np.stack([m(points) for m in self.map_exprs], axis=-1)

    def state(self):
        return {"kind": self.kind, "transient": False, "potential": self.potential_expr.text,
                "map": [m.text for m in self.map_exprs]}


class RadialMap(ExactSolution):
    """Isotropic Gaussian N(c, s^2 I) onto the uniform ball B(c', rho) (reference/math.md 7.3).

    Radial mass matching: (R/rho)^d = P(|X - c| <= r), i.e. R(r) = rho * P(d/2, r^2/(2 s^2))^(1/d)
    with P the regularised lower incomplete gamma function; T(x) = c' + R(r) (x - c)/r and
    phi = int_0^r R. The Hessian degenerates in the tails (R' and R/r -> 0).
    """

    kind = "radial"

    def __init__(self, source: GaussianDensity, target):
        self.c = source.mean
        self.s = math.sqrt(source.cov[0, 0])
        self.c_target = target.center
        self.rho = target.radius
        self.d = source.dim

    def radius(self, r: np.ndarray) -> np.ndarray:
        from scipy.special import gammainc
        return self.rho * gammainc(self.d / 2, np.asarray(r) ** 2 / (2 * self.s ** 2)) ** (1.0 / self.d)

    def map(self, points, t=math.inf):
        z = np.asarray(points, float) - self.c
        r = np.linalg.norm(z, axis=-1)
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = np.where(r > 0, self.radius(r) / np.where(r > 0, r, 1.0), 0.0)
        return self.c_target + z * ratio[..., None]

    def potential(self, points, t=math.inf):
        z = np.asarray(points, float) - self.c
        r = np.linalg.norm(z, axis=-1)
        flat = r.ravel()
        knots = np.unique(np.concatenate([[0.0], flat]))
        fine = [knots[:1]]
        for a, b in zip(knots[:-1], knots[1:]):
            fine.append(np.linspace(a, b, max(1, int(math.ceil((b - a) / 0.05))) + 1)[1:])
        fine = np.concatenate(fine)
        gx, gw = _GL16
        a, b = fine[:-1], fine[1:]
        nodes = 0.5 * (a + b)[:, None] + 0.5 * (b - a)[:, None] * gx
        cum = np.concatenate([[0.0], np.cumsum(0.5 * (b - a) * (self.radius(nodes) @ gw))])
        return np.interp(flat, fine, cum).reshape(r.shape) + np.asarray(points, float) @ self.c_target


def _isotropic(density: Density) -> bool:
    return isinstance(density, GaussianDensity) and np.allclose(density.cov, density.cov[0, 0] * np.eye(density.dim))


def _one_d(density: Density) -> bool:
    try:
        density.cdf(np.zeros(1))
        return True
    except Exception:  # noqa: BLE001 - densities without a CDF simply have no closed form
        return False


def automatic(source: Density, target: Density, initial_quadratic=None, domains=None) -> ExactSolution | None:
    """The closed form implied by (source, target), or None.

    `initial_quadratic` = (A0, b0, c0) when the initial potential is quadratic, which gives
    the Gaussian pair its exact transient. `domains` = (X, Y) for transport boundaries: the
    densities are then restricted to X and Y (see `transport_solution`).
    """
    if domains is not None:
        return transport_solution(source, target, *domains)
    if isinstance(source, GaussianDensity) and isinstance(target, GaussianDensity):
        if initial_quadratic is None:
            return GaussianFlow(source, target, transient=False)
        A0, b0, c0 = initial_quadratic
        return GaussianFlow(source, target, A0, b0, c0, transient=True)
    if source.dim == 1 and _one_d(source) and _one_d(target):
        return OneDimensionalMap(source, target)
    from .densities import UniformDensity
    if (source.dim > 1 and _isotropic(source) and isinstance(target, UniformDensity)
            and target.shape == "ball"):
        return RadialMap(source, target)
    factors_p, factors_q = _factors(source), _factors(target)
    if factors_p and factors_q and all(_one_d(f) for f in factors_p + factors_q):
        return ProductMap([OneDimensionalMap(a, b) for a, b in zip(factors_p, factors_q)])
    return None


def _factors(density: Density) -> list[Density] | None:
    """Per-axis 1D factors of a separable density (products, diagonal Gaussians)."""
    if isinstance(density, ProductDensity):
        return list(density.factors)
    if isinstance(density, GaussianDensity) and np.count_nonzero(density.cov - np.diag(np.diag(density.cov))) == 0:
        return [GaussianDensity([m], [[v]]) for m, v in zip(density.mean, np.diag(density.cov))]
    from .densities import UniformDensity
    if isinstance(density, UniformDensity) and density.shape == "box":
        return [UniformDensity(1, lower=[a], upper=[b]) for a, b in zip(density.lower, density.upper)]
    return None


class RestrictedDensity:
    """A 1D density restricted to [lo, hi]: CDF and survival function of the restriction
    (unnormalised; `OneDimensionalMap` only uses their ratios) by composite Gauss-Legendre
    quadrature on [lo, hi], so densities without a closed-form CDF (expressions, grids,
    `normalized = false`) work too."""

    def __init__(self, density: Density, lo: float, hi: float):
        from .densities import _NumericCDF
        self.lo, self.hi = float(lo), float(hi)
        self._table = _NumericCDF(density, self.lo, self.hi)

    def cdf(self, x):
        return self._table.cdf(x)

    def sf(self, x):
        return self._table.sf(x)

    def quantile_bracket(self):
        return self.lo, self.hi


def transport_solution(source: Density, target: Density, X, Y) -> ExactSolution | None:
    """Closed form of the second boundary value problem grad phi(X) = Y for p|X -> q|Y, or None.

    * 1D: the monotone rearrangement of the restricted densities;
    * box Y and separable p, q (products, diagonal Gaussians, uniform boxes): the same axis
      by axis (a box maps face to face, so the problem splits);
    * Gaussian p, q whose Brenier map T(x) = A x + b sends X exactly onto Y (checked through
      the support functions, sigma_{T(X)}(n) = n.b + sigma_X(A n) with A symmetric): T.
    """
    from .geometry import BoxDomain, unit_directions
    (xl, xu), (yl, yu) = X.bounding_box(), Y.bounding_box()
    if source.dim == 1:
        return OneDimensionalMap(RestrictedDensity(source, xl[0], xu[0]), RestrictedDensity(target, yl[0], yu[0]))
    factors_p, factors_q = _factors(source), _factors(target)
    if isinstance(Y, BoxDomain) and factors_p and factors_q:
        return ProductMap([OneDimensionalMap(RestrictedDensity(a, xl[k], xu[k]), RestrictedDensity(b, yl[k], yu[k]))
                           for k, (a, b) in enumerate(zip(factors_p, factors_q))])
    if isinstance(source, GaussianDensity) and isinstance(target, GaussianDensity):
        flow = GaussianFlow(source, target, transient=False)
        n = np.concatenate([unit_directions(source.dim, 720), Y.normals()])
        image = n @ flow.b_star + X.support(n @ flow.A_star)
        if np.max(np.abs(image - Y.support(n))) <= 1e-9 * Y.size:
            return flow
    return None
