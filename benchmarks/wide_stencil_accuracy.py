"""Accuracy of the monotone wide stencil against fd2 (issue 3).

Usage:  python benchmarks/wide_stencil_accuracy.py [--shapes 33,65,129]

Table 1: map error (L2 over the box and max, interior nodes) of the steady discrete solution
for the rotated anisotropic Gaussian (cases/gauss2d_aniso.toml, Dirichlet data from the exact
map), fd2 vs wide_stencil r = 1, 2, 3 vs the filtered wide stencil, with observed orders.
Table 2: the degenerate case cases/gauss_to_disk.toml (Gaussian onto a uniform disk) for both
schemes from the exact start and from |x|^2/2, with the implicit and steady steppers.
Every run is a full solve (steady Newton unless stated); nothing is extrapolated.
"""
from __future__ import annotations

import argparse
import math
import sys
import tempfile
from pathlib import Path

import h5py
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pma_solver.case import build_case  # noqa: E402
from pma_solver.errors import CaseError  # noqa: E402
from pma_solver.runner import Runner  # noqa: E402

SCHEMES = [("fd2", {"name": "fd2"}),
           ("monotone r=1", {"name": "wide_stencil", "stencil_radius": 1, "filtered": False}),
           ("monotone r=2", {"name": "wide_stencil", "stencil_radius": 2, "filtered": False}),
           ("monotone r=3", {"name": "wide_stencil", "stencil_radius": 3, "filtered": False}),
           ("filtered r=1", {"name": "wide_stencil", "stencil_radius": 1}),
           ("filtered r=2 (default)", {"name": "wide_stencil", "stencil_radius": 2})]


def consistency_floor(case_file: str, scheme: dict, n: int) -> float:
    """max |F_h(u*)| over the unknowns at the exact potential: the scheme's consistency error."""
    import tomllib
    from pma_solver.operator import FlowOperator
    path = ROOT / "cases" / case_file
    data = tomllib.loads(path.read_text())
    data["scheme"] = dict(scheme)
    data["grid"]["shape"] = [n, n]
    data.setdefault("initial", {})["kind"] = "exact"
    op = FlowOperator(build_case(data, path, path.read_text()))
    u = op.initial_state()
    op.evaluate(u)
    return float(np.max(np.abs(op.residual_field())))


def solve(case_file: str, scheme: dict, overrides: dict, work: Path, label: str) -> dict:
    import tomllib
    path = ROOT / "cases" / case_file
    data = tomllib.loads(path.read_text())
    data["scheme"] = dict(scheme)
    for table, values in overrides.items():
        data.setdefault(table, {}).update(values)
    data.setdefault("output", {})["every_time"] = 1e9
    case = build_case(data, path, path.read_text())
    result = Runner(case, work / label, quiet=True).run(force=True)
    with h5py.File(work / label / "run.h5", "r", locking=False) as f:
        margin = float(np.min(f["diagnostics/convexity_margin"][()]))
        return {"status": result.status, "reason": result.stop_reason, "steps": int(f.attrs["n_steps"]),
                "wall": float(f.attrs["wall_time_s"]), "l2": float(f["errors/map_l2"][-1]),
                "max": float(f["errors/map_linf"][-1]), "margin": margin,
                "finite": bool(np.all(np.isfinite(f["fields/u"][-1])))}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shapes", default="33,65,129")
    args = ap.parse_args()
    shapes = [int(s) for s in args.shapes.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for case_file, title in (("gauss2d_aniso.toml", "Rotated anisotropic Gaussian (quadratic potential)"),
                                 ("product2d.toml", "Separable product of bimodal mixtures (non-quadratic)")):
            print(f"## {title}: map error of the steady discrete solution\n")
            print("| scheme | " + " | ".join(f"{n}^2 L2 / max" for n in shapes)
                  + f" | order (L2) | consistency floor max abs F(u*) at {shapes[-1]}^2 |")
            print("|---|" + "---|" * len(shapes) + "---|---|")
            for label, scheme in SCHEMES:
                errs = []
                for n in shapes:
                    r = solve(case_file, scheme, {"grid": {"shape": [n, n]},
                                                  "time": {"stepper": "steady", "steady_tol": 1e-9}},
                              work, f"{case_file}-{label}-{n}".replace(" ", "_").replace("=", ""))
                    errs.append(r)
                orders = [math.log(a["l2"] / b["l2"]) / math.log(2) if a["l2"] > 0 and b["l2"] > 0 else float("nan")
                          for a, b in zip(errs, errs[1:])]
                cells = [f"{e['l2']:.2e} / {e['max']:.2e}" for e in errs]
                floor = consistency_floor(case_file, scheme, shapes[-1])
                print(f"| {label} | " + " | ".join(cells) + " | " + ", ".join(f"{o:.2f}" for o in orders)
                      + f" | {floor:.2e} |", flush=True)
            print()
        print("\n## Degenerate Hessian: N(0, I) onto the uniform unit disk, 65^2\n")
        print("| scheme | start | stepper | status | steps | wall (s) | map L2 / max | min convexity margin |")
        print("|---|---|---|---|---|---|---|---|")
        for label, scheme in (SCHEMES[0], SCHEMES[2], SCHEMES[5]):
            for start in ("exact", "quadratic"):
                for stepper in ("implicit", "steady"):
                    over = {"initial": {"kind": start}, "time": {"stepper": stepper, "t_end": 200.0, "max_steps": 2000}}
                    if label == "fd2":
                        over["scheme"] = {}
                    try:
                        r = solve("gauss_to_disk.toml", scheme, over, work, f"disk-{label}-{start}-{stepper}".replace(" ", "_").replace("=", ""))
                    except CaseError as exc:
                        print(f"| {label} | {start} | {stepper} | input error: {exc} | | | | |")
                        continue
                    status = r["status"] if r["status"] != "failed" else f"failed: {r['reason']}"
                    print(f"| {label} | {start} | {stepper} | {status} | {r['steps']} | {r['wall']:.1f} | "
                          f"{r['l2']:.2e} / {r['max']:.2e} | {r['margin']:.2e} |", flush=True)


if __name__ == "__main__":
    main()
