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

    def state(self):
        return {"kind": "polygon", "vertices": self.vertices.tolist()}


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
