"""Boundary conditions: which nodes are unknown and how the ghost layer is filled.

The potential is stored on the grid padded by `g` ghost nodes per side (g = stencil reach).
* `dirichlet_exact`: boundary and ghost nodes take the closed-form potential, transient
  when the case has an exact flow from its initial condition, steady otherwise.
* `periodic`: the unknown is psi = phi - |x|^2/2 on the torus; ghosts are periodic images.
* `transport`: the second boundary value problem grad phi(X) = Y for the grid box X and a
  convex target Y; every node is unknown (see `Transport` and its `METHODS`).
"""
from __future__ import annotations

import math

import numpy as np

from .config import Table
from .errors import CaseError
from .geometry import BoxDomain, direction_set, parse_domain, support_domain, support_mismatch
from .grid import Grid
from .registry import Registry

REGISTRY = Registry("kind")
register = REGISTRY.register


class Boundary:
    kind = "abstract"
    periodic = False     # unknown is psi with phi = |x|^2/2 + psi
    needs_exact = False
    allows_unnormalized = False
    removes_drift = False    # constants in log p, log q only shift phi: judge the residual modulo its mean
    moves_with_time = False  # boundary values depend on t (exact transient Dirichlet data)
    domains = None           # (X, Y) when the problem lives on bounded domains (closed forms depend on them)

    def __init__(self, t: Table, grid: Grid, target=None):
        self.grid = grid

    def setup(self, grid: Grid, g: int, exact) -> None:
        self.g = g
        self.exact = exact
        d = grid.dim
        self.padded_shape = tuple(list(np.array(grid.shape) + 2 * g) + [1] * (3 - d))
        self.lo, self.hi = self.unknown_range(grid, g)
        # nodes where the interior scheme runs (the unknown block unless the boundary nodes
        # carry an equation of their own, see `rows`)
        self.scheme_lo, self.scheme_hi = self.scheme_range(grid, g)

    def unknown_range(self, grid: Grid, g: int):
        raise NotImplementedError

    def scheme_range(self, grid: Grid, g: int):
        return self.lo, self.hi

    def fill(self, u: np.ndarray, t: float) -> None:
        """Fill the non-unknown nodes of the padded potential at time t."""
        raise NotImplementedError

    def fill_ids(self, uid: np.ndarray) -> None:
        """Give ghost nodes that are exact copies of unknowns (up to a constant) the unknown
        number of their image, so that Jacobian entries on them land in the right column."""

    def rows(self, op, u: np.ndarray) -> None:
        """Boundary equations outside the scheme range: write them into op.out and fold
        them into op.stats (after the interior kernel ran)."""

    def row_jacobian(self, op, u: np.ndarray, J):
        """Add the Jacobian of `rows` to the interior Jacobian J (scipy CSR)."""
        return J

    def matched_initial(self, op, u: np.ndarray, interior: np.ndarray) -> np.ndarray:
        """Initial guess of the steady solver (and of `[initial] kind = "harmonic"`)."""
        return u

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

    def __init__(self, t: Table, grid: Grid, target=None):
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
        self.moves_with_time = bool(exact.transient)

    def fill(self, u, t):
        values = self._steady_values
        if values is None:
            values = self.exact.potential(self.shell_points, t)
        u[self.shell] = values

    def matched_initial(self, op, u, interior):
        # |x|^2/2 + the harmonic extension of the boundary mismatch matches the data
        return u + op.harmonic_lift(u - interior)


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

    def fill_ids(self, uid):
        self.fill(uid, 0.0)


# [boundary] method -> discretisation of grad phi(X) = Y
METHODS = Registry("method")


def _axis_slab(k: int, index) -> tuple:
    sl = [slice(None)] * 3
    sl[k] = index
    return tuple(sl)


@METHODS.register("neumann")
class FaceNeumann:
    """Box targets: d_i phi = ymin_i on the face x_i = xmin_i and ymax_i on x_i = xmax_i.

    Ghost values continue u - y.x oddly across each face,
        u(x_b - m h nu) = u(x_b + m h nu) - 2 m h sigma_Y(nu)    (nu the outward normal),
    so the boundary nodes carry the interior scheme with the centred normal difference equal
    to the data: second order, exact on quadratics, and the scheme keeps its monotonicity
    (a ghost is its mirror node plus a constant). Exact for box -> box transport: by
    obliqueness a face of X maps into the face of Y with the same normal. 1D: the Neumann
    conditions phi'(a) = y_min, phi'(b) = y_max.
    """

    scheme_inset = 0

    def __init__(self, t: Table, bc: "Transport"):
        if not isinstance(bc.Y, BoxDomain):
            raise t.error("method", f"method \"neumann\" needs a box target domain, got a {bc.Y.kind}; "
                                    "use \"bfo\" or \"bfo2\"")
        # data nudged inside Y by 1e-10 of its size: the face gradient, equal to the data
        # up to round-off, then never leaves a target known only on Y (grid densities)
        lo, hi = bc.Y.bounding_box()
        eps = 1e-10 * (hi - lo)
        self.y_low, self.y_high = lo + eps, hi - eps

    def setup(self, bc: "Transport", grid: Grid, g: int) -> None:
        if any(n <= g for n in grid.shape):
            raise CaseError(f"method \"neumann\" needs more than {g} nodes per axis for this stencil",
                            table="grid", key="shape")

    def _reflect(self, u, grid, g, shifted: bool) -> None:
        for k in range(grid.dim):
            n, h = grid.shape[k], grid.spacing[k]
            for m in range(1, g + 1):
                low = -2 * m * h * self.y_low[k] if shifted else 0
                high = 2 * m * h * self.y_high[k] if shifted else 0
                u[_axis_slab(k, g - m)] = u[_axis_slab(k, g + m)] + low
                u[_axis_slab(k, g + n - 1 + m)] = u[_axis_slab(k, g + n - 1 - m)] + high

    def fill(self, bc, u):
        self._reflect(u, bc.grid, bc.g, True)

    def fill_ids(self, bc, uid):
        self._reflect(uid, bc.grid, bc.g, False)

    def rows(self, bc, op, u):
        pass

    def row_jacobian(self, bc, op, u, J):
        return J


@METHODS.register("bfo")
class BoundaryEquation:
    """Benamou-Froese-Oberman: boundary nodes carry H_h(u)(x) = 0 (kernels/transport.py:
    H(p) = sup_n (p.n - sigma_Y(n)) over sampled directions with n.nu > 0, p.n by upwind
    one-sided differences), any convex Y. The boundary row is

        F_b(u) = F(u)(x_ref) - s H_h(u)(x_b),     x_ref = the inward diagonal neighbour,

    i.e. the boundary node follows the flow of its interior neighbour while its gradient
    relaxes onto dY (s = `scale`, default 1). At a steady state F = kappa (the drift) on
    every row, so H_h = 0 exactly whatever kappa (the constant log(int q / int p) when the
    densities do not balance): a plain row -s H_h would instead satisfy H_h = -kappa/s. The
    steady solution does not depend on s; the flow does: from initial data far from
    grad phi0(X) = Y (H of order 1) a fast relaxation, s H >~ 2, forms a non-convex boundary
    layer (the parallelogram case loses convexity at t = 0.0075 with s = 2 on 65^2, at any
    cfl; s = 1 does not). With `bfo`, -s H_h is monotone (non-increasing in u(x_b),
    non-decreasing in its neighbours); the added F(x_ref) puts the weight
    s |n.nu| / h - c_ref on u(x_ref) (c_ref the centre coefficient of x_ref, about
    2d/(h^2 lambda_min(D^2 phi))), so the whole row is monotone only for s >= h c_ref / |n.nu|.
    The interior scheme runs on the other nodes, whose stencils must fit inside the grid
    (ghost width 1: fd2 or wide_stencil with stencil_radius = 1); ghost values are only
    extrapolated (quadratically) so that the centred gradient written to `map` on the
    boundary is the second-order one-sided one.
    """

    second_order = False
    scheme_inset = 1

    def __init__(self, t: Table, bc: "Transport"):
        self.scale = t.number("scale", 1.0, positive=True)
        count = t.integer("directions", {1: 2, 2: 2048, 3: 4096}[bc.grid.dim], low=4, high=100_000)
        dirs = direction_set(bc.Y, count)
        self.dirs = np.zeros((len(dirs), 3))
        self.dirs[:, :bc.grid.dim] = dirs
        self.sigma = np.ascontiguousarray(bc.Y.support(dirs))

    def setup(self, bc: "Transport", grid: Grid, g: int) -> None:
        if g != 1:
            raise CaseError(f"[boundary] method \"{self.method}\" needs a stencil of reach 1 "
                            f"(fd2, or wide_stencil with stencil_radius = 1), got reach {g}; "
                            "method \"neumann\" (box targets) takes any stencil",
                            table="scheme", key="stencil_radius")
        d = grid.dim
        idx = np.stack(np.meshgrid(*[np.arange(n) for n in grid.shape], indexing="ij"), axis=-1).reshape(-1, d)
        n = np.asarray(grid.shape)
        sides = np.where(idx == 0, -1, np.where(idx == n - 1, 1, 0))
        on = np.any(sides != 0, axis=1)
        self.nodes = np.zeros((on.sum(), 3), dtype=np.int64)
        self.sides = np.zeros((on.sum(), 3), dtype=np.int64)
        self.nodes[:, :d] = idx[on] + g
        self.sides[:, :d] = sides[on]
        refs = self.nodes - self.sides
        shape = bc.padded_shape
        self.node_flat = np.ravel_multi_index(self.nodes.T, shape)
        self.ref_flat = np.ravel_multi_index(refs.T, shape)
        self.h = np.ones(3)
        self.h[:d] = grid.spacing
        nb = len(self.nodes)
        self.H, self.coef = np.zeros(nb), np.zeros(nb)
        self.active = np.zeros(nb, dtype=np.int64)

    def fill(self, bc, u):
        g, grid = bc.g, bc.grid
        for k in range(grid.dim):
            n = grid.shape[k]
            at = lambda i: u[_axis_slab(k, i)]     # noqa: E731
            u[_axis_slab(k, g - 1)] = 3 * at(g) - 3 * at(g + 1) + at(g + 2)
            u[_axis_slab(k, g + n)] = 3 * at(g + n - 1) - 3 * at(g + n - 2) + at(g + n - 3)

    def fill_ids(self, bc, uid):
        pass

    def rows(self, bc, op, u):
        from .kernels.transport import hamiltonian
        hamiltonian(u, self.nodes, self.sides, bc.grid.dim, self.h, self.dirs, self.sigma,
                    self.second_order, self.H, self.active, self.coef)
        flat = op.out.reshape(-1)
        F = flat[self.ref_flat] - self.scale * self.H
        flat[self.node_flat] = F
        st = op.stats
        st[0] = max(st[0], self.scale * float(self.coef.max()))
        st[3] = max(st[3], float(F.max()))
        st[4] = min(st[4], float(F.min()))
        st[5] += float(np.dot(op.weight.reshape(-1)[self.node_flat], F))

    def row_jacobian(self, bc, op, u, J):
        import scipy.sparse as sp

        from .kernels.transport import hamiltonian_jacobian
        d = bc.grid.dim
        nb = len(self.nodes)
        index = np.full((nb, 1 + 2 * d), -1, dtype=np.int64)
        value = np.zeros((nb, 1 + 2 * d))
        hamiltonian_jacobian(np.asarray(bc.padded_shape, dtype=np.int64), self.nodes, self.sides, d,
                             self.h, self.dirs, self.active, self.second_order, index, value)
        uid = op.uid.reshape(-1)
        rows = np.repeat(uid[self.node_flat], 1 + 2 * d).reshape(nb, -1)
        cols = np.where(index >= 0, uid[np.maximum(index, 0)], -1)
        keep = cols >= 0
        n = J.shape[0]
        Jb = sp.csr_matrix((-self.scale * value[keep], (rows[keep], cols[keep])), shape=(n, n))
        P = sp.csr_matrix((np.ones(nb), (uid[self.node_flat], uid[self.ref_flat])), shape=(n, n))
        return J + Jb + P @ J


@METHODS.register("bfo2")
class SecondOrderEquation(BoundaryEquation):
    """`bfo` with p = grad u(x_b) from second-order differences (centred along the face,
    three-point one-sided across it): second order, exact on quadratics, not monotone."""

    second_order = True


def _target_domain(t: Table, dim: int, target):
    """Y from `target_domain`, or the target density's bounded support; the two must agree."""
    support = support_domain(target) if target is not None else None
    if t.has("target_domain"):
        sub = t.table("target_domain")
        domain = parse_domain(sub, dim)
        t.keep("target_domain", sub.resolved)
        why = support_mismatch(domain, support) if support is not None else None
        if why:
            raise t.error("target_domain", why)
        return domain
    if support is None:
        raise t.error("target_domain", "the target density has no bounded support: give the target domain Y, "
                                       "e.g. target_domain = { kind = \"box\", lower = [..], upper = [..] } "
                                       "(or kind = \"ellipse\" with center, matrix; \"polygon\" with vertices)")
    t.keep("target_domain", support.state())
    return support


@register("transport")
class Transport(Boundary):
    """Second boundary value problem grad phi(X) = Y: X the grid box, Y convex.

    Every node is unknown. `method` (registry METHODS): "neumann" (box Y; default there),
    "bfo2" (Benamou-Froese-Oberman boundary equation with a second-order gradient, not
    monotone; default for other Y, as it is second order where "bfo" is first order, with
    the same Newton iteration counts) or "bfo" (the monotone upwind version, for use with
    the monotone wide stencil). Solutions are defined up to a constant and the masses need
    not balance: the drift kappa = log(int_Y q / int_X p) of a steady state is removed from
    the residual and reported.
    """

    allows_unnormalized = True
    removes_drift = True

    def __init__(self, t: Table, grid: Grid, target=None):
        super().__init__(t, grid)
        self.X = BoxDomain(grid.lower, grid.upper)
        self.Y = _target_domain(t, grid.dim, target)
        self.domains = (self.X, self.Y)
        default = "neumann" if isinstance(self.Y, BoxDomain) else "bfo2"
        self.method = METHODS[t.string("method", default, choices=METHODS)](t, self)

    def unknown_range(self, grid, g):
        return _ranges(grid, g, 0)

    def scheme_range(self, grid, g):
        return _ranges(grid, g, self.method.scheme_inset)

    def setup(self, grid, g, exact):
        super().setup(grid, g, exact)
        self.method.setup(self, grid, g)

    def fill(self, u, t):
        self.method.fill(self, u)

    def fill_ids(self, uid):
        self.method.fill_ids(self, uid)

    def rows(self, op, u):
        self.method.rows(self, op, u)

    def row_jacobian(self, op, u, J):
        return self.method.row_jacobian(self, op, u, J)

    def matched_initial(self, op, u, interior):
        """The separable quadratic whose gradient maps X affinely onto the bounding box of Y."""
        (xl, xu), (yl, yu) = self.X.bounding_box(), self.Y.bounding_box()
        a = (yu - yl) / (xu - xl)
        b = yl - a * xl
        x = op.points
        phi = np.sum(0.5 * a * x * x + b * x, axis=-1)
        self.fill(phi, math.inf)
        return np.ascontiguousarray(phi)

    def state(self):
        return {"kind": self.kind, "method": self.method.method, "target_domain": self.Y.state()}


def parse_boundary(t: Table, grid: Grid, target=None) -> Boundary:
    kind = t.string("kind", "dirichlet_exact", choices=REGISTRY)
    boundary = REGISTRY[kind](t, grid, target)
    t.done()
    return boundary


def check_periodic_grid(grid: Grid, g: int) -> None:
    if any(n < 2 * g + 1 for n in grid.shape):
        raise CaseError(f"periodic grids need at least {2 * g + 1} nodes per axis for this stencil",
                        table="grid", key="shape")
