"""Compiled node operators: NumPy twins agree, fd2 is exact on quadratics."""
import numpy as np
import pytest

from conftest import CASES
from pma_solver.case import load_case
from pma_solver.operator import FlowOperator
from pma_solver.reference import reference_rhs

CONFIGS = [
    ("gauss1d.toml", []),
    ("mixture1d.toml", []),
    ("gauss2d_aniso.toml", []),
    ("gauss2d_aniso.toml", ["scheme.name=wide_stencil", "scheme.stencil_radius=1"]),
    ("gauss2d_aniso.toml", ["scheme.name=wide_stencil", "scheme.stencil_radius=2"]),
    ("gauss2d_aniso.toml", ["scheme.name=wide_stencil", "scheme.stencil_radius=3"]),
    ("product2d.toml", ["grid.shape=[17,21]"]),
    ("torus2d.toml", ["grid.shape=[12,14]"]),
    ("gauss3d.toml", ["grid.shape=[7,8,9]"]),
    ("gauss3d.toml", ["grid.shape=[7,8,9]", "scheme.name=wide_stencil"]),
    ("gauss2d_aniso.toml", ["scheme.name=wide_stencil", "scheme.stencil_radius=2", "scheme.filtered=false"]),
    ("product2d.toml", ["grid.shape=[17,21]", "scheme.name=wide_stencil", "scheme.filtered=false"]),
    ("gauss3d.toml", ["grid.shape=[7,8,9]", "scheme.name=wide_stencil", "scheme.filtered=false"]),
]


def _random_convex(op, rng):
    x = op.points
    d = op.dim
    b = rng.normal(size=(d, d))
    A = b @ b.T + 0.5 * np.eye(d)
    if op.boundary.periodic:
        k = 2 * np.pi
        u = 0.01 * np.sin(k * x[..., 0]) * np.cos(k * x[..., -1]) + 1e-4 * rng.normal(size=x.shape[:-1])
    else:
        u = 0.5 * np.einsum("...i,ij,...j->...", x, A, x) + 0.05 * np.sin(x.sum(-1)) + 1e-3 * rng.normal(size=x.shape[:-1])
    op.boundary.fill(u, 0.0)
    return np.ascontiguousarray(u)


@pytest.mark.parametrize("case,sets", CONFIGS)
def test_numba_kernel_matches_numpy_twin(case, sets):
    op = FlowOperator(load_case(CASES / case, sets))
    rng = np.random.default_rng(len(sets) + len(case))
    for _ in range(3):
        u = _random_convex(op, rng)
        op.evaluate(u)
        F = op.residual_field()
        R = reference_rhs(op, u)
        assert np.max(np.abs(F - R)) <= 1e-8 * (1 + np.max(np.abs(R)))


@pytest.mark.parametrize("case", ["gauss1d.toml", "gauss2d_aniso.toml", "gauss3d.toml"])
def test_fd2_is_exact_on_the_quadratic_brenier_potential(case):
    sets = ["initial.kind=exact"] + (["grid.shape=[9,10,11]"] if "3d" in case else [])
    op = FlowOperator(load_case(CASES / case, sets))
    u = op.initial_state()
    op.evaluate(u)
    assert np.max(np.abs(op.residual_field())) < 1e-11
