"""Time steppers, chosen by name (`[time] stepper`).

`explicit`: forward Euler u_{k+1} = u_k + dt_k F(u_k). dt_k = min(cfl / a_max, eta_k, time to
the next output), with a_max the largest centre coefficient of the discrete operator at
u_k (the step is monotone for dt <= 1/a_max) and eta_k the mirror-descent schedule
eta0 * {1, 1/sqrt(k+1), 1/(k+1)}.

`implicit`: backward Euler (u_{k+1} - u_k)/dt = F(u_{k+1}) solved by damped Newton; dt grows
(x2) while Newton converges in few iterations and is halved on failure or loss of
convexity. Monotone for every dt (newton.py), so dt is limited by accuracy only.

`steady`: pseudo-transient continuation towards F(u) = 0: one damped Newton step of
backward Euler per iteration, with the pseudo step grown by the residual ratio
(switched evolution relaxation) until it is infinite, i.e. Newton on the steady equation
with the flow as globalisation. Its time axis is pseudo-time.
"""
from __future__ import annotations

import math
import time as _time

from .errors import NumericalFailure
from .newton import NewtonSolver
from .registry import Registry

REGISTRY = Registry("name")
register = REGISTRY.register


def schedule_step(kind: str, eta0: float | None, k: int) -> float:
    if eta0 is None:
        return math.inf
    if kind == "inverse_sqrt":
        return eta0 / math.sqrt(k + 1)
    if kind == "inverse":
        return eta0 / (k + 1)
    return eta0


class Stepper:
    name = "abstract"

    def __init__(self, case, operator):
        self.case = case
        self.op = operator
        self.time = case.time

    def dt_bound(self, k: int) -> float:
        """Largest step allowed now (before the output-time cap)."""
        raise NotImplementedError

    pseudo_time = False     # steady: no output-time capping, no t_end stop
    info_keys: tuple = ()

    def advance(self, new, old, t: float, dt: float) -> tuple[float, dict]:
        """Write the state at t + dt_taken into `new`; returns (dt_taken, solver statistics)."""
        raise NotImplementedError


@register("explicit")
class ExplicitEuler(Stepper):
    def dt_bound(self, k):
        return min(self.time.cfl * self.op.max_stable_dt(),
                   schedule_step(self.time.schedule, self.time.dt, k))

    def advance(self, new, old, t, dt):
        self.op.euler_step(new, old, dt)
        return dt, {}


class _NewtonStepper(Stepper):
    info_keys = ("newton_iterations", "linear_iterations", "linear_time_s", "newton_time_s")

    def __init__(self, case, operator):
        super().__init__(case, operator)
        opts = self.time
        self.newton = NewtonSolver(operator, tol=opts.newton_tol, max_iter=opts.max_newton,
                                   linear_solver=opts.linear_solver)

    def _info(self, result, elapsed):
        return {"newton_iterations": result.iterations, "linear_iterations": result.linear_iterations,
                "linear_time_s": result.linear_time, "newton_time_s": elapsed}


@register("implicit")
class BackwardEuler(_NewtonStepper):
    GROW, SHRINK, FAST = 2.0, 0.5, 5
    RTOL = 1e-6          # Newton residual reduction per step (relative to the step's start)

    def __init__(self, case, operator):
        super().__init__(case, operator)
        self.dt = None

    def dt_bound(self, k):
        if self.dt is None:   # start from the explicit bound, or eta0 when given
            self.dt = self.time.dt if self.time.dt is not None else 10.0 * self.op.max_stable_dt()
        return min(self.dt, schedule_step(self.time.schedule, self.time.dt, k))

    def advance(self, new, old, t, dt):
        t0 = _time.perf_counter()
        while True:
            result = self.newton.step(new, old, t + dt, dt, rtol=self.RTOL)
            if result.converged:
                if result.iterations <= self.FAST and self.time.schedule == "constant":
                    self.dt = max(self.dt, dt) * self.GROW
                return dt, self._info(result, _time.perf_counter() - t0)
            dt *= self.SHRINK
            self.dt = dt
            if dt < 1e-14 * max(1.0, t):
                reason = result.reason or "no convergence within max_newton iterations"
                raise NumericalFailure(f"backward Euler failed at t = {t:.6g}: {reason}",
                                       "try a finer grid, a larger [scheme] delta, or the explicit stepper")


@register("steady")
class PseudoTransient(_NewtonStepper):
    pseudo_time = True
    MAX_GROWTH = 10.0

    def __init__(self, case, operator):
        super().__init__(case, operator)
        self.dt = None
        self.last_residual = None

    INITIAL_STEP = 1e3

    def dt_bound(self, k):
        # A large first pseudo-step is close to plain Newton. Small steps follow the flow,
        # which from a poor start can drift into the boundary-layer regime where it loses
        # the Dirichlet condition (README, lessons learnt).
        if self.dt is None:
            self.dt = self.time.dt if self.time.dt is not None else self.INITIAL_STEP
        return self.dt

    def advance(self, new, old, t, dt):
        t0 = _time.perf_counter()
        while True:
            step_dt = math.inf if dt > 1e12 else dt
            result = self.newton.step(new, old, math.inf, step_dt, max_iter=1, pseudo_time=True)
            if not result.failed:
                break
            dt *= 0.25
            if dt < 1e-14:
                raise NumericalFailure(f"pseudo-transient Newton stalled: {result.reason}",
                                       "try the implicit stepper or a larger [scheme] delta")
        # Switched evolution relaxation: grow the pseudo step as the residual falls.
        residual = result.residual
        if self.last_residual is not None and residual > 0:
            ratio = min(self.MAX_GROWTH, max(0.5, self.last_residual / residual))
            self.dt = dt * ratio
        else:
            self.dt = dt * 2.0
        self.last_residual = residual
        return dt, self._info(result, _time.perf_counter() - t0)


def make_stepper(case, operator) -> Stepper:
    return REGISTRY[case.time.stepper](case, operator)
