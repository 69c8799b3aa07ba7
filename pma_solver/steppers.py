"""Time steppers, chosen by name (`[time] stepper`).

`explicit`: forward Euler u_{k+1} = u_k + dt_k F(u_k). dt_k = min(cfl / a_max, eta_k, time to
the next output), with a_max the largest centre coefficient of the discrete operator at
u_k (the step is monotone for dt <= 1/a_max) and eta_k the mirror-descent schedule
eta0 * {1, 1/sqrt(k+1), 1/(k+1)}.
"""
from __future__ import annotations

import math

REGISTRY: dict[str, type["Stepper"]] = {}


def register(name: str):
    def deco(cls):
        cls.name = name
        REGISTRY[name] = cls
        return cls
    return deco


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

    def advance(self, new, old, t: float, dt: float) -> dict:
        """Write the state at t + dt into `new`; returns solver statistics for diagnostics."""
        raise NotImplementedError


@register("explicit")
class ExplicitEuler(Stepper):
    def dt_bound(self, k):
        return min(self.time.cfl * self.op.max_stable_dt(),
                   schedule_step(self.time.schedule, self.time.dt, k))

    def advance(self, new, old, t, dt):
        self.op.euler_step(new, old, dt)
        return {}


def make_stepper(case, operator) -> Stepper:
    return REGISTRY[case.time.stepper](case, operator)
