"""Implicit and steady solvers (issue 5).

* the analytic Jacobian of every scheme equals central differences of the discrete operator
  (for the wide stencil: of the active frame, away from ties between frames). Where the
  upwind shift of the gradient is active (cell Peclet number > 1, monotone schemes only) the
  Jacobian keeps the shift's dependence on the slope of log q frozen (it would need the
  Hessian of log q), so those cases are run on boxes where the Peclet number stays <= 1;
  Newton converges linearly rather than quadratically at such nodes;
* backward Euler, the steady solver and the explicit flow reach the same discrete solution;
* the iterative linear solver (GMRES + AMG/ILU) gives the direct solver's answer and reports
  its iterations;
* mirror-descent schedules drive the implicit step sizes, and the regret column is
  sum_{j<k} dt_j (KL_j - KL_final) of the logged KL values.
"""
import h5py
import numpy as np
import pytest

from conftest import CASES
from pma_solver.case import load_case
from pma_solver.operator import FlowOperator
from pma_solver.runner import Runner

JACOBIAN_CASES = {
    "fd2 1d": ("mixture1d.toml", ["grid.shape=[15]"]),
    "fd2 2d": ("gauss2d_aniso.toml", ["grid.shape=[9,10]"]),
    "fd2 3d": ("gauss3d.toml", ["grid.shape=[6,6,7]"]),
    "wide r=2 2d": ("gauss2d_aniso.toml", ["grid.shape=[11,11]", "scheme.name=wide_stencil",
                                          "scheme.stencil_radius=2", "scheme.filtered=false",
                                          "grid.lower=[-1.5,-1.5]", "grid.upper=[1.5,1.5]"]),
    # +-1.5 sigma: cell Peclet numbers <= 1, see the module docstring
    "wide r=1 3d": ("gauss3d.toml", ["grid.shape=[7,7,7]", "scheme.name=wide_stencil",
                                     "scheme.stencil_radius=1", "scheme.filtered=false",
                                     "grid.lower=[-1.5,-1.5,-1.5]", "grid.upper=[1.5,1.5,1.5]"]),
    "filtered r=1 2d": ("gauss2d_aniso.toml", ["grid.shape=[11,11]", "scheme.name=wide_stencil",
                                              "scheme.stencil_radius=1", "grid.lower=[-1.5,-1.5]",
                                              "grid.upper=[1.5,1.5]"]),
    "periodic fd2": ("torus2d.toml", ["grid.shape=[8,8]"]),
}


@pytest.mark.parametrize("name", sorted(JACOBIAN_CASES))
def test_jacobian_matches_central_differences(name):
    case_file, sets = JACOBIAN_CASES[name]
    op = FlowOperator(load_case(CASES / case_file, sets))
    rng = np.random.default_rng(7)
    u = op.initial_state(0.0)
    # a convex perturbation of the start, so every second difference stays well above delta
    u = u + 0.02 * rng.normal(size=u.shape) * op.grid.spacing[0] ** 2
    op.boundary.fill(u, 0.0)
    op.evaluate(u)
    active = op.active.copy()
    J = op.jacobian(u).toarray()
    values = op.unknown_values(u)
    eps = 1e-6
    numeric = np.empty_like(J)
    for j in range(values.size):
        cols = []
        for sign in (1.0, -1.0):
            trial = values.copy()
            trial[j] += sign * eps
            v = u.copy()
            op.set_unknowns(v, trial)
            op.boundary.fill(v, 0.0)
            op.evaluate(v)
            # a switch of active frame makes F non-differentiable there; the analytic
            # Jacobian is the active frame's, so such columns are compared one-sidedly
            cols.append((op.unknown_values(op.out).copy(), np.array_equal(op.active, active)))
        (fp, same_p), (fm, same_m) = cols
        numeric[:, j] = (fp - fm) / (2 * eps)
        assert same_p and same_m, f"{name}: frame switch under a 1e-6 perturbation (a tie)"
    scale = np.max(np.abs(J))
    assert np.max(np.abs(J - numeric)) <= 1e-6 * scale, name


def _run(tmp_path, case_file, sets, label):
    case = load_case(CASES / case_file, sets)
    out = tmp_path / label
    result = Runner(case, out, quiet=True).run(force=True)
    assert result.status == "steady", (label, result.reason)
    with h5py.File(out / "run.h5", "r") as f:
        return {"map": f["fields/map"][-1], "map_l2": float(f["errors/map_l2"][-1]),
                "diag": {k: f[f"diagnostics/{k}"][()] for k in f["diagnostics"]}}


def test_explicit_implicit_and_steady_reach_the_same_discrete_solution(tmp_path):
    # 1D Gaussian -> bimodal mixture: non-quadratic, so the discrete solution differs from
    # the exact map by O(h^2) and "same solution" is a real statement
    sets = ["grid.shape=[33]", "time.t_end=1e5", "time.steady_tol=1e-9", "output.every_time=1e5"]
    runs = {st: _run(tmp_path, "mixture1d.toml", sets + [f"time.stepper={st}"], st)
            for st in ("explicit", "implicit", "steady")}
    reference = runs["steady"]
    assert reference["map_l2"] > 1e-3           # the discretisation error is visible
    for st in ("explicit", "implicit"):
        # same map error to within 1% and the same nodal map to well below the error itself
        assert abs(runs[st]["map_l2"] - reference["map_l2"]) <= 0.01 * reference["map_l2"], st
        assert np.max(np.abs(runs[st]["map"] - reference["map"])) <= 1e-3 * reference["map_l2"], st
    # and in far fewer steps: Newton versus the explicit stability bound
    assert len(runs["steady"]["diag"]["step"]) < len(runs["explicit"]["diag"]["step"]) / 100


def test_iterative_linear_solver_matches_direct_and_reports_iterations(tmp_path):
    sets = ["grid.shape=[9,9,9]", "time.stepper=steady", "output.every_time=1e5"]
    direct = _run(tmp_path, "gauss3d.toml", sets, "direct")
    iterative = _run(tmp_path, "gauss3d.toml", sets + ["time.linear_solver=iterative"], "iterative")
    assert np.max(np.abs(direct["map"] - iterative["map"])) < 1e-7
    assert direct["map_l2"] < 1e-6 and iterative["map_l2"] < 1e-6   # fd2 is exact on quadratics
    its = iterative["diag"]["linear_iterations"]
    assert its.max() > 1                         # Krylov iterations, not one direct solve
    assert np.all(iterative["diag"]["linear_time_s"] >= 0)


@pytest.mark.parametrize("schedule, power", [("inverse_sqrt", 0.5), ("inverse", 1.0), ("constant", 0.0)])
def test_schedules_drive_the_implicit_steps_and_regret_is_the_kl_sum(tmp_path, schedule, power):
    eta0 = 2.0
    case = load_case(CASES / "mixture1d.toml", ["grid.shape=[33]", "time.stepper=implicit", f"time.dt={eta0}",
                                                f"time.schedule={schedule!r}".replace("'", '"'),
                                                "time.t_end=100.0", "time.max_steps=12",
                                                "output.every_time=100.0", "output.log_every=1",
                                                "time.steady_tol=0.0"])
    out = tmp_path / schedule
    Runner(case, out, quiet=True).run(force=True)
    with h5py.File(out / "run.h5", "r") as f:
        d = {k: f[f"diagnostics/{k}"][()] for k in f["diagnostics"]}
    k = d["step"].astype(int)
    dt = d["dt"][1:]                                   # dt logged at step k is the step k-1 -> k
    expected = eta0 / (k[1:]) ** power                 # eta_{k-1} = eta0 / k^power
    if schedule == "constant":
        assert np.all(dt <= eta0 * (1 + 1e-12))
    else:
        assert np.allclose(dt, expected, rtol=1e-12), (dt, expected)
    # regret_k = sum_{j<k} dt_j (KL_j - KL_final), from the logged KL values
    kl, time = d["kl"], d["time"]
    steps = np.diff(time)
    manual = np.concatenate([[0.0], np.cumsum(steps * (kl[:-1] - kl[-1]))])
    assert np.allclose(d["regret"], manual, rtol=1e-9, atol=1e-12)
    assert np.all(np.isfinite(d["newton_iterations"]))
