"""Sampling through the Brenier map (issue 8).

A run file holds T = grad phi on the grid nodes. `load_map(run)` rebuilds the case from the
run file alone and returns a `BrenierMap`: T between the nodes is the multilinear
interpolant of the node values (a compiled kernel, vectorised over points), so pushing exact
source samples x ~ p through T gives samples of T#p, which approximates the target q.

Points outside the grid box (Gaussian sources have unbounded support) are mapped by the
affine extension of the nearest cell: T(x) = T(x_c) + DT(x_c)(x - x_c), x_c the point
clamped onto the box; the fraction of such points is reported with the samples. On a
periodic grid the displacement T(x) - x is interpolated periodically and T(x) is wrapped
into the box.

Quality metrics against exact target samples: energy distance (V-statistic, >= 0),
sliced Wasserstein-2, per-mode mass for Gaussian mixtures (component posterior argmax),
KL(T#p | q) = E_p[log p(x) - log det DT(x) - log q(T(x))] by Monte Carlo, and the run's
own KL diagnostic.
"""
from __future__ import annotations

import json
import math
import tomllib
from pathlib import Path

import numpy as np
from numba import njit, prange

from .errors import CaseError

# Energy distances cost O(m^2) per block: by default 4 blocks of 10^4 samples.
METRIC_SAMPLES = 40_000
ENERGY_BLOCK = 10_000
SLICED_DIRECTIONS = 64


# -- compiled interpolant ----------------------------------------------------------------
@njit(cache=True)
def multilinear(values, lower, spacing, periodic, points, out, jac, outside):
    """Multilinear interpolation of node values, with the nearest cell's affine extension.

    values (m, n0, n1, n2): m components on a node-centred grid padded to 3 axes (unused
    axes have one node); lower, spacing (3,); points (N, d), d <= 3. Writes out (N, m),
    jac (N, m, d) = d out / d x, outside (N,) = the point lies outside the box (never on a
    periodic grid, where indices wrap: node n is node 0).
    """
    m = values.shape[0]
    n = values.shape[1:]
    d = points.shape[1]
    base = np.zeros(3, dtype=np.int64)
    idx = np.zeros(3, dtype=np.int64)
    t = np.zeros(3)
    off = np.zeros(3)
    dw = np.zeros(3)
    val = np.zeros(m)
    grad = np.zeros((m, 3))
    for p in range(points.shape[0]):
        beyond = False
        for k in range(d):
            s = (points[p, k] - lower[k]) / spacing[k]
            off[k] = 0.0
            if periodic:
                s = s % n[k]
                i = min(int(math.floor(s)), n[k] - 1)
            else:
                if s < 0.0:
                    off[k] = s
                    s = 0.0
                    beyond = True
                elif s > n[k] - 1:
                    off[k] = s - (n[k] - 1)
                    s = n[k] - 1.0
                    beyond = True
                i = min(int(math.floor(s)), n[k] - 2)
            base[k] = i
            t[k] = s - i
        outside[p] = beyond
        val[:] = 0.0
        grad[:, :] = 0.0
        for corner in range(1 << d):
            w = 1.0
            for k in range(d):
                bit = (corner >> k) & 1
                w *= t[k] if bit else 1.0 - t[k]
                j = base[k] + bit
                idx[k] = j % n[k] if periodic else j
                # d w / d t_k: the other axes' weights, signed by this axis' bit.
                dw[k] = 1.0 if bit else -1.0
                for jj in range(d):
                    if jj != k:
                        dw[k] *= t[jj] if (corner >> jj) & 1 else 1.0 - t[jj]
            for c in range(m):
                v = values[c, idx[0], idx[1], idx[2]]
                val[c] += w * v
                for k in range(d):
                    grad[c, k] += dw[k] * v
        for c in range(m):
            acc = val[c]
            for k in range(d):
                acc += grad[c, k] * off[k]
                jac[p, c, k] = grad[c, k] / spacing[k]
            out[p, c] = acc


def interpolate(field: np.ndarray, lower, spacing, points: np.ndarray, periodic: bool = False):
    """Multilinear interpolation of node values `field` (m, *shape) at points (N, d).

    Returns (values (N, m), jacobian (N, m, d), outside (N,)); see `multilinear`.
    """
    m, shape = field.shape[0], field.shape[1:]
    d = len(shape)
    values = np.ascontiguousarray(field.reshape((m,) + tuple(shape) + (1,) * (3 - d)), dtype=float)
    lo, h = np.zeros(3), np.ones(3)
    lo[:d], h[:d] = lower, spacing
    x = np.ascontiguousarray(points, dtype=float)
    out = np.empty((len(x), m))
    jac = np.empty((len(x), m, d))
    outside = np.empty(len(x), dtype=np.bool_)
    multilinear(values, lo, h, periodic, x, out, jac, outside)
    return out, jac, outside


# -- the map ------------------------------------------------------------------------------
def _rebuild_case(f, path: Path):
    """The run's Case, from its verbatim TOML, stored overrides and original location."""
    from .case import apply_overrides, build_case
    attrs = f["case"].attrs
    text = str(attrs["toml"])
    case_path = Path(str(attrs.get("source_path", path.parent / "case.toml")))
    try:
        data = tomllib.loads(text)
        apply_overrides(data, json.loads(str(attrs.get("overrides", "[]"))))
        return build_case(data, case_path, text)
    except tomllib.TOMLDecodeError as exc:
        raise CaseError(f"{path}: the stored case TOML does not parse: {exc}") from None
    except CaseError as exc:
        raise CaseError(f"{path}: cannot rebuild the stored case ({exc})") from None


class BrenierMap:
    """T = grad phi of one snapshot of a run, multilinear between the grid nodes.

    Calling it maps points (..., dim) to T(points); `jacobian`, `jacobian_det` and
    `pushforward_density` (the density of T#p at T(x), p(x) / det DT(x)) take source points.
    """

    def __init__(self, run, snapshot: int = -1):
        from .runfile import open_run_file
        path, f = open_run_file(run)
        with f:
            try:
                self._read(f, path, snapshot)
            except KeyError as exc:
                raise CaseError(f"{path}: incomplete run file ({exc})") from None
        self.run_file = path.resolve()
        # On a torus the displacement T(x) - x is periodic, T itself is not.
        self._field = self.node_map - np.moveaxis(self.nodes, -1, 0) if self.periodic else self.node_map

    def _read(self, f, path: Path, snapshot: int) -> None:
        count = int(f["scales/time"].shape[0])
        if count == 0:
            raise CaseError(f"{path} holds no snapshot yet")
        if not -count <= snapshot < count:
            raise CaseError(f"--snapshot {snapshot} is out of range: {path} holds {count} "
                            f"snapshots (0..{count - 1}, or negative from the end)")
        self.snapshot = snapshot % count
        self.case = _rebuild_case(f, path)
        g = f["grid"].attrs
        self.dim = int(g["dim"])
        self.lower = np.asarray(g["lower"], float)
        self.upper = np.asarray(g["upper"], float)
        self.shape = tuple(int(v) for v in g["shape"])
        self.spacing = np.asarray(g["spacing"], float)
        self.periodic = bool(g.get("periodic", False))
        axes = [f[f"grid/x{k}"][()] for k in range(self.dim)]
        self.nodes = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1)
        self.time = float(f["scales/time"][self.snapshot])
        self.step = int(f["scales/step"][self.snapshot])
        self.status = str(f.attrs.get("status", ""))
        self.toml = str(f["case"].attrs["toml"])
        self.resolved = str(f["case"].attrs["resolved"])
        if "map" in f["fields"]:
            self.node_map = f["fields/map"][self.snapshot]
            self.field_source = "fields/map"
        else:
            self.node_map = self._gradient(f["fields/u"][self.snapshot])
            self.field_source = "centred gradient of fields/u"
        self.kl_diagnostic = self._kl_at(f["diagnostics"])

    def _gradient(self, u: np.ndarray) -> np.ndarray:
        """Centred differences of phi (second-order one-sided at box faces; periodic on a torus)."""
        if self.periodic:
            x = np.moveaxis(self.nodes, -1, 0)
            psi = u - 0.5 * np.sum(x * x, axis=0)
            grads = [(np.roll(psi, -1, k) - np.roll(psi, 1, k)) / (2 * self.spacing[k]) + x[k]
                     for k in range(self.dim)]
        else:
            grads = np.gradient(u, *self.spacing, edge_order=2)
            grads = [grads] if self.dim == 1 else grads
        return np.stack(grads)

    def _kl_at(self, diag) -> float | None:
        """The run's KL(rho_t | mu) diagnostic at the last log row up to the snapshot's step."""
        if "kl" not in diag or "step" not in diag or diag["step"].shape[0] == 0:
            return None
        rows = np.flatnonzero(diag["step"][()] <= self.step)
        return float(diag["kl"][rows[-1]]) if rows.size else None

    # -- evaluation -----------------------------------------------------------------
    def _points(self, points) -> tuple[np.ndarray, tuple]:
        x = np.asarray(points, float)
        if x.shape[-1:] != (self.dim,):
            raise CaseError(f"points must have shape (..., {self.dim}), got {x.shape}")
        return np.ascontiguousarray(x.reshape(-1, self.dim)), x.shape[:-1]

    def _evaluate(self, points):
        x, lead = self._points(points)
        out, jac, outside = interpolate(self._field, self.lower, self.spacing, x, self.periodic)
        if self.periodic:
            out = self.lower + np.mod(x + out - self.lower, self.upper - self.lower)
            jac = jac + np.eye(self.dim)
        return out, jac, outside, lead

    def __call__(self, points) -> np.ndarray:
        out, _, _, lead = self._evaluate(points)
        return out.reshape(lead + (self.dim,))

    def jacobian(self, points) -> np.ndarray:
        """DT(x), shape (..., dim, dim): the derivative of the interpolant (cellwise)."""
        _, jac, _, lead = self._evaluate(points)
        return jac.reshape(lead + (self.dim, self.dim))

    def jacobian_det(self, points) -> np.ndarray:
        return np.linalg.det(self.jacobian(points))

    def outside(self, points) -> np.ndarray:
        """True where a point lies outside the grid box (mapped by affine extension)."""
        _, _, outside, lead = self._evaluate(points)
        return outside.reshape(lead)

    def pushforward_density(self, points) -> np.ndarray:
        """Density of T#p at T(x) for source points x: p(x) / det DT(x) (NaN where det <= 0)."""
        det = self.jacobian_det(points)
        p = self.case.source.density(np.asarray(points, float))
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(det > 0, p / det, np.nan)

    # -- sampling -------------------------------------------------------------------
    def source_samples(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Exact samples of p; restricted to the box on a torus (the solver's p lives there)."""
        box = (self.lower, self.upper)
        if not self.periodic:
            return draw(self.case.source, rng, n, box)
        out = np.empty((0, self.dim))
        while len(out) < n:
            x = draw(self.case.source, rng, n - len(out), box)
            out = np.concatenate([out, x[np.all((x >= self.lower) & (x < self.upper), axis=1)]])
        return out

    def sample(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        """(x, T(x)) for n exact source samples x."""
        x = self.source_samples(rng, n)
        return x, self(x)

    def target_box(self) -> tuple[np.ndarray, np.ndarray]:
        """Box for rejection sampling of a target without a sampler: the grid box on a torus,
        else the bounding box of T(grid box), where the pushed samples land."""
        if self.periodic:
            return self.lower, self.upper
        flat = self.node_map.reshape(self.dim, -1)
        return flat.min(axis=1), flat.max(axis=1)

    def target_samples(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return draw(self.case.target, rng, n, self.target_box())


def load_map(run, snapshot: int = -1) -> BrenierMap:
    """The Brenier map T = grad phi stored in a run file (directory or run.h5)."""
    return BrenierMap(run, snapshot)


# -- exact samplers -------------------------------------------------------------------------
def draw(density, rng: np.random.Generator, n: int, box) -> np.ndarray:
    """n exact samples of `density`; densities without a sampler (expressions) by rejection
    on `box` (lower, upper), i.e. from the density restricted to the box."""
    from .densities import Density, ProductDensity
    if isinstance(density, ProductDensity):
        lo, hi = box
        return np.concatenate([draw(f, rng, n, (lo[k:k + 1], hi[k:k + 1]))
                               for k, f in enumerate(density.factors)], axis=1)
    if type(density).sample is not Density.sample:
        return density.sample(rng, n)
    return rejection_sample(density, rng, n, *box)


def rejection_sample(density, rng: np.random.Generator, n: int, lower, upper) -> np.ndarray:
    """Exact samples of density restricted to the box [lower, upper] by rejection.

    The envelope M is 1.5 x the maximum on a lattice of ~2^16 points; a candidate above M
    raises M to twice its value and restarts, so accepted points always have density f/M.
    """
    lower, upper = np.asarray(lower, float), np.asarray(upper, float)
    dim = len(lower)
    per_axis = max(3, int(round(65536 ** (1.0 / dim))))
    axes = [np.linspace(lower[k], upper[k], per_axis) for k in range(dim)]
    lattice = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, dim)
    values = _density_values(density, lattice)
    envelope = 1.5 * float(values.max())
    if not envelope > 0:
        raise CaseError(f"the {density.kind} density vanishes on the box {lower.tolist()}..{upper.tolist()}; "
                        "cannot sample it")
    acceptance = max(float(values.mean()) / envelope, 1e-4)
    out, have = [], 0
    while have < n:
        batch = int(min(4_000_000, 1.2 * (n - have) / acceptance + 1000))
        cand = lower + (upper - lower) * rng.random((batch, dim))
        f = _density_values(density, cand)
        if np.any(f > envelope):
            envelope = 2.0 * float(f.max())
            out, have = [], 0
            continue
        keep = cand[rng.random(batch) * envelope < f]
        out.append(keep)
        have += len(keep)
    return np.concatenate(out)[:n]


def _density_values(density, points) -> np.ndarray:
    with np.errstate(invalid="ignore", over="ignore"):
        f = np.asarray(density.density(points), float)
    return np.where(np.isfinite(f), np.maximum(f, 0.0), 0.0)


# -- metrics ----------------------------------------------------------------------------------
@njit(cache=True, parallel=True, fastmath=True)
def pair_distance_sum(a, bt):
    """Sum of |a_i - b_j| over all pairs, b given transposed (dim, m) so that the inner loop
    over j vectorises; O(m) memory per thread, rows of a split over threads."""
    total = 0.0
    m = bt.shape[1]
    for i in prange(a.shape[0]):
        acc = np.zeros(m)
        for k in range(a.shape[1]):
            ak = a[i, k]
            for j in range(m):
                diff = ak - bt[k, j]
                acc[j] += diff * diff
        row = 0.0
        for j in range(m):
            row += math.sqrt(acc[j])
        total += row
    return total


def energy_distance(x, y) -> float:
    """Energy distance 2 E|X - Y| - E|X - X'| - E|Y - Y'| between two sample sets.

    The V-statistic (pairs i = j included): non-negative, zero only for equal empirical
    measures, and biased upward by about E|X - X'|/n + E|Y - Y'|/m for finite sets.
    """
    x = np.ascontiguousarray(np.asarray(x, float).reshape(len(x), -1))
    y = np.ascontiguousarray(np.asarray(y, float).reshape(len(y), -1))
    n, m = len(x), len(y)
    xt, yt = np.ascontiguousarray(x.T), np.ascontiguousarray(y.T)
    value = (2.0 * pair_distance_sum(x, yt) / (n * m) - pair_distance_sum(x, xt) / (n * n)
             - pair_distance_sum(y, yt) / (m * m))
    return max(0.0, value)


def sliced_wasserstein2(x, y, n_directions: int = SLICED_DIRECTIONS, seed: int = 0) -> float:
    """Sliced W2: sqrt of the mean over random unit directions of W2^2 of the 1D projections
    (quantile matching at the levels (i + 1/2)/k, k = min(n, m))."""
    x = np.asarray(x, float).reshape(len(x), -1)
    y = np.asarray(y, float).reshape(len(y), -1)
    dim = x.shape[1]
    if dim == 1:
        dirs = np.ones((1, 1))
    else:
        dirs = np.random.default_rng(seed).standard_normal((n_directions, dim))
        dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    k = min(len(x), len(y))
    levels = (np.arange(k) + 0.5) / k
    total = 0.0
    for v in dirs:
        px, py = np.sort(x @ v), np.sort(y @ v)
        qx = np.interp(levels, (np.arange(len(px)) + 0.5) / len(px), px)
        qy = np.interp(levels, (np.arange(len(py)) + 0.5) / len(py), py)
        total += float(np.mean((qx - qy) ** 2))
    return math.sqrt(total / len(dirs))


def mixture_components(density):
    """(weights, means, covs) when the density is a Gaussian mixture, else None.

    A product of 1D Gaussians and mixtures is the mixture over all combinations of factor
    components, with block-diagonal covariances (e.g. 0.2 N((-1.5,0), I/4) + 0.8 N((1.5,0), I/4)
    written as a product of a 1D mixture and a 1D Gaussian).
    """
    from .densities import GaussianDensity, GaussianMixtureDensity, ProductDensity
    if isinstance(density, GaussianDensity):
        return np.ones(1), density.mean[None], density.cov[None]
    if isinstance(density, GaussianMixtureDensity):
        return (density.weights, np.array([c.mean for c in density.components]),
                np.array([c.cov for c in density.components]))
    if isinstance(density, ProductDensity):
        parts = [mixture_components(f) for f in density.factors]
        if any(p is None for p in parts):
            return None
        weights, means, covs = np.ones(1), np.zeros((1, 0)), np.zeros((1, 0, 0))
        for w, m, c in parts:
            weights = np.outer(weights, w).ravel()
            means = np.concatenate([np.repeat(means, len(w), axis=0), np.tile(m, (len(weights) // len(w), 1))], axis=1)
            dim = covs.shape[1] + c.shape[1]
            new = np.zeros((len(weights), dim, dim))
            new[:, :covs.shape[1], :covs.shape[1]] = np.repeat(covs, len(w), axis=0)
            new[:, covs.shape[1]:, covs.shape[1]:] = np.tile(c, (len(weights) // len(w), 1, 1))
            covs = new
        return weights, means, covs
    return None


def mode_masses(samples, weights, means, covs) -> np.ndarray:
    """Fraction of samples whose most probable component (argmax_k log w_k + log N_k(y)) is k."""
    y = np.asarray(samples, float)
    scores = np.empty((len(y), len(weights)))
    for k, (w, m, c) in enumerate(zip(weights, means, covs)):
        z = np.linalg.solve(np.linalg.cholesky(c), (y - m).T)
        scores[:, k] = math.log(w) - 0.5 * np.sum(z * z, axis=0) - 0.5 * np.linalg.slogdet(c)[1]
    return np.bincount(np.argmax(scores, axis=1), minlength=len(weights)) / len(y)


def blocked_energy_distances(samples, exact_a, exact_b, block: int, blocks: int) -> tuple[float, float, float]:
    """Means over `blocks` disjoint blocks of `block` rows of ED(samples, A) and ED(B, A), and
    the expected ED of two independent exact sets of `block` rows, 2 E|Y - Y'| / block.

    ED(B, A) measures the finite-sample floor, its expectation (from the U-statistic of
    E|Y - Y'| over A) states it without B's sampling noise; averaging blocks shrinks the
    spread without the O(n^2) cost of one large set.
    """
    rows = []
    for s in range(0, blocks * block, block):
        p, a, b = (np.ascontiguousarray(v[s:s + block]) for v in (samples, exact_a, exact_b))
        pt, at, bt = p.T.copy(), a.T.copy(), b.T.copy()
        n2 = float(block * block)
        s_aa = pair_distance_sum(a, at)
        ed_p = (2 * pair_distance_sum(p, at) - pair_distance_sum(p, pt) - s_aa) / n2
        ed_b = (2 * pair_distance_sum(b, at) - pair_distance_sum(b, bt) - s_aa) / n2
        floor = 2.0 * s_aa / (block * (block - 1)) / block if block > 1 else 0.0
        rows.append((max(ed_p, 0.0), max(ed_b, 0.0), floor))
    return tuple(float(v) for v in np.mean(rows, axis=0))


def quality_metrics(bmap: BrenierMap, source_samples, samples, rng: np.random.Generator,
                    metric_samples: int = METRIC_SAMPLES, block: int = ENERGY_BLOCK) -> dict:
    """Metrics of the pushed samples against exact target samples drawn here.

    Each distance to a set A of exact samples is reported beside the same distance between
    an independent exact set B and A (the finite-sample floor): `energy_distance` vs
    `energy_distance_exact` and its expectation `energy_distance_floor` (means over blocks
    of `block` samples, `metric_samples` in all),
    `sliced_w2` vs `sliced_w2_exact` (all samples). `folded_fraction`: samples where
    det DT <= 0 (the interpolated map is not monotone there).
    """
    n = len(samples)
    out = {"n": n, "outside_fraction": float(np.mean(bmap.outside(source_samples)))}
    try:
        exact_a = bmap.target_samples(rng, n)
        exact_b = bmap.target_samples(rng, n)
    except CaseError as exc:
        out["target_samples"] = f"unavailable: {exc}"
        exact_a = exact_b = None
    if exact_a is not None:
        block = min(block, n, metric_samples)
        if block > 0:
            blocks = max(1, min(n, metric_samples) // block)
            (out["energy_distance"], out["energy_distance_exact"],
             out["energy_distance_floor"]) = blocked_energy_distances(samples, exact_a, exact_b, block, blocks)
            out["energy_block"], out["energy_blocks"] = block, blocks
        out["sliced_w2"] = sliced_wasserstein2(samples, exact_a)
        out["sliced_w2_exact"] = sliced_wasserstein2(exact_b, exact_a)
    comps = mixture_components(bmap.case.target)
    if comps is not None and len(comps[0]) > 1:
        out["mode_weights"] = comps[0]
        out["mode_masses"] = mode_masses(samples, *comps)
        out["mode_mass_error"] = float(np.max(np.abs(out["mode_masses"] - comps[0])))
        if exact_a is not None:
            out["mode_masses_exact"] = mode_masses(exact_a, *comps)
            out["mode_mass_error_exact"] = float(np.max(np.abs(out["mode_masses_exact"] - comps[0])))
    det = bmap.jacobian_det(source_samples)
    out["folded_fraction"] = float(np.mean(~(det > 0)))
    if bmap.kl_diagnostic is not None:
        out["kl_diagnostic"] = bmap.kl_diagnostic
    # Needs both normalising constants, and det DT > 0 (else T#p has no density p/det DT).
    if bmap.case.source.normalized and bmap.case.target.normalized and out["folded_fraction"] == 0:
        out["kl_monte_carlo"] = kl_monte_carlo(bmap, source_samples)
    return out


def kl_monte_carlo(bmap: BrenierMap, x) -> float:
    """KL(T#p | q) = E_p[log p(x) - log det DT(x) - log q(T(x))] over the given source samples."""
    det = bmap.jacobian_det(x)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = (bmap.case.source.log_density(x) - np.log(det)
                 - bmap.case.target.log_density(bmap(x)))
    return float(np.mean(terms))

