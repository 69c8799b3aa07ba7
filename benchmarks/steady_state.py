"""Time to steady state: explicit vs implicit vs steady (issue 5), cost growth, POT peer.

Usage:  python benchmarks/steady_state.py [--quick] [--explicit-budget SECONDS] [--out FILE.md]

Every figure is measured in this process, on the bundled case `cases/gauss2d_aniso.toml`
(2D N(0,I) onto a rotated anisotropic Gaussian, Dirichlet data from the exact flow) and on
`cases/gauss3d.toml`, at the shapes listed below. An explicit run that would exceed the
time budget is stopped and its time to steady state is *extrapolated*: the physical time
T_ss at which the explicit flow reaches the tolerance is measured by full explicit runs on
coarse grids (printed; it does not depend on h), and the budgeted run measures how much
physical time the explicit stepper advances per wall second on the grid in question (marked
"extrapolated"); every other time is a full run.
Compile time is excluded (kernels are compiled by a warm-up run first) and reported.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pma_solver.case import load_case  # noqa: E402
from pma_solver.runner import Runner  # noqa: E402

TOL = 1e-8


def run(case_file, sets, workdir, label):
    case = load_case(ROOT / "cases" / case_file, sets + [f"time.steady_tol={TOL}", "output.every_time=1e9"])
    out = Path(workdir) / label
    result = Runner(case, out, quiet=True).run(force=True)
    with h5py.File(out / "run.h5", "r", locking=False) as f:
        d = f["diagnostics"]
        info = {"status": result.status, "steps": int(f.attrs["n_steps"]), "wall": float(f.attrs["wall_time_s"]),
                "compile": float(f.attrs["compile_time_s"]), "t": float(f.attrs["t_final"]),
                "map_l2": float(f["errors/map_l2"][-1]), "map_linf": float(f["errors/map_linf"][-1]),
                "residual": float(d["residual_max"][-1]),
                "res_hist": (d["wall_time_s"][()], d["residual_max"][()]), "time_hist": d["time"][()],
                "linear_iterations": float(d["linear_iterations"][-1]) if "linear_iterations" in d else 0.0}
    return info


def shape_set(n, dim):
    return "grid.shape=[" + ",".join([str(n)] * dim) + "]"


def steady_physical_time(case_file, dim, shapes, workdir):
    """Physical time T_ss at which the explicit flow first has residual max < TOL, from full
    explicit runs on coarse grids (T_ss is a property of the flow's slow mode, not of h)."""
    rows = []
    for n in shapes:
        info = run(case_file, [shape_set(n, dim), "time.stepper=explicit", "time.t_end=100000",
                               "time.max_steps=100000000"], workdir, f"tss{dim}-{n}")
        assert info["status"] == "steady", info["status"]
        rows.append({"n": n, "t": info["t"], "wall": info["wall"], "steps": info["steps"]})
    return rows


def explicit_time(case_file, sets, workdir, label, budget, t_ss):
    """Explicit wall time to steady state: a full run when it fits in `budget` seconds; else
    a `budget`-second run measures the advance rate (physical time per wall second over its
    second half, where dt has settled) and the time is its wall time plus the remaining
    physical time up to T_ss at that rate (marked "extrapolated")."""
    case = load_case(ROOT / "cases" / case_file, sets)
    probe = run(case_file, sets + ["time.stepper=explicit", "time.t_end=100000", "output.log_every=50",
                                   f"time.max_steps={int(budget_steps(case, budget))}"], workdir, label)
    if probe["status"] == "steady":
        return probe, False
    wall, tim = probe["res_hist"][0], probe["time_hist"]
    half = len(wall) // 2
    rate = (tim[-1] - tim[half]) / max(wall[-1] - wall[half], 1e-9)
    probe["wall"] = wall[-1] + max(t_ss - tim[-1], 0.0) / rate
    probe["steps_estimate"] = probe["steps"] * t_ss / tim[-1]
    return probe, True


def budget_steps(case, budget):
    # ~calibrated below: nodes updates per second of the explicit step on this machine
    return max(2000, budget * RATE[0] / case.grid.size)


RATE = [3e7]


def calibrate():
    case = load_case(ROOT / "cases" / "gauss2d_aniso.toml", ["grid.shape=[129,129]", "time.t_end=1e9",
                                                              "time.max_steps=400", "output.every_time=1e9"])
    with tempfile.TemporaryDirectory() as d:
        r = Runner(case, Path(d) / "c", quiet=True).run(force=True)
        with h5py.File(Path(d) / "c" / "run.h5", "r") as f:
            RATE[0] = 400 * case.grid.size / float(f.attrs["wall_time_s"])


def sinkhorn_peer(n, eps_list, workdir):
    """POT log-domain Sinkhorn: p on the run's n^2 grid, q on an n^2 grid over the target's
    +-4 sigma box (on the run's box the target, sigma = 1.5 along x0, would be cut at 2 sigma
    and the discrete OT map would be another map), entropic map by barycentric projection,
    error at the run's interior nodes against the exact Brenier map."""
    try:
        import ot
    except ImportError:
        return []
    case = load_case(ROOT / "cases" / "gauss2d_aniso.toml", [f"grid.shape=[{n},{n}]"])
    x = case.grid.points().reshape(-1, 2)
    mean, cov = np.asarray(case.target.mean), np.asarray(case.target.cov)
    half = 4.0 * np.sqrt(np.diag(cov))
    axes = [np.linspace(mean[k] - half[k], mean[k] + half[k], n) for k in range(2)]
    y = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 2)
    a = np.exp(case.source.log_density(x)); a /= a.sum()
    b = np.exp(case.target.log_density(y)); b /= b.sum()
    interior = case.grid.interior_mask().ravel()
    exact = case.exact.map(x)
    M = ot.dist(x, y)
    rows = []
    for eps in eps_list:
        t0 = time.perf_counter()
        P, log = ot.bregman.sinkhorn_log(a, b, M, reg=eps, numItermax=5000, stopThr=1e-9, log=True)
        T = (P @ y) / a[:, None]
        wall = time.perf_counter() - t0
        err = np.linalg.norm(T - exact, axis=1)[interior]
        w = a[interior] / a[interior].sum()
        rows.append({"eps": eps, "wall": wall, "map_l2p": float(np.sqrt(np.sum(w * err ** 2))),
                     "map_linf": float(err.max()), "iterations": int(log.get("niter", -1)),
                     "marginal_error": float(log["err"][-1]) if log.get("err") else float("nan")})
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small shapes only (smoke test)")
    ap.add_argument("--explicit-budget", type=float, default=120.0, help="seconds per explicit run before extrapolating")
    ap.add_argument("--out", help="also write the Markdown tables to this file")
    args = ap.parse_args()
    lines = []

    def emit(s=""):
        print(s, flush=True)
        lines.append(s)

    with tempfile.TemporaryDirectory() as work:
        # warm-up: compile every kernel once (reported separately)
        t0 = time.perf_counter()
        for st in ("explicit", "implicit", "steady"):
            run("gauss2d_aniso.toml", ["grid.shape=[17,17]", f"time.stepper={st}", "time.t_end=1", "time.max_steps=5"],
                work, f"warm-{st}")
        emit(f"compile + warm-up: {time.perf_counter() - t0:.1f} s (excluded below)")
        calibrate()
        emit(f"explicit fd2 step throughput (129^2): {RATE[0] / 1e6:.1f} M node-updates/s")
        emit()
        shapes2 = [33, 65] if args.quick else [129, 257]
        shapes3 = [17] if args.quick else [33, 65]
        t_ss = {}
        emit(f"## Physical time T_ss for the explicit flow to reach residual max < {TOL:g} (full explicit runs)")
        emit()
        emit("| case | grid | T_ss | explicit steps | wall (s) |")
        emit("|---|---|---|---|---|")
        for case_file, dim, coarse in (("gauss2d_aniso.toml", 2, [33, 49]), ("gauss3d.toml", 3, [13, 17])):
            rows = steady_physical_time(case_file, dim, coarse, work)
            for r in rows:
                emit(f"| {case_file.split('.')[0]} | {r['n']}^{dim} | {r['t']:.1f} | {r['steps']} | {r['wall']:.1f} |")
            t_ss[case_file] = rows[-1]["t"]       # the finer grid's value is used below
        emit()
        emit(f"## Time to steady state (residual max < {TOL:g}), fd2, wall seconds")
        emit()
        emit("| case | grid | explicit | implicit | steady | explicit/steady | steady Newton its | map error L2 (explicit / implicit / steady) |")
        emit("|---|---|---|---|---|---|---|---|")
        for case_file, shapes, dim in (("gauss2d_aniso.toml", shapes2, 2), ("gauss3d.toml", shapes3, 3)):
            for n in shapes:
                sets = [shape_set(n, dim)]
                ex, extrapolated = explicit_time(case_file, sets, work, f"ex{n}", args.explicit_budget, t_ss[case_file])
                im = run(case_file, sets + ["time.stepper=implicit", "time.t_end=100000"], work, f"im{n}")
                stv = run(case_file, sets + ["time.stepper=steady"], work, f"st{n}")
                mark = f" (extrapolated, ~{ex['steps_estimate']:.2g} steps)" if extrapolated else ""
                exerr = "n/a" if extrapolated else f"{ex['map_l2']:.2e}"
                emit(f"| {case_file.split('.')[0]} | {n}^{dim} | {ex['wall']:.1f}{mark} | {im['wall']:.2f} | {stv['wall']:.2f} | "
                     f"{ex['wall'] / stv['wall']:.0f}x | {stv['steps']} | {exerr} / {im['map_l2']:.2e} / {stv['map_l2']:.2e} |")
        emit()
        n3 = 17 if args.quick else 33
        emit(f"## Linear solver in 3D: steady solver on gauss3d {n3}^3 (`auto` picks AMG-GMRES in 3D)")
        emit()
        emit("| linear solver | wall (s) | Newton its | linear iterations (last logged) | map error L2 |")
        emit("|---|---|---|---|---|")
        for ls in ("direct", "iterative"):
            r = run("gauss3d.toml", [shape_set(n3, 3), "time.stepper=steady", f"time.linear_solver={ls}"], work, f"ls-{ls}")
            emit(f"| {ls} | {r['wall']:.2f} | {r['steps']} | {r['linear_iterations']:.0f} | {r['map_l2']:.2e} |")
        emit()
        emit("## Same discrete solution: map error L2 of explicit, implicit and steady (same scheme, same grid)")
        emit()
        emit("Cases whose discrete solution differs visibly from the exact map, so that agreement is a real test.")
        emit()
        emit("| case | scheme | grid | explicit | implicit | steady | max relative difference |")
        emit("|---|---|---|---|---|---|---|")
        for case_file, scheme, n, dim in (("mixture1d.toml", [], 65, 1),
                                          ("gauss2d_aniso.toml", ["scheme.name=wide_stencil", "scheme.stencil_radius=2",
                                                                  "scheme.filtered=false"], 33, 2)):
            sets = [shape_set(n, dim), "time.t_end=100000"] + scheme
            errs = [run(case_file, sets + [f"time.stepper={st}"], work, f"same-{dim}-{st}")["map_l2"]
                    for st in ("explicit", "implicit", "steady")]
            spread = (max(errs) - min(errs)) / errs[-1]
            label = "monotone wide r=2" if scheme else "fd2"
            emit(f"| {case_file.split('.')[0]} | {label} | {n}^{dim} | " + " | ".join(f"{e:.6e}" for e in errs)
                 + f" | {spread:.1e} |")
        emit()
        emit("## Cost growth of the steady solver (2D aniso, fd2)")
        emit()
        emit("| grid | nodes | direct LU (s) | Newton its | AMG-GMRES (s) | Newton its |")
        emit("|---|---|---|---|---|---|")
        sizes, t_direct, t_amg = [], [], []
        for n in ([33, 65, 129] if args.quick else [65, 129, 257, 513]):
            sets = [f"grid.shape=[{n},{n}]", "time.stepper=steady"]
            d = run("gauss2d_aniso.toml", sets, work, f"cd{n}")
            a = run("gauss2d_aniso.toml", sets + ["time.linear_solver=iterative"], work, f"ca{n}")
            sizes.append(n * n)
            t_direct.append(d["wall"])
            t_amg.append(a["wall"])
            emit(f"| {n}^2 | {n * n} | {d['wall']:.2f} | {d['steps']} | {a['wall']:.2f} | {a['steps']} |")
        for label, times in (("direct LU", t_direct), ("AMG-GMRES", t_amg)):
            slope = np.polyfit(np.log(sizes), np.log(times), 1)[0]
            emit(f"\nfitted exponent (time ~ nodes^p), {label}: p = {slope:.2f}")
        emit()
        # POT's log-domain Sinkhorn is dense (N^2 memory and work per iteration): 33^2 keeps it
        # to minutes (numerics.md measured 0.5-0.7 s per iteration at 64^2)
        peers = sinkhorn_peer(33, [0.3, 0.1, 0.03], work)
        if peers:
            n = 33
            stv = run("gauss2d_aniso.toml", [f"grid.shape=[{n},{n}]", "time.stepper=steady"], work, "peer")
            emit(f"## Peer: POT log-domain Sinkhorn on the same {n}^2 grid (entropic map by barycentric projection)")
            emit()
            emit("| method | wall (s) | map error L2(p), interior | max | iterations | marginal error |")
            emit("|---|---|---|---|---|---|")
            emit(f"| pma_solver steady (fd2) | {stv['wall']:.2f} | {stv['map_l2']:.2e} (L2 box) | {stv['map_linf']:.2e} "
                 f"| {stv['steps']} Newton | residual {stv['residual']:.1e} |")
            for r in peers:
                emit(f"| POT sinkhorn_log eps={r['eps']} | {r['wall']:.2f} | {r['map_l2p']:.2e} | {r['map_linf']:.2e} "
                     f"| {r['iterations']} | {r['marginal_error']:.1e} |")
        else:
            emit("POT not installed (pip install -e '.[bench]'): peer comparison skipped")
    if args.out:
        Path(args.out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
