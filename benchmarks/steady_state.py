"""Time to steady state: explicit vs implicit vs steady (issue 5), cost growth, POT peer.

Usage:  python benchmarks/steady_state.py [--quick] [--explicit-budget SECONDS] [--out FILE.md]

Every figure is measured in this process, on the bundled case `cases/gauss2d_aniso.toml`
(2D N(0,I) onto a rotated anisotropic Gaussian, Dirichlet data from the exact flow) and on
`cases/gauss3d.toml`, at the shapes listed below. An explicit run that would exceed the
time budget is stopped and its time to steady state is *extrapolated* from its measured
residual decay rate (marked "extrapolated"); every other time is a full run.
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
                "res_hist": (d["wall_time_s"][()], d["residual_max"][()])}
    return info


def explicit_time(case_file, sets, workdir, label, budget):
    """Explicit to steady state, or stopped at `budget` s and extrapolated (log-linear decay)."""
    case = load_case(ROOT / "cases" / case_file, sets)
    steps_guess = 10_000_000
    info = run(case_file, sets + ["time.stepper=explicit", "time.t_end=100000", f"time.max_steps={steps_guess}",
                                  f"output.checkpoint_every={budget}"], workdir, label) if budget is None else None
    if info is not None:
        return info, False
    # budgeted run: measure steps/s and the residual decay rate over the second half
    probe = run(case_file, sets + ["time.stepper=explicit", "time.t_end=100000", "output.log_every=50",
                                   f"time.max_steps={int(budget_steps(case, budget))}"], workdir, label)
    if probe["status"] == "steady":
        return probe, False
    wall, res = probe["res_hist"]
    half = len(res) // 2
    rate = (math.log(res[half]) - math.log(res[-1])) / max(wall[-1] - wall[half], 1e-9)
    if rate <= 0:
        probe["wall"] = math.inf
        return probe, True
    probe["wall"] = wall[-1] + (math.log(res[-1]) - math.log(TOL)) / rate
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
    """POT log-domain Sinkhorn between the gridded source and target, barycentric map."""
    try:
        import ot
    except ImportError:
        return []
    case = load_case(ROOT / "cases" / "gauss2d_aniso.toml", [f"grid.shape=[{n},{n}]"])
    x = case.grid.points().reshape(-1, 2)
    a = np.exp(case.source.log_density(x)); a /= a.sum()
    b = np.exp(case.target.log_density(x)); b /= b.sum()
    interior = case.grid.interior_mask().ravel()
    exact = case.exact.map(x)
    M = ot.dist(x, x)
    rows = []
    for eps in eps_list:
        t0 = time.perf_counter()
        P = ot.bregman.sinkhorn_log(a, b, M, reg=eps, numItermax=5000, stopThr=1e-9)
        T = (P @ x) / a[:, None]
        wall = time.perf_counter() - t0
        err = np.linalg.norm(T - exact, axis=1)[interior]
        w = a[interior] / a[interior].sum()
        rows.append({"eps": eps, "wall": wall, "map_l2p": float(np.sqrt(np.sum(w * err ** 2))),
                     "map_linf": float(err.max())})
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
        emit(f"## Time to steady state (residual max < {TOL:g}), fd2, wall seconds")
        emit()
        emit("| case | grid | explicit | implicit | steady | explicit/steady | steady Newton its | map error L2 (explicit / implicit / steady) |")
        emit("|---|---|---|---|---|---|---|---|")
        for case_file, shapes, dim in (("gauss2d_aniso.toml", shapes2, 2), ("gauss3d.toml", shapes3, 3)):
            for n in shapes:
                sets = ["grid.shape=[" + ",".join([str(n)] * dim) + "]"]
                ex, extrapolated = explicit_time(case_file, sets, work, f"ex{n}", args.explicit_budget)
                im = run(case_file, sets + ["time.stepper=implicit", "time.t_end=100000"], work, f"im{n}")
                stv = run(case_file, sets + ["time.stepper=steady"], work, f"st{n}")
                mark = " (extrapolated)" if extrapolated else ""
                exerr = "n/a" if extrapolated else f"{ex['map_l2']:.2e}"
                emit(f"| {case_file.split('.')[0]} | {n}^{dim} | {ex['wall']:.1f}{mark} | {im['wall']:.2f} | {stv['wall']:.2f} | "
                     f"{ex['wall'] / stv['wall']:.0f}x | {stv['steps']} | {exerr} / {im['map_l2']:.2e} / {stv['map_l2']:.2e} |")
        emit()
        emit("## Same discrete solution: explicit vs steady, wide_stencil r=2 (map error L2, 2D aniso)")
        emit()
        n = 33
        sets = [f"grid.shape=[{n},{n}]", "scheme.name=wide_stencil", "scheme.stencil_radius=2"]
        ex = run("gauss2d_aniso.toml", sets + ["time.stepper=explicit", "time.t_end=100000"], work, "wex")
        stv = run("gauss2d_aniso.toml", sets + ["time.stepper=steady"], work, "wst")
        emit(f"| grid | explicit | steady | relative difference |\n|---|---|---|---|\n| {n}^2 | {ex['map_l2']:.6e} | "
             f"{stv['map_l2']:.6e} | {abs(ex['map_l2'] - stv['map_l2']) / stv['map_l2']:.2e} |")
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
        peers = sinkhorn_peer(33, [0.1, 0.03, 0.01], work)
        if peers:
            n = 33
            stv = run("gauss2d_aniso.toml", [f"grid.shape=[{n},{n}]", "time.stepper=steady"], work, "peer")
            emit(f"## Peer: POT log-domain Sinkhorn on the same {n}^2 grid (entropic map by barycentric projection)")
            emit()
            emit("| method | wall (s) | map error L2(p), interior | max |")
            emit("|---|---|---|---|")
            emit(f"| pma_solver steady (fd2) | {stv['wall']:.2f} | {stv['map_l2']:.2e} (L2 box) | {stv['map_linf']:.2e} |")
            for r in peers:
                emit(f"| POT sinkhorn_log eps={r['eps']} | {r['wall']:.2f} | {r['map_l2p']:.2e} | {r['map_linf']:.2e} |")
        else:
            emit("POT not installed (pip install -e '.[bench]'): peer comparison skipped")
    if args.out:
        Path(args.out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
