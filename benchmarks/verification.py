"""fd2 verification table (issue 2): exactness on Gaussians, observed orders, transient error.

Usage:  python benchmarks/verification.py

1. Gaussian -> Gaussian (1D, 2D rotated, 3D full covariance), the bundled cases as they are
   (explicit stepper to steady state): map error at steady state.
2. Observed map-error orders of the steady discrete solution for the non-quadratic cases
   (1D Gaussian -> bimodal mixture, 2D separable product of mixtures: steady Newton; 2D
   torus manufactured solution: explicit flow to steady state).
3. Transient error against the exact Gaussian flow (matrix Riccati) at t = 1, with h and dt
   refined together (explicit stepper, dt = cfl * stability bound ~ h^2).
"""
from __future__ import annotations

import math
import sys
import tempfile
from pathlib import Path

import h5py

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pma_solver.case import load_case  # noqa: E402
from pma_solver.runner import Runner  # noqa: E402


def run(case_file, sets, work, label):
    case = load_case(ROOT / "cases" / case_file, sets)
    result = Runner(case, work / label, quiet=True).run(force=True)
    f = h5py.File(work / label / "run.h5", "r", locking=False)
    return result, f


def main():
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        print("## 1. fd2 is exact on quadratics: Gaussian -> Gaussian at steady state\n")
        print("| case | grid | stepper | status | steps | wall (s) | residual max | map error max | map error L2 |")
        print("|---|---|---|---|---|---|---|---|---|")
        for case_file in ("gauss1d.toml", "gauss2d_aniso.toml", "gauss3d.toml"):
            result, f = run(case_file, [], work, case_file)
            with f:
                shape = "x".join(str(int(n)) for n in f["grid"].attrs["shape"])
                print(f"| {case_file[:-5]} | {shape} | explicit | {result.status} | {f.attrs['n_steps']} | "
                      f"{f.attrs['wall_time_s']:.1f} | {f['diagnostics/residual_max'][-1]:.1e} | "
                      f"{f['errors/map_linf'][-1]:.1e} | {f['errors/map_l2'][-1]:.1e} |", flush=True)
        print("\n## 2. Observed map-error order, non-quadratic solutions (fd2)\n")
        studies = [("mixture1d.toml", ["time.stepper=steady"], [33, 65, 129, 257], 1),
                   ("product2d.toml", ["time.stepper=steady"], [17, 33, 65, 129], 2),
                   ("torus2d.toml", [], [16, 32, 64], 2)]
        print("| case | stepper | grids | map L2 errors | observed orders |")
        print("|---|---|---|---|---|")
        for case_file, sets, shapes, dim in studies:
            errs, hs = [], []
            for n in shapes:
                result, f = run(case_file, sets + ["grid.shape=[" + ",".join([str(n)] * dim) + "]"],
                                work, f"{case_file}-{n}")
                with f:
                    errs.append(float(f["errors/map_l2"][-1]))
                    hs.append(float(max(f["grid"].attrs["spacing"])))
            orders = [math.log(a / b) / math.log(ha / hb) for a, b, ha, hb in zip(errs, errs[1:], hs, hs[1:])]
            stepper = "steady" if sets else "explicit"
            print(f"| {case_file[:-5]} | {stepper} | {', '.join(map(str, shapes))} | "
                  f"{', '.join(f'{e:.2e}' for e in errs)} | {', '.join(f'{o:.2f}' for o in orders)} |", flush=True)
        print("\n## 3. Transient error vs the exact Riccati flow at t = 1 (2D rotated Gaussian, explicit)\n")
        print("| grid | h | steps to t=1 | last dt | map error max at t=1 | map error L2 at t=1 |")
        print("|---|---|---|---|---|---|")
        for n in (17, 33, 65):
            result, f = run("gauss2d_aniso.toml", [f"grid.shape=[{n},{n}]", "time.t_end=1.0",
                                                   "output.every_time=1.0", "time.steady_tol=0"], work, f"tr{n}")
            with f:
                print(f"| {n}^2 | {6 / (n - 1):.4f} | {f.attrs['n_steps']} | {f['scales/dt'][-1]:.2e} | "
                      f"{f['errors/map_linf'][-1]:.2e} | {f['errors/map_l2'][-1]:.2e} |", flush=True)


if __name__ == "__main__":
    main()
