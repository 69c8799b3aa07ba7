"""Convex target domains Y for the transport boundary condition: box, ellipse, polygon.

Each domain provides its support function sigma_Y(n) = max_{y in Y} y.n, a signed distance
(negative inside) and a bounding box. For convex Y the signed distance is
H(y) = sup_{|n|=1} (y.n - sigma_Y(n)) (Benamou-Froese-Oberman).
"""
from __future__ import annotations

import numpy as np

from .config import Table


def validate_polygon(t: Table, key: str) -> np.ndarray:
    raw = t.raw(key)
    if (not isinstance(raw, list) or any(not isinstance(v, list) or len(v) != 2 for v in raw)):
        raise t.error(key, "expected an array of [x, y] vertex pairs")
    if len(raw) < 3:
        raise t.error(key, f"a polygon needs at least 3 vertices, got {len(raw)}")
    v = np.array([[t._as_float(key, a) for a in p] for p in raw])
    edges = np.roll(v, -1, axis=0) - v
    nxt = np.roll(edges, -1, axis=0)
    cross = edges[:, 0] * nxt[:, 1] - edges[:, 1] * nxt[:, 0]
    if np.any(np.linalg.norm(edges, axis=1) == 0):
        raise t.error(key, "polygon has repeated consecutive vertices")
    if not np.all(cross > 0):
        if np.all(cross < 0):
            raise t.error(key, "polygon vertices must be counter-clockwise (they are clockwise)")
        raise t.error(key, "polygon must be convex (vertices counter-clockwise, no reflex angle)")
    t.keep(key, v.tolist())
    return v


def polygon_signed_distance(vertices: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Exact signed Euclidean distance to a convex CCW polygon (negative inside)."""
    p = np.asarray(points, float)
    a = vertices
    b = np.roll(vertices, -1, axis=0)
    e = b - a
    rel = p[..., None, :] - a
    t = np.clip(np.sum(rel * e, axis=-1) / np.sum(e * e, axis=-1), 0.0, 1.0)
    closest = a + t[..., None] * e
    dist = np.min(np.linalg.norm(p[..., None, :] - closest, axis=-1), axis=-1)
    normals = np.stack([e[:, 1], -e[:, 0]], axis=-1) / np.linalg.norm(e, axis=-1, keepdims=True)
    inside = np.all(np.sum(rel * normals, axis=-1) <= 0, axis=-1)
    return np.where(inside, -dist, dist)


class Domain:
    kind = "abstract"
    dim: int

    def support(self, normals: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def signed_distance(self, points: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def bounding_box(self) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def contains(self, points: np.ndarray, tol: float = 1e-12) -> np.ndarray:
        return self.signed_distance(points) <= tol

    def normals(self) -> np.ndarray:
        """Outward normals of flat faces (rows; none for smooth domains): the directions at
        which a sampled sup_n (p.n - sigma_Y(n)) must be exact."""
        return np.zeros((0, self.dim))

    def boundary_points(self, count: int) -> np.ndarray:
        """Points on the boundary (all vertices included for polytopes), about `count`."""
        raise NotImplementedError

    @property
    def size(self) -> float:
        lo, hi = self.bounding_box()
        return float(np.max(hi - lo))


class BoxDomain(Domain):
    kind = "box"

    def __init__(self, lower, upper):
        self.lower, self.upper = np.asarray(lower, float), np.asarray(upper, float)
        self.dim = len(self.lower)

    def support(self, normals):
        n = np.asarray(normals, float)
        return np.sum(np.where(n > 0, n * self.upper, n * self.lower), axis=-1)

    def signed_distance(self, points):
        p = np.asarray(points, float)
        c = 0.5 * (self.lower + self.upper)
        r = 0.5 * (self.upper - self.lower)
        q = np.abs(p - c) - r
        outside = np.linalg.norm(np.maximum(q, 0.0), axis=-1)
        inside = np.minimum(np.max(q, axis=-1), 0.0)
        return outside + inside

    def bounding_box(self):
        return self.lower, self.upper

    def normals(self):
        eye = np.eye(self.dim)
        return np.concatenate([-eye, eye])

    def boundary_points(self, count):
        # faces sampled on a tensor grid; corners included
        m = max(2, int(round((count / (2 * self.dim)) ** (1 / max(self.dim - 1, 1)))) + 1)
        axes = [np.linspace(a, b, m) for a, b in zip(self.lower, self.upper)]
        pts = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, self.dim)
        on_face = np.any(np.isclose(pts, self.lower) | np.isclose(pts, self.upper), axis=-1)
        return pts[on_face]

    def state(self):
        return {"kind": "box", "lower": self.lower.tolist(), "upper": self.upper.tolist()}


class EllipseDomain(Domain):
    """{y : (y-c)^T M^{-1} (y-c) <= 1}; a ball of radius r is M = r^2 I."""

    kind = "ellipse"

    def __init__(self, center, matrix):
        self.center = np.asarray(center, float)
        self.matrix = np.asarray(matrix, float)
        self.dim = len(self.center)
        self.sqrt = _spd_sqrt(self.matrix)
        self.inv = np.linalg.inv(self.matrix)

    def support(self, normals):
        n = np.asarray(normals, float)
        return n @ self.center + np.sqrt(np.einsum("...i,ij,...j->...", n, self.matrix, n))

    def signed_distance(self, points):
        # Exact for balls; for ellipses the first-order distance |g|/|grad g| (g = level - 1),
        # which has the right sign and vanishes on the boundary.
        z = np.asarray(points, float) - self.center
        level = np.sqrt(np.einsum("...i,ij,...j->...", z, self.inv, z))
        grad = np.linalg.norm(np.einsum("ij,...j->...i", self.inv, z), axis=-1)
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = np.where(grad > 0, level / np.maximum(grad, 1e-300), np.sqrt(np.linalg.eigvalsh(self.matrix)[0]))
        return (level - 1.0) * scale

    def bounding_box(self):
        half = np.sqrt(np.diag(self.matrix))
        return self.center - half, self.center + half

    def boundary_points(self, count):
        return self.center + unit_directions(self.dim, count) @ self.sqrt.T

    def state(self):
        return {"kind": "ellipse", "center": self.center.tolist(), "matrix": self.matrix.tolist()}


class PolygonDomain(Domain):
    kind = "polygon"

    def __init__(self, vertices):
        self.vertices = np.asarray(vertices, float)
        self.dim = 2

    def support(self, normals):
        return np.max(np.asarray(normals, float) @ self.vertices.T, axis=-1)

    def signed_distance(self, points):
        return polygon_signed_distance(self.vertices, points)

    def bounding_box(self):
        return self.vertices.min(axis=0), self.vertices.max(axis=0)

    def normals(self):
        e = np.roll(self.vertices, -1, axis=0) - self.vertices
        n = np.stack([e[:, 1], -e[:, 0]], axis=-1)
        return n / np.linalg.norm(n, axis=-1, keepdims=True)

    def boundary_points(self, count):
        per_edge = max(1, count // len(self.vertices))
        s = np.arange(per_edge) / per_edge
        b = np.roll(self.vertices, -1, axis=0)
        return (self.vertices[:, None, :] + s[None, :, None] * (b - self.vertices)[:, None, :]).reshape(-1, 2)

    def state(self):
        return {"kind": "polygon", "vertices": self.vertices.tolist()}


def unit_directions(dim: int, count: int) -> np.ndarray:
    """About `count` unit vectors spread evenly: +-1 in 1D, equal angles in 2D, a
    Fibonacci lattice on the sphere in 3D."""
    if dim == 1:
        return np.array([[-1.0], [1.0]])
    if dim == 2:
        a = 2 * np.pi * np.arange(count) / count
        return np.stack([np.cos(a), np.sin(a)], axis=-1)
    k = np.arange(count) + 0.5
    z = 1 - 2 * k / count
    r = np.sqrt(1 - z * z)
    a = np.pi * (1 + 5 ** 0.5) * k
    return np.stack([r * np.cos(a), r * np.sin(a), z], axis=-1)


def direction_set(domain: Domain, count: int) -> np.ndarray:
    """Unit directions n at which sup_n (p.n - sigma_Y(n)) is sampled: evenly spread ones,
    the coordinate axes and the face normals of Y (so that the sup is exact on flat faces)."""
    d = domain.dim
    eye = np.eye(d)
    dirs = np.concatenate([unit_directions(d, count), -eye, eye, domain.normals()])
    dirs[np.abs(dirs) < 1e-12] = 0.0        # exactly tangential: no neighbour across the face
    keys = np.round(dirs, 12)
    _, first = np.unique(keys, axis=0, return_index=True)
    return dirs[np.sort(first)]


def _spd_sqrt(m: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh(m)
    return (v * np.sqrt(w)) @ v.T


def parse_domain(t: Table, dim: int) -> Domain:
    kind = t.string("kind", choices=("box", "ellipse", "polygon"))
    if kind == "box":
        lower, upper = t.vector("lower", dim), t.vector("upper", dim)
        if np.any(upper <= lower):
            raise t.error("upper", "every entry of upper must exceed lower")
        domain: Domain = BoxDomain(lower, upper)
    elif kind == "ellipse":
        center = t.vector("center", dim)
        matrix = t.spd_matrix("matrix", dim)
        domain = EllipseDomain(center, matrix)
    else:
        if dim != 2:
            raise t.error("kind", "a polygon target domain needs a 2D grid")
        domain = PolygonDomain(validate_polygon(t, "vertices"))
    t.done()
    return domain


def _uniform_support(q) -> Domain:
    shapes = {"box": lambda: BoxDomain(q.lower, q.upper),
              "ball": lambda: EllipseDomain(q.center, q.radius ** 2 * np.eye(q.dim)),
              "polygon": lambda: PolygonDomain(q.vertices)}
    return shapes[q.shape]()


def _box_support(q) -> Domain | None:
    box = q.support_box()
    return None if box is None else BoxDomain(*box)


# density kind -> its bounded support as a Domain (None: unbounded or unknown)
SUPPORTS = {"uniform": _uniform_support, "grid": _box_support, "product": _box_support}


def support_domain(density) -> Domain | None:
    """The bounded support of a density as a convex domain, or None."""
    make = SUPPORTS.get(density.kind)
    return None if make is None else make(density)


def support_mismatch(domain: Domain, support: Domain, samples: int = 720) -> str | None:
    """Why `domain` (Y) differs from a density's bounded `support`, or None when they agree:
    the support must lie in Y (mass outside Y would be lost) and Y in the support (q would
    vanish on part of Y, where the Monge-Ampere equation needs q > 0). Checked on boundary
    points of both (vertices included), to a tolerance of 1e-9 of their size."""
    tol = 1e-9 * max(domain.size, support.size)
    out = domain.signed_distance(support.boundary_points(samples))
    if np.max(out) > tol:
        return f"the target density's support sticks out of target_domain by {np.max(out):.3g}"
    out = support.signed_distance(domain.boundary_points(samples))
    if np.max(out) > tol:
        return (f"target_domain reaches {np.max(out):.3g} beyond the target density's support, "
                "where q vanishes")
    return None
