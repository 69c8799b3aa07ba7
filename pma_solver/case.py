"""Case files: TOML -> validated `Case` (contract: DESIGN.md section 5).

Everything a run needs is built and checked here, in Python, before any compiled code
runs. Errors are `CaseError`s naming file, table and key.
"""
from __future__ import annotations

import json
import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import exact as exact_mod
from .boundary import Boundary, parse_boundary
from .config import Table, _hint
from .densities import Density, parse_density
from .errors import CaseError
from .expression import Expression
from .grid import Grid
from .schemes import Scheme, parse_scheme

SCHEMA_VERSION = 1
TABLES = ("case", "grid", "source", "target", "initial", "boundary", "scheme", "time", "output", "exact")
STEPPERS = ("explicit", "implicit", "steady")
SCHEDULES = ("constant", "inverse_sqrt", "inverse")
FIELDS = ("u", "map", "residual", "active_frame")


@dataclass
class TimeSettings:
    stepper: str
    t_end: float
    dt: float | None            # None = automatic (cfl x stability bound)
    cfl: float
    steady_tol: float
    max_steps: int
    schedule: str
    newton_tol: float = 1e-10
    max_newton: int = 20
    linear_solver: str = "auto"
    options: dict = field(default_factory=dict)


@dataclass
class OutputSettings:
    dir: Path
    every_time: float
    fields: list[str]
    log_every: int
    checkpoint_every: float


@dataclass
class Initial:
    kind: str
    expression: Expression | None = None

    def quadratic(self, dim: int):
        """(A0, b0, c0) when phi0 is the quadratic |x|^2/2, else None."""
        if self.kind == "quadratic":
            return np.eye(dim), np.zeros(dim), 0.0
        return None


@dataclass
class Case:
    path: Path
    text: str
    name: str
    grid: Grid
    source: Density
    target: Density
    initial: Initial
    boundary: Boundary
    scheme: Scheme
    time: TimeSettings
    output: OutputSettings
    exact: exact_mod.ExactSolution | None
    resolved: dict[str, Any]
    overrides: list[str] = field(default_factory=list)

    @property
    def resolved_json(self) -> str:
        return json.dumps(self.resolved, sort_keys=True)


# -- overrides ----------------------------------------------------------------
_BARE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")


def parse_override(text: str) -> tuple[list[str], Any]:
    """`table.key=value` with the value parsed as TOML (bare words become strings)."""
    if "=" not in text:
        raise CaseError(f"--set {text!r}: expected table.key=value")
    path, value_text = text.split("=", 1)
    keys = path.strip().split(".")
    if len(keys) < 2 or not all(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", k) for k in keys):
        raise CaseError(f"--set {text!r}: the left side must be table.key (e.g. time.t_end=4.0)")
    try:
        value = tomllib.loads(f"v = {value_text.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        if _BARE.match(value_text.strip()):
            value = value_text.strip()
        else:
            raise CaseError(f"--set {text!r}: cannot parse {value_text!r} as a TOML value") from None
    return keys, value


def apply_overrides(data: dict, overrides: list[str]) -> None:
    for text in overrides:
        keys, value = parse_override(text)
        node = data
        for k in keys[:-1]:
            if k not in node:
                node[k] = {}
            if not isinstance(node[k], dict):
                raise CaseError(f"--set {text!r}: {k!r} is not a table")
            node = node[k]
        node[keys[-1]] = value


# -- loading --------------------------------------------------------------------
def load_case(path: str | Path, overrides: list[str] | None = None) -> Case:
    path = Path(path)
    overrides = list(overrides or [])
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CaseError("case file not found", file=str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CaseError(f"cannot read case file: {exc}", file=str(path)) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CaseError(f"invalid TOML: {exc}", file=str(path)) from None
    try:
        apply_overrides(data, overrides)
        case = build_case(data, path, text)
    except CaseError as exc:
        raise exc.located(str(path)) from None
    case.overrides = overrides
    return case


def _table(data: dict, name: str, required: bool = True) -> Table:
    if name not in data:
        if required:
            raise CaseError("missing table", table=name)
        return Table({}, name)
    return Table(data[name], name)


def build_case(data: dict, path: Path, text: str) -> Case:
    unknown = [k for k in data if k not in TABLES and k != "schema_version"]
    if unknown:
        k = unknown[0]
        raise CaseError(f"unknown top-level table or key{_hint(k, TABLES)}", table=k)
    version = data.get("schema_version")
    if version is None:
        raise CaseError("missing `schema_version = 1` at the top of the file", key="schema_version")
    if type(version) is not int or version != SCHEMA_VERSION:     # not true, not 1.0
        raise CaseError(f"unsupported schema_version {version!r}; this version reads 1",
                        key="schema_version")
    base = path.parent
    resolved: dict[str, Any] = {"schema_version": SCHEMA_VERSION}

    t = _table(data, "case", required=False)
    name = t.string("name", path.stem)
    t.string("description", "")
    if t.has("tags"):
        tags = t.raw("tags")
        if not isinstance(tags, list) or not all(isinstance(s, str) for s in tags):
            raise t.error("tags", "expected an array of strings")
        t.keep("tags", tags)
    resolved["case"] = t.done()

    boundary_t = _table(data, "boundary", required=False)
    grid_t = _table(data, "grid")
    shape = grid_t.int_vector("shape")
    dim = len(shape)
    if dim not in (1, 2, 3):
        raise grid_t.error("shape", f"1, 2 or 3 axes are supported, got {dim}")
    if any(n < 3 for n in shape):
        raise grid_t.error("shape", f"every axis needs at least 3 nodes, got {shape}")
    if math.prod(shape) > 200_000_000:      # Python ints: np.prod wraps around in int64
        raise grid_t.error("shape", f"{shape} has more than 2e8 nodes")
    lower = grid_t.vector("lower", dim)
    upper = grid_t.vector("upper", dim)
    if np.any(upper <= lower):
        k = int(np.argmax(upper <= lower))
        raise grid_t.error("upper", f"upper[{k}] = {upper[k]} must exceed lower[{k}] = {lower[k]}")
    boundary_kind = boundary_t.data.get("kind", "dirichlet_exact")
    grid = Grid(lower, upper, shape, periodic=boundary_kind == "periodic")
    resolved["grid"] = grid_t.done()

    densities = {}
    for role in ("source", "target"):
        t = _table(data, role)
        densities[role] = parse_density(t, dim, base)
        resolved[role] = t.resolved
    source, target = densities["source"], densities["target"]

    boundary = parse_boundary(boundary_t, grid, target)
    resolved["boundary"] = boundary_t.resolved

    t = _table(data, "initial", required=False)
    kind = t.string("kind", "quadratic", choices=("quadratic", "harmonic", "exact", "expression"))
    initial = Initial(kind, Expression(t.string("potential"), dim, table="initial", key="potential")
                      if kind == "expression" else None)
    resolved["initial"] = t.done()

    t = _table(data, "exact", required=False)
    exact = _parse_exact(t, source, target, initial, dim, boundary.domains)
    resolved["exact"] = t.done()

    for role, density in (("source", source), ("target", target)):
        if not density.normalized and not boundary.allows_unnormalized:
            raise CaseError(f"normalized = false is only allowed with transport or periodic boundaries "
                            f"(with {boundary.kind} a constant factor changes the steady state)",
                            table=role, key="normalized")
    if boundary.needs_exact and exact is None:
        raise CaseError(f"{boundary.kind} needs a closed-form solution, but none is known for this "
                        "source/target pair; give [exact] kind = \"expression\" or another boundary",
                        table="boundary", key="kind")
    if initial.kind == "exact" and exact is None:
        raise CaseError("initial kind \"exact\" needs a closed-form solution", table="initial", key="kind")

    t = _table(data, "scheme", required=False)
    scheme = parse_scheme(t, grid)
    resolved["scheme"] = t.resolved

    time = _parse_time(_table(data, "time"))
    resolved["time"] = dict(time.options)

    t = _table(data, "output", required=False)
    out_dir = Path(t.string("dir", f"runs/{name}"))
    if not out_dir.is_absolute():
        out_dir = base / out_dir
    every = t.number("every_time", time.t_end / 20 if math.isfinite(time.t_end) else 1.0, positive=True)
    if math.isfinite(time.t_end) and time.t_end / every > 1e6:
        raise t.error("every_time", f"{every:g} would write more than a million snapshots up to "
                                    f"t_end = {time.t_end:g}")
    fields = t.raw("fields", ["u", "map"])
    if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
        raise t.error("fields", "expected an array of field names")
    for f in fields:
        if f not in FIELDS:
            raise t.error("fields", f"unknown field {f!r}{_hint(f, FIELDS)}; allowed: {', '.join(FIELDS)}")
    if "u" not in fields:
        fields = ["u"] + fields
    t.keep("fields", fields)
    output = OutputSettings(out_dir, every, fields, t.integer("log_every", 10, low=1),
                            t.number("checkpoint_every", 60.0, positive=True))
    resolved["output"] = t.done()

    return Case(path=path, text=text, name=name, grid=grid, source=source, target=target,
                initial=initial, boundary=boundary, scheme=scheme, time=time, output=output,
                exact=exact, resolved=resolved)


def _parse_exact(t: Table, source, target, initial: Initial, dim: int, domains=None):
    kind = t.string("kind", "auto", choices=("auto", "none", "expression"))
    if kind == "none":
        return None
    if kind == "expression":
        potential = Expression(t.string("potential"), dim, table="exact", key="potential")
        maps = t.raw("map")
        if not isinstance(maps, list) or len(maps) != dim or not all(isinstance(m, str) for m in maps):
            raise t.error("map", f"expected {dim} expression strings (one per map component)")
        t.keep("map", maps)
        return exact_mod.ExpressionSolution(potential, [Expression(m, dim, table="exact", key="map")
                                                        for m in maps])
    try:
        return exact_mod.automatic(source, target, initial.quadratic(dim), domains)
    except np.linalg.LinAlgError as exc:
        # e.g. variances so far apart that the exact Gaussian flow overflows in double precision
        raise t.error("kind", f"the closed-form solution for this source/target pair cannot be computed "
                              f"({exc}); give [exact] kind = \"none\" and a boundary that needs none, "
                              "or densities of comparable spread") from None


def _parse_time(t: Table) -> TimeSettings:
    stepper = t.string("stepper", "explicit", choices=STEPPERS)
    if stepper == "steady" and not t.has("t_end"):
        t_end = math.inf            # the steady solver runs in pseudo-time
    else:
        t_end = t.number("t_end", positive=True)
    dt_raw = t.raw("dt", "auto")
    if dt_raw == "auto":
        dt = None
        t.keep("dt", "auto")
    else:
        dt = t.number("dt", positive=True)
    cfl = t.number("cfl", 0.5, positive=True)
    if cfl > 1.0:
        raise t.error("cfl", f"must be at most 1 (the monotonicity bound), got {cfl}")
    steady_tol = t.number("steady_tol", 1e-8, nonnegative=True)
    max_steps = t.integer("max_steps", 2000 if stepper == "steady" else 10_000_000, low=1)
    schedule = t.string("schedule", "constant", choices=SCHEDULES)
    if schedule != "constant" and dt is None:
        raise t.error("schedule", f"schedule {schedule!r} needs a numeric dt (the initial step eta0)")
    newton_tol = t.number("newton_tol", min(1e-10, steady_tol) if steady_tol > 0 else 1e-10, positive=True)
    max_newton = t.integer("max_newton", 20, low=1)
    from .newton import LINEAR_SOLVERS
    linear_solver = t.string("linear_solver", "auto", choices=LINEAR_SOLVERS)
    options = t.done()
    return TimeSettings(stepper, t_end, dt, cfl, steady_tol, max_steps, schedule, newton_tol,
                        max_newton, linear_solver, options)
