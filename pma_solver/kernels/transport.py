"""Boundary operator of the second boundary value problem grad phi(X) = Y (transport).

At a boundary node x of the box X the condition is H(grad phi(x)) = 0 with the
Benamou-Froese-Oberman defining function of the convex target

    H(p) = sup_{|n| = 1} (p.n - sigma_Y(n))      (signed distance to dY for p near dY),

sampled on unit directions n (evenly spread, plus the axes and the flat-face normals of Y,
where the sup is then exact), restricted to n.nu > 0 for every outward normal nu of X at x.
The restriction is the obliqueness of the exact map (it sends the face of X with normal nu
to the part of dY whose normals n have n.nu > 0): without it a node near a corner of X
can satisfy H = 0 on the neighbouring face of Y (a box -> box problem then converges with
order 1.4 instead of 2), and it keeps every upwind neighbour inside the grid. Two
discretisations of p.n:

* `bfo` (monotone, first order): the upwind directional difference
      D^n u(x) = sum_a |n_a| (u(x) - u(x - h_a sign(n_a) e_a)) / h_a.
  H_h = max_n (D^n u - sigma_Y(n)) is non-decreasing in u(x) and non-increasing in the
  neighbours: -s H_h is a monotone boundary equation.
* `bfo2` (second order, not monotone): p = the gradient from centred differences along the
  face and the three-point one-sided difference (3u0 - 4u1 + u2)/(2h) across it. Exact on
  quadratics.

`hamiltonian` returns H_h, the active direction and dH/du(x) (for the explicit step bound);
`hamiltonian_jacobian` writes dH/du at x and its 2 dim neighbour slots (padded flat index,
value) for the active direction.
"""
from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, inline="always")
def _at(u, i, j, k, a, m):
    """u at offset m along axis a from (i, j, k)."""
    if a == 0:
        return u[i + m, j, k]
    if a == 1:
        return u[i, j + m, k]
    return u[i, j, k + m]


@njit(cache=True)
def _second_order_gradient(u, i, j, k, side, dim, h, p):
    for a in range(dim):
        c = u[i, j, k]
        if side[a] == 0:
            p[a] = (_at(u, i, j, k, a, 1) - _at(u, i, j, k, a, -1)) / (2.0 * h[a])
        elif side[a] < 0:
            p[a] = (-3.0 * c + 4.0 * _at(u, i, j, k, a, 1) - _at(u, i, j, k, a, 2)) / (2.0 * h[a])
        else:
            p[a] = (3.0 * c - 4.0 * _at(u, i, j, k, a, -1) + _at(u, i, j, k, a, -2)) / (2.0 * h[a])


@njit(cache=True)
def hamiltonian(u, nodes, sides, dim, h, dirs, sigma, second_order, H, active, coef):
    """H_h(u)(x_b), its active direction and dH_h/du(x_b) for every boundary node b."""
    bwd = np.zeros(3)     # (u(x) - u(x - h e_a)) / h
    fwd = np.zeros(3)     # (u(x) - u(x + h e_a)) / h
    p = np.zeros(3)
    for b in range(nodes.shape[0]):
        i, j, k = nodes[b, 0], nodes[b, 1], nodes[b, 2]
        side = sides[b]
        c = u[i, j, k]
        if second_order:
            _second_order_gradient(u, i, j, k, side, dim, h, p)
        else:
            for a in range(dim):
                if side[a] >= 0:
                    bwd[a] = (c - _at(u, i, j, k, a, -1)) / h[a]
                if side[a] <= 0:
                    fwd[a] = (c - _at(u, i, j, k, a, 1)) / h[a]
        best = -np.inf
        arg = -1
        for e in range(dirs.shape[0]):
            val = -sigma[e]
            for a in range(dim):
                na = dirs[e, a]
                if side[a] * na <= 0.0 and side[a] != 0:     # n.nu > 0 fails for this face
                    val = -np.inf
                    break
                if second_order:
                    val += na * p[a]
                elif na > 0.0:
                    val += na * bwd[a]
                else:
                    val -= na * fwd[a]
            if val > best:
                best = val
                arg = e
        H[b] = best
        active[b] = arg
        slope = 0.0
        for a in range(dim):
            if second_order:
                if side[a] != 0:
                    slope += 1.5 * abs(dirs[arg, a]) / h[a]
            else:
                slope += abs(dirs[arg, a]) / h[a]
        coef[b] = slope


@njit(cache=True)
def hamiltonian_jacobian(shape, nodes, sides, dim, h, dirs, active, second_order, index, value):
    """dH_h/du for the active direction: slot 0 = x_b, slots 1 + 2a, 2 + 2a = the two
    neighbours used along axis a (index -1 where unused). `index` holds flat padded
    indices into an array of `shape`."""
    s1 = shape[1] * shape[2]
    s2 = shape[2]
    for b in range(nodes.shape[0]):
        i, j, k = nodes[b, 0], nodes[b, 1], nodes[b, 2]
        base = i * s1 + j * s2 + k
        stride = np.array([s1, s2, 1])
        n = dirs[active[b]]
        index[b, 0] = base
        centre = 0.0
        for a in range(dim):
            ia = 1 + 2 * a
            index[b, ia] = -1
            index[b, ia + 1] = -1
            side = sides[b, a]
            if second_order:
                w = n[a] / (2.0 * h[a])
                if side == 0:
                    index[b, ia], value[b, ia] = base + stride[a], w
                    index[b, ia + 1], value[b, ia + 1] = base - stride[a], -w
                else:
                    out = -side     # towards the inside
                    centre += 3.0 * w * side
                    index[b, ia], value[b, ia] = base + out * stride[a], -4.0 * w * side
                    index[b, ia + 1], value[b, ia + 1] = base + 2 * out * stride[a], w * side
            elif n[a] != 0.0:
                w = abs(n[a]) / h[a]
                centre += w
                step = -1 if n[a] > 0.0 else 1
                index[b, ia], value[b, ia] = base + step * stride[a], -w
        value[b, 0] = centre
