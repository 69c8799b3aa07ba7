"""Closed-form solutions checked against the pushforward identity q(T) det DT = p and the PDE."""
import numpy as np
import pytest
from scipy.integrate import solve_ivp

from pma_solver.densities import (GaussianDensity, GaussianMixtureDensity, ProductDensity,
                                  UniformDensity)
from pma_solver.exact import GaussianFlow, OneDimensionalMap, automatic


def _random_spd(rng, d, shift):
    b = rng.normal(size=(d, d))
    return b @ b.T + shift * np.eye(d)


def _jacobian(T, x, eps=1e-5):
    d = x.shape[-1]
    cols = [(T(x + eps * np.eye(d)[k]) - T(x - eps * np.eye(d)[k])) / (2 * eps) for k in range(d)]
    return np.stack(cols, axis=-1)


@pytest.mark.parametrize("d", [1, 2, 3])
def test_gaussian_steady_map_pushes_p_to_q(d):
    rng = np.random.default_rng(d)
    p = GaussianDensity(rng.normal(size=d), _random_spd(rng, d, 0.5))
    q = GaussianDensity(rng.normal(size=d), _random_spd(rng, d, 0.3))
    flow = GaussianFlow(p, q, transient=False)
    x = rng.normal(size=(20, d))
    J = _jacobian(flow.map, x)
    lhs = q.log_density(flow.map(x)) + np.log(np.linalg.det(J))
    assert np.max(np.abs(lhs - p.log_density(x))) < 1e-8
    assert np.allclose(flow.A_star @ p.cov @ flow.A_star, q.cov, atol=1e-12)


@pytest.mark.parametrize("d", [1, 2, 3])
def test_gaussian_transient_solves_the_flow_and_matches_an_ode_solve(d):
    rng = np.random.default_rng(10 + d)
    p = GaussianDensity(rng.normal(size=d), _random_spd(rng, d, 0.8))
    q = GaussianDensity(rng.normal(size=d), _random_spd(rng, d, 0.4))
    flow = GaussianFlow(p, q)
    x = rng.normal(size=(7, d))
    for t in (0.05, 1.3, 4.7):
        A, b, c = flow.coefficients(t)
        eps = 1e-5
        dphi = (flow.potential(x, t + eps) - flow.potential(x, t - eps)) / (2 * eps)
        rhs = np.linalg.slogdet(A)[1] + q.log_density(flow.map(x, t)) - p.log_density(x)
        assert np.max(np.abs(dphi - rhs)) < 1e-7
    # Independent integration of the Riccati/linear/constant ODEs (reference/math.md 7.4).
    P1, P2 = np.linalg.inv(p.cov), np.linalg.inv(q.cov)

    def rhs(t, y):
        A = y[:d * d].reshape(d, d)
        b = y[d * d:d * d + d]
        dA = P1 - A @ P2 @ A
        db = -A @ P2 @ (b - q.mean) - P1 @ p.mean
        dc = (np.linalg.slogdet(A)[1] - 0.5 * (b - q.mean) @ P2 @ (b - q.mean) + 0.5 * p.mean @ P1 @ p.mean
              + 0.5 * (np.linalg.slogdet(p.cov)[1] - np.linalg.slogdet(q.cov)[1]))
        return np.concatenate([dA.ravel(), db, [dc]])

    y0 = np.concatenate([np.eye(d).ravel(), np.zeros(d), [0.0]])
    sol = solve_ivp(rhs, (0, 3.0), y0, rtol=1e-12, atol=1e-13, method="DOP853")
    A, b, c = flow.coefficients(3.0)
    assert np.max(np.abs(sol.y[:d * d, -1] - A.ravel())) < 1e-9
    assert np.max(np.abs(sol.y[d * d:d * d + d, -1] - b)) < 1e-9
    assert abs(sol.y[-1, -1] - c) < 1e-9


def test_gaussian_flow_converges_to_the_brenier_map():
    p = GaussianDensity([0.0, 0.0], np.eye(2))
    q = GaussianDensity([0.5, -0.25], [[2.25, 0.3], [0.3, 0.64]])
    flow = GaussianFlow(p, q)
    A, b, _ = flow.coefficients(200.0)
    assert np.allclose(A, flow.A_star, atol=1e-12) and np.allclose(b, flow.b_star, atol=1e-12)


def test_one_d_map_is_exact_for_gaussians_to_1e10():
    p = GaussianDensity([0.3], [[1.5]])
    q = GaussianDensity([-1.0], [[0.7]])
    x = np.linspace(-7, 7, 301)[:, None]
    T = OneDimensionalMap(p, q).map(x)[:, 0]
    assert np.max(np.abs(T - (-1.0 + np.sqrt(0.7 / 1.5) * (x[:, 0] - 0.3)))) < 1e-10


def test_one_d_map_gaussian_to_uniform_is_the_normal_cdf():
    from scipy.special import ndtr
    p = GaussianDensity([0.0], [[1.0]])
    q = UniformDensity(1, lower=[0.0], upper=[1.0])
    x = np.linspace(-5, 5, 101)[:, None]
    assert np.max(np.abs(OneDimensionalMap(p, q).map(x)[:, 0] - ndtr(x[:, 0]))) < 1e-10


def test_one_d_mixture_map_pushforward_identity():
    p = GaussianDensity([0.0], [[1.0]])
    q = GaussianMixtureDensity([0.3, 0.7], [[-1.5], [1.5]], [[[0.36]], [[0.49]]])
    m = OneDimensionalMap(p, q)
    x = np.linspace(-3, 3, 61)[:, None]
    T = m.map(x)[:, 0]
    assert np.max(np.abs(q.cdf(T) - p.cdf(x[:, 0]))) < 1e-13
    dT = (m.map(x + 1e-5)[:, 0] - m.map(x - 1e-5)[:, 0]) / 2e-5
    assert np.max(np.abs(q.log_density(T[:, None]) + np.log(dT) - p.log_density(x))) < 1e-6
    # potential: derivative of phi is T
    # phi' = T: increments of phi equal Simpson's rule on T (error ~ h^5 T^(4) / 2880)
    xf = np.linspace(-3, 3, 241)[:, None]
    Tf = m.map(xf)[:, 0]
    phi = m.potential(xf)
    mid = 0.5 * (xf[1:] + xf[:-1])
    simpson = np.diff(xf[:, 0]) / 6 * (Tf[:-1] + 4 * m.map(mid)[:, 0] + Tf[1:])
    assert np.max(np.abs(np.diff(phi) - simpson)) < 5e-6


def test_product_of_mixtures_is_separable_sum():
    f1 = GaussianMixtureDensity([0.4, 0.6], [[-0.9], [0.9]], [[[0.3]], [[0.4]]])
    f2 = GaussianMixtureDensity([0.5, 0.5], [[-0.7], [0.7]], [[[0.35]], [[0.35]]])
    p = GaussianDensity([0.0, 0.0], np.eye(2))
    q = ProductDensity([f1, f2])
    exact = automatic(p, q)
    x = np.random.default_rng(0).normal(size=(30, 2))
    J = _jacobian(exact.map, x)
    lhs = q.log_density(exact.map(x)) + np.log(np.linalg.det(J))
    assert np.max(np.abs(lhs - p.log_density(x))) < 1e-6


def test_torus_manufactured_source_is_det_of_map_jacobian():
    from pma_solver.case import load_case
    from conftest import CASES
    case = load_case(CASES / "torus2d.toml")
    x = np.random.default_rng(1).random((50, 2))
    J = _jacobian(case.exact.map, x)
    assert np.max(np.abs(np.linalg.det(J) - case.source.density(x))) < 1e-8
    assert abs(case.source.density(np.random.default_rng(2).random((200000, 2))).mean() - 1.0) < 5e-3
