"""Convergence studies: run one case on several grids, read the error norms from each run file,
and report observed orders (successive levels) and a least-squares slope.

Levels are run in-process, one run directory per level; a level is reused when its run file
is complete (status completed or steady) and stores the same resolved case. Errors are taken
at the final snapshot or at the snapshot whose time equals `at`; a run that became steady
before `at` is represented by its final (steady) snapshot.
"""
from __future__ import annotations

import csv
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import h5py
import numpy as np

from . import __version__
from .errors import CaseError, NumericalFailure

NORMS = ("map_l2", "map_linf", "u_l2", "u_linf")   # table and plot order (map first)
NORM_LABELS = {"map_l2": "map L2", "map_linf": "map max", "u_l2": "u L2", "u_linf": "u max"}
COMPLETE = ("completed", "steady")
TIME_TOL = 1e-9
OUTPUT_NAMES = ("convergence.json", "convergence.csv", "convergence.md", "convergence.png")


# -- pure numerics -----------------------------------------------------------------
def _usable(e) -> bool:
    return e is not None and math.isfinite(e) and e > 0


def observed_orders(h: list[float], e: list[float | None]) -> list[float | None]:
    """log(e_prev/e_k)/log(h_prev/h_k) against the previous usable level; None where undefined."""
    orders: list[float | None] = []
    prev = None
    for hk, ek in zip(h, e):
        if not _usable(ek):
            orders.append(None)
            continue
        orders.append(None if prev is None or prev[0] == hk else
                      math.log(prev[1] / ek) / math.log(prev[0] / hk))
        prev = (hk, ek)
    return orders


def lsq_slope(h: list[float], e: list[float | None]) -> float | None:
    """Least-squares slope of log e against log h over the usable levels (None if fewer than 2)."""
    pts = [(math.log(hk), math.log(ek)) for hk, ek in zip(h, e) if _usable(ek)]
    if len({x for x, _ in pts}) < 2:
        return None
    x, y = np.array(pts).T
    return float(np.polyfit(x, y, 1)[0])


# -- input parsing ---------------------------------------------------------------------
def parse_shapes(text: str, dim: int) -> list[tuple[int, ...]]:
    """'17,33' or '9x17,17x33' -> shapes; n alone means n nodes on every axis."""
    shapes = []
    for entry in (s.strip() for s in text.split(",")):
        parts = entry.lower().split("x")
        if not entry or not all(p.strip().isdigit() for p in parts) or len(parts) not in (1, dim):
            raise CaseError(f"--shapes: bad entry {entry!r}; expected n or "
                            f"{'x'.join(f'n{k}' for k in range(dim))} for this {dim}D case")
        shape = tuple(int(p) for p in parts) * (dim if len(parts) == 1 else 1)
        if min(shape) < 3:
            raise CaseError(f"--shapes: {entry!r} has fewer than 3 nodes on an axis")
        shapes.append(shape)
    if len(shapes) < 2 or len(set(shapes)) != len(shapes):
        raise CaseError(f"--shapes {text!r}: need at least two distinct levels")
    return shapes


def parse_at(text: str) -> float | None:
    """'final' -> None, else a time."""
    if text == "final":
        return None
    try:
        t = float(text)
    except ValueError:
        raise CaseError(f"--at: expected 'final' or a time, got {text!r}") from None
    if not math.isfinite(t) or t < 0:
        raise CaseError(f"--at: expected a non-negative time, got {text!r}")
    return t


def check_output_time(case, at: float | None) -> None:
    """An --at time must be a snapshot time: a multiple of [output] every_time, or t_end."""
    if at is None:
        return
    every, t_end = case.output.every_time, case.time.t_end
    on_grid = abs(round(at / every) * every - at) <= TIME_TOL * max(1.0, at)
    if at > t_end * (1 + TIME_TOL) or not (on_grid or abs(at - t_end) <= TIME_TOL * max(1.0, at)):
        raise CaseError(f"--at {at:g}: not a snapshot time (multiples of output.every_time = {every:g} "
                        f"up to time.t_end = {t_end:g})")


# -- one level -------------------------------------------------------------------------
@dataclass
class Level:
    shape: list[int]
    h: float
    run_dir: str
    status: str = ""
    stop_reason: str = ""
    reused: bool = False
    snapshot: int | None = None
    time: float | None = None
    n_steps: int | None = None
    wall_time_s: float | None = None
    errors: dict | None = None
    orders: dict = field(default_factory=dict)

    @property
    def label(self) -> str:
        return "x".join(map(str, self.shape))


def _reusable(run_file: Path, resolved_json: str) -> bool:
    if not run_file.is_file():
        return False
    try:
        with h5py.File(run_file, "r", locking=False) as f:
            return (f.attrs.get("status") in COMPLETE
                    and json.loads(f["case"].attrs["resolved"]) == json.loads(resolved_json))
    except (OSError, KeyError, ValueError):
        return False        # unreadable or foreign file: run the level again


def _pick_snapshot(times: np.ndarray, status: str, at: float | None) -> int | None:
    if at is None:
        return len(times) - 1
    hit = np.flatnonzero(np.abs(times - at) <= TIME_TOL * max(1.0, at))
    if hit.size:
        return int(hit[0])
    if status == "steady" and at > times[-1]:
        return len(times) - 1       # steady before `at`: the state no longer changes
    return None


def read_level(level: Level, run_file: Path, at: float | None) -> None:
    """Fill status, snapshot, time and errors of `level` from its run file."""
    with h5py.File(run_file, "r", locking=False) as f:
        level.status = str(f.attrs["status"])
        level.stop_reason = str(f.attrs["stop_reason"])
        level.n_steps = int(f.attrs["n_steps"])
        level.wall_time_s = float(f.attrs["wall_time_s"])
        if level.status not in COMPLETE:
            return
        if "errors" not in f:
            raise CaseError(f"{run_file}: no errors/ group (the case has no exact solution)")
        times = f["scales/time"][()]
        k = _pick_snapshot(times, level.status, at)
        if k is None:
            level.status = "missing"
            level.stop_reason = f"no snapshot at t = {at:g} (ended at t = {times[-1]:.6g})"
            return
        level.snapshot, level.time = k, float(times[k])
        level.errors = {key: float(f["errors"][key][k]) for key in NORMS}


# -- the study ---------------------------------------------------------------------------
@dataclass
class Study:
    case_file: str
    case_name: str
    scheme: str             # name plus its stencil radius where it has one, e.g. "wide_stencil r=2"
    boundary: str
    overrides: list[str]
    at: float | None
    out_dir: Path
    levels: list[Level] = field(default_factory=list)
    slopes: dict = field(default_factory=dict)

    @property
    def failed(self) -> list[Level]:
        return [lv for lv in self.levels if lv.errors is None]

    def compute_orders(self) -> None:
        h = [lv.h for lv in self.levels]
        for key in NORMS:
            e = [lv.errors[key] if lv.errors else None for lv in self.levels]
            for lv, order in zip(self.levels, observed_orders(h, e)):
                lv.orders[key] = order
            self.slopes[key] = lsq_slope(h, e)

    @property
    def at_text(self) -> str:
        return "the final snapshot" if self.at is None else f"t = {self.at:g}"

    def to_dict(self) -> dict:
        return {"format": "pma_solver.convergence", "pma_solver_version": __version__,
                "case_file": self.case_file, "case_name": self.case_name, "scheme": self.scheme,
                "boundary": self.boundary, "overrides": self.overrides,
                "at": "final" if self.at is None else self.at,
                "h_definition": "largest grid spacing over the axes",
                "levels": [asdict(lv) for lv in self.levels], "slopes": self.slopes}

    def markdown(self) -> str:
        def num(v, fmt):
            return "—" if v is None else format(v, fmt)
        head = ["shape", "h", "t"] + [c for key in NORMS for c in (NORM_LABELS[key], "order")]
        rows = [head, ["---"] * len(head)]
        for lv in self.levels:
            cells = [lv.label, f"{lv.h:.4g}", num(lv.time, ".4g")]
            for key in NORMS:
                cells += [num(lv.errors[key] if lv.errors else None, ".3e"), num(lv.orders.get(key), ".2f")]
            rows.append(cells)
        rows.append(["least-squares slope", "", ""] + [c for key in NORMS
                                                        for c in ("", num(self.slopes.get(key), ".2f"))])
        lines = [f"{self.case_name} ({self.scheme}, {self.boundary}): errors at {self.at_text}", ""]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        lines += [f"\n{lv.label}: {lv.status}: {lv.stop_reason}" for lv in self.failed]
        return "\n".join(lines) + "\n"

    def write(self) -> list[Path]:
        """convergence.json, .csv, .md and .png in out_dir; returns their paths."""
        from .plotting import convergence_figure, save_figure
        self.out_dir.mkdir(parents=True, exist_ok=True)
        paths = [self.out_dir / name for name in OUTPUT_NAMES]
        paths[0].write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        with paths[1].open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["shape", "h", "status", "time"] + [c for k in NORMS for c in (k, f"order_{k}")])
            for lv in self.levels:
                w.writerow([lv.label, repr(lv.h), lv.status, "" if lv.time is None else repr(lv.time)]
                           + [("" if v is None else repr(v)) for k in NORMS
                              for v in ((lv.errors or {}).get(k), lv.orders.get(k))])
        paths[2].write_text(self.markdown())
        save_figure(convergence_figure(self.to_dict()), paths[3])
        return paths


def run_study(case_path: str | Path, shapes_text: str, *, at: float | None = None,
              out_dir: str | Path | None = None, overrides: list[str] | None = None,
              quiet: bool = False, log=print) -> Study:
    """Run (or reuse) every level, collect the errors and compute the orders."""
    from .case import load_case
    from .runner import Runner
    overrides = list(overrides or [])
    base = load_case(case_path, overrides)
    if base.exact is None:
        raise CaseError("the case has no exact solution; a convergence study needs one",
                        file=str(case_path), table="exact")
    check_output_time(base, at)
    cases = [load_case(case_path, overrides + [f"grid.shape={list(s)}"])
             for s in parse_shapes(shapes_text, base.grid.dim)]   # all levels validated before any run
    cases.sort(key=lambda c: -max(c.grid.spacing))                # coarse to fine
    out = Path(out_dir) if out_dir else base.output.dir / "convergence"
    scheme = base.resolved["scheme"]
    label = scheme["name"] + (f" r={scheme['stencil_radius']}" if "stencil_radius" in scheme else "")
    study = Study(str(case_path), base.name, label, base.boundary.kind, overrides, at, out)
    for case in cases:
        level = Level(list(case.grid.shape), max(case.grid.spacing), "")
        run_dir = out / level.label
        level.run_dir = str(run_dir)
        level.reused = _reusable(run_dir / "run.h5", case.resolved_json)
        if not level.reused:
            if not quiet:
                log(f"level {level.label}: running into {run_dir}")
            try:
                result = Runner(case, run_dir, quiet=quiet).run(force=True)
            except NumericalFailure as exc:     # raised before the loop could record it
                level.status, level.stop_reason = "failed", exc.reason
                study.levels.append(level)
                continue
            if result.status == "interrupted":
                raise KeyboardInterrupt
        read_level(level, run_dir / "run.h5", at)
        if not quiet:
            tail = f"map L2 {level.errors['map_l2']:.3e}" if level.errors else level.stop_reason
            log(f"level {level.label}: {level.status}{' (reused)' if level.reused else ''}; {tail}")
        study.levels.append(level)
    study.compute_orders()
    return study
