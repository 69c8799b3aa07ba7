"""Probability densities for the source p and the target q.

Each density evaluates log-values with NumPy (`log_density`), flattens itself for the
compiled kernels (`compiled`, see density_kernels), samples, and in 1D provides `cdf`/`sf`
for exact maps by CDF inversion. Densities are used exactly as given: `normalized = true`
asserts the formula integrates to one on its natural support; nothing is renormalised on
the grid box.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from scipy import special

from . import density_kernels as dk
from .config import Table
from .errors import CaseError
from .expression import Expression
from .registry import Registry

REGISTRY = Registry("kind")
register = REGISTRY.register


class Density:
    kind = "abstract"
    dim: int
    normalized: bool = True

    def log_density(self, points: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def density(self, points: np.ndarray) -> np.ndarray:
        return np.exp(self.log_density(points))

    def compiled(self) -> tuple[int, np.ndarray] | None:
        """(code, params) for the compiled evaluator, or None (evaluated in NumPy)."""
        return None

    def support_box(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Bounding box of a bounded support, or None when the support is unbounded."""
        return None

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        raise CaseError(f"sampling from a {self.kind!r} density is not supported")

    # 1D only -------------------------------------------------------------------
    def cdf(self, x: np.ndarray) -> np.ndarray:
        raise CaseError(f"no CDF for a {self.kind!r} density")

    def sf(self, x: np.ndarray) -> np.ndarray:
        return 1.0 - self.cdf(x)

    def quantile_bracket(self) -> tuple[float, float]:
        """An interval containing all quantiles needed to 1e-300 tail mass."""
        raise NotImplementedError


def _precision_block(mean: np.ndarray, cov: np.ndarray) -> tuple[np.ndarray, float]:
    prec = np.linalg.inv(cov)
    prec = 0.5 * (prec + prec.T)
    sign, logdet = np.linalg.slogdet(cov)
    lognorm = -0.5 * (len(mean) * math.log(2 * math.pi) + logdet)
    return prec, lognorm


@register("gaussian")
class GaussianDensity(Density):
    """N(mean, cov): log p = -1/2 (x-m)^T S^{-1} (x-m) - 1/2 log det(2 pi S)."""

    def __init__(self, mean, cov, normalized: bool = True):
        self.mean = np.asarray(mean, float)
        self.cov = np.asarray(cov, float)
        self.dim = len(self.mean)
        self.normalized = normalized
        self.prec, self.lognorm = _precision_block(self.mean, self.cov)

    @classmethod
    def from_table(cls, t: Table, dim: int, base: Path | None = None) -> "GaussianDensity":
        mean = t.vector("mean", dim)
        cov = t.spd_matrix("cov", dim)
        return cls(mean, cov, t.boolean("normalized", True))

    def log_density(self, points):
        z = np.asarray(points, float) - self.mean
        return self.lognorm - 0.5 * np.einsum("...i,ij,...j->...", z, self.prec, z)

    def compiled(self):
        return dk.GAUSSIAN, np.concatenate([[self.dim], self.mean, self.prec.ravel(), [self.lognorm]])

    def sample(self, rng, n):
        return rng.multivariate_normal(self.mean, self.cov, size=n, method="cholesky")

    def _z(self, x):
        return (np.asarray(x, float) - self.mean[0]) / math.sqrt(self.cov[0, 0])

    def cdf(self, x):
        return special.ndtr(self._z(x))

    def sf(self, x):
        return special.ndtr(-self._z(x))

    def quantile_bracket(self):
        s = math.sqrt(self.cov[0, 0])
        return self.mean[0] - 40 * s, self.mean[0] + 40 * s


@register("gaussian_mixture")
class GaussianMixtureDensity(Density):
    """Sum_k w_k N(m_k, S_k) with relative weights w_k (divided by their sum)."""

    def __init__(self, weights, means, covs, normalized: bool = True):
        w = np.asarray(weights, float)
        self.weights = w / w.sum()
        self.components = [GaussianDensity(m, c) for m, c in zip(means, covs)]
        self.dim = self.components[0].dim
        self.normalized = normalized

    @classmethod
    def from_table(cls, t: Table, dim: int, base: Path | None = None) -> "GaussianMixtureDensity":
        weights = t.vector("weights")
        if np.any(weights < 0) or not weights.sum() > 0:
            raise t.error("weights", "weights must be non-negative with a positive sum")
        raw_means = t.raw("means")
        raw_covs = t.raw("covs")
        k = len(weights)
        if not isinstance(raw_means, list) or len(raw_means) != k:
            raise t.error("means", f"expected {k} means (one per weight)")
        if not isinstance(raw_covs, list) or len(raw_covs) != k:
            raise t.error("covs", f"expected {k} covariance matrices (one per weight)")
        means, covs = [], []
        for i in range(k):
            sub = Table({"mean": raw_means[i], "cov": raw_covs[i]}, t.path)
            try:
                means.append(sub.vector("mean", dim))
                covs.append(sub.spd_matrix("cov", dim))
            except CaseError as exc:
                key = "means" if exc.key == "mean" else "covs"
                raise t.error(key, f"component {i}: {exc.message}") from None
        t.keep("means", [m.tolist() for m in means])
        t.keep("covs", [c.tolist() for c in covs])
        return cls(weights, means, covs, t.boolean("normalized", True))

    def log_density(self, points):
        logs = [math.log(w) + c.log_density(points) if w > 0 else np.full(np.shape(points)[:-1], -np.inf)
                for w, c in zip(self.weights, self.components)]
        return special.logsumexp(np.stack(logs), axis=0)

    def compiled(self):
        blocks = []
        for w, c in zip(self.weights, self.components):
            if w > 0:
                blocks.append(np.concatenate([[math.log(w) + c.lognorm], c.mean, c.prec.ravel()]))
        return dk.MIXTURE, np.concatenate([[self.dim, len(blocks)], *blocks])

    def sample(self, rng, n):
        counts = rng.multinomial(n, self.weights)
        parts = [c.sample(rng, m) for c, m in zip(self.components, counts) if m]
        out = np.concatenate(parts, axis=0)
        return out[rng.permutation(n)]

    def cdf(self, x):
        return sum(w * c.cdf(x) for w, c in zip(self.weights, self.components))

    def sf(self, x):
        return sum(w * c.sf(x) for w, c in zip(self.weights, self.components))

    def quantile_bracket(self):
        brackets = [c.quantile_bracket() for c in self.components]
        return min(b[0] for b in brackets), max(b[1] for b in brackets)


@register("uniform")
class UniformDensity(Density):
    """Uniform on a box (lower, upper), a ball (center, radius) or a convex polygon (vertices)."""

    def __init__(self, dim, *, lower=None, upper=None, center=None, radius=None, vertices=None,
                 normalized: bool = True):
        self.dim = dim
        self.normalized = normalized
        self.lower = self.upper = self.center = self.radius = self.vertices = None
        if vertices is not None:
            self.shape = "polygon"
            self.vertices = np.asarray(vertices, float)
            x, y = self.vertices[:, 0], self.vertices[:, 1]
            volume = 0.5 * np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y)
        elif radius is not None:
            self.shape = "ball"
            self.center = np.asarray(center, float)
            self.radius = float(radius)
            volume = math.pi ** (dim / 2) / math.gamma(dim / 2 + 1) * self.radius ** dim
        else:
            self.shape = "box"
            self.lower = np.asarray(lower, float)
            self.upper = np.asarray(upper, float)
            volume = float(np.prod(self.upper - self.lower))
        self.volume = volume
        self.logvalue = -math.log(volume)

    @classmethod
    def from_table(cls, t: Table, dim: int, base: Path | None = None) -> "UniformDensity":
        normalized = t.boolean("normalized", True)
        if t.has("vertices"):
            from .geometry import validate_polygon
            if dim != 2:
                raise t.error("vertices", "a polygon support needs a 2D grid")
            vertices = validate_polygon(t, "vertices")
            return cls(dim, vertices=vertices, normalized=normalized)
        if t.has("radius") or t.has("center"):
            center = t.vector("center", dim)
            radius = t.number("radius", positive=True)
            return cls(dim, center=center, radius=radius, normalized=normalized)
        if not (t.has("lower") or t.has("upper")):
            raise t.error("lower", "give lower and upper (box), center and radius (ball) "
                                   "or vertices (polygon)")
        lower, upper = t.vector("lower", dim), t.vector("upper", dim)
        if np.any(upper <= lower):
            raise t.error("upper", "every entry of upper must exceed lower")
        return cls(dim, lower=lower, upper=upper, normalized=normalized)

    def inside(self, points):
        points = np.asarray(points, float)
        if self.shape == "box":
            return np.all((points >= self.lower) & (points <= self.upper), axis=-1)
        if self.shape == "ball":
            return np.sum((points - self.center) ** 2, axis=-1) <= self.radius ** 2
        from .geometry import polygon_signed_distance
        return polygon_signed_distance(self.vertices, points) <= 0

    def log_density(self, points):
        return np.where(self.inside(points), self.logvalue, -np.inf)

    def compiled(self):
        # ell: width of the solver's linear log-penalty outside the support (density_kernels)
        lo, hi = self.support_box()
        ell = 0.01 * float(np.max(hi - lo))
        if self.shape == "box":
            return dk.UNIFORM_BOX, np.concatenate([[self.dim], self.lower, self.upper, [self.logvalue, ell]])
        if self.shape == "ball":
            return dk.UNIFORM_BALL, np.concatenate([[self.dim], self.center, [self.radius, self.logvalue, ell]])
        return dk.POLYGON, np.concatenate([[2, len(self.vertices)], self.vertices.ravel(), [self.logvalue, ell]])

    def support_box(self):
        if self.shape == "box":
            return self.lower, self.upper
        if self.shape == "ball":
            return self.center - self.radius, self.center + self.radius
        return self.vertices.min(axis=0), self.vertices.max(axis=0)

    def sample(self, rng, n):
        if self.shape == "box":
            return self.lower + (self.upper - self.lower) * rng.random((n, self.dim))
        if self.shape == "ball":
            g = rng.standard_normal((n, self.dim))
            g /= np.linalg.norm(g, axis=1, keepdims=True)
            r = self.radius * rng.random(n) ** (1.0 / self.dim)
            return self.center + g * r[:, None]
        lo, hi = self.support_box()
        out = np.empty((0, 2))
        while len(out) < n:
            cand = lo + (hi - lo) * rng.random((2 * n, 2))
            out = np.concatenate([out, cand[self.inside(cand)]])
        return out[:n]

    def cdf(self, x):
        lo, hi = self.support_box()
        return np.clip((np.asarray(x, float) - lo[0]) / (hi[0] - lo[0]), 0.0, 1.0)

    def sf(self, x):
        lo, hi = self.support_box()
        return np.clip((hi[0] - np.asarray(x, float)) / (hi[0] - lo[0]), 0.0, 1.0)

    def quantile_bracket(self):
        lo, hi = self.support_box()
        return float(lo[0]), float(hi[0])


@register("product")
class ProductDensity(Density):
    """p(x) = prod_k p_k(x_k), one 1D density per axis."""

    def __init__(self, factors, normalized: bool = True):
        self.factors = factors
        self.dim = len(factors)
        self.normalized = normalized and all(f.normalized for f in factors)

    @classmethod
    def from_table(cls, t: Table, dim: int, base: Path | None = None) -> "ProductDensity":
        tables = t.tables("factors")
        if len(tables) != dim:
            raise t.error("factors", f"expected {dim} factors (one per axis), got {len(tables)}")
        factors = [parse_density(ft, 1, base, allow_product=False) for ft in tables]
        t.keep("factors", [ft.resolved for ft in tables])
        return cls(factors, t.boolean("normalized", True))

    def log_density(self, points):
        points = np.asarray(points, float)
        return sum(f.log_density(points[..., k:k + 1]) for k, f in enumerate(self.factors))

    def compiled(self):
        parts = [[self.dim]]
        for f in self.factors:
            c = f.compiled()
            if c is None:
                return None
            code, par = c
            parts.append([code, len(par)])
            parts.append(par)
        return dk.PRODUCT, np.concatenate([np.asarray(p, float) for p in parts])

    def support_box(self):
        boxes = [f.support_box() for f in self.factors]
        if any(b is None for b in boxes):
            return None
        return np.array([b[0][0] for b in boxes]), np.array([b[1][0] for b in boxes])

    def sample(self, rng, n):
        return np.concatenate([f.sample(rng, n) for f in self.factors], axis=1)


class _NumericCDF:
    """CDF of a 1D density by composite Gauss-Legendre quadrature on a fine panel table."""

    def __init__(self, density: Density, lo: float, hi: float, panels: int = 4000):
        self.density = density
        self.edges = np.linspace(lo, hi, panels + 1)
        self.nodes, self.wts = np.polynomial.legendre.leggauss(10)
        masses = self._panel(self.edges[:-1], self.edges[1:])
        self.cum = np.concatenate([[0.0], np.cumsum(masses)])
        self.total = self.cum[-1]

    def _panel(self, a, b):
        a, b = np.asarray(a, float), np.asarray(b, float)
        mid, half = 0.5 * (a + b), 0.5 * (b - a)
        x = mid[..., None] + half[..., None] * self.nodes
        return half * np.sum(self.wts * self.density.density(x[..., None]), axis=-1)

    def cdf(self, x):
        x = np.clip(np.asarray(x, float), self.edges[0], self.edges[-1])
        j = np.clip(np.searchsorted(self.edges, x, side="right") - 1, 0, len(self.edges) - 2)
        return self.cum[j] + self._panel(self.edges[j], x)

    def sf(self, x):
        x = np.clip(np.asarray(x, float), self.edges[0], self.edges[-1])
        j = np.clip(np.searchsorted(self.edges, x, side="right") - 1, 0, len(self.edges) - 2)
        return (self.total - self.cum[j + 1]) + self._panel(x, self.edges[j + 1])


class _TabulatedCDF:
    """1D CDF and survival function from a `_NumericCDF` table over `_cdf_interval()`."""

    _numeric_cdf = None

    def _cdf_table(self):
        if self._numeric_cdf is None:
            self._numeric_cdf = _NumericCDF(self, *self._cdf_interval())
        return self._numeric_cdf

    def cdf(self, x):
        return self._cdf_table().cdf(x)

    def sf(self, x):
        return self._cdf_table().sf(x)


@register("expression")
class ExpressionDensity(_TabulatedCDF, Density):
    """Density given by a whitelisted NumPy expression in x0, x1, x2."""

    def __init__(self, expression: Expression, normalized: bool = True):
        self.expression = expression
        self.dim = expression.dim
        self.normalized = normalized

    @classmethod
    def from_table(cls, t: Table, dim: int, base: Path | None = None) -> "ExpressionDensity":
        text = t.string("expression")
        return cls(Expression(text, dim, table=t.path, key="expression"), t.boolean("normalized", True))

    def density(self, points):
        return self.expression(points)

    def log_density(self, points):
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.log(np.maximum(self.expression(points), 0.0))

    def _bracket(self):
        # Walk outwards until the density is negligible: the support may be unbounded.
        lo, hi = -1.0, 1.0
        for _ in range(60):
            if self.density(np.array([[lo]]))[0] < 1e-300 and self.density(np.array([[hi]]))[0] < 1e-300:
                break
            lo, hi = 1.5 * lo, 1.5 * hi
        return lo, hi

    def _cdf_interval(self):
        return self._bracket()

    def quantile_bracket(self):
        t = self._cdf_table()
        return float(t.edges[0]), float(t.edges[-1])


@register("grid")
class GridDensity(_TabulatedCDF, Density):
    """Density values on a regular grid over [lower, upper], evaluated multilinearly."""

    def __init__(self, values: np.ndarray, lower, upper, normalized: bool = True, source: str = ""):
        self.values = np.ascontiguousarray(values, dtype=float)
        self.dim = self.values.ndim
        self.lower = np.asarray(lower, float)
        self.upper = np.asarray(upper, float)
        self.normalized = normalized
        self.source = source

    @classmethod
    def from_table(cls, t: Table, dim: int, base: Path | None = None) -> "GridDensity":
        from .gridfiles import read_grid_values
        file = t.string("file")
        dataset = t.string("dataset", "") if t.has("dataset") else None
        lower, upper = t.vector("lower", dim), t.vector("upper", dim)
        if np.any(upper <= lower):
            raise t.error("upper", "every entry of upper must exceed lower")
        values = read_grid_values(t, file, dataset, dim, base)
        return cls(values, lower, upper, t.boolean("normalized", True), source=file)

    def compiled(self):
        return dk.GRID, np.concatenate([[self.dim], self.lower, self.upper,
                                        np.asarray(self.values.shape, float), self.values.ravel()])

    def log_density(self, points):
        points = np.asarray(points, float)
        code, par = self.compiled()
        flat = points.reshape(-1, self.dim)
        out = np.empty(len(flat))
        dk.log_density_points(code, par, np.ascontiguousarray(flat), out)
        out[out <= dk.LOG_FLOOR] = -np.inf
        return out.reshape(points.shape[:-1])

    def support_box(self):
        return self.lower, self.upper

    def sample(self, rng, n):
        # Rejection from the bounding box with the tabulated maximum as envelope.
        vmax = float(self.values.max())
        out = np.empty((0, self.dim))
        while len(out) < n:
            cand = self.lower + (self.upper - self.lower) * rng.random((4 * n, self.dim))
            keep = rng.random(4 * n) * vmax < self.density(cand)
            out = np.concatenate([out, cand[keep]])
        return out[:n]

    def _cdf_interval(self):
        return self.lower[0], self.upper[0], max(4 * len(self.values), 2000)

    def quantile_bracket(self):
        return float(self.lower[0]), float(self.upper[0])


def parse_density(t: Table, dim: int, base: Path | None = None, allow_product: bool = True) -> Density:
    """Build the density described by table `t` (keys fixed by the case-file contract)."""
    kinds = [k for k in REGISTRY if allow_product or k != "product"]
    kind = t.string("kind", choices=kinds)
    density = REGISTRY[kind].from_table(t, dim, base)
    t.done()
    return density
