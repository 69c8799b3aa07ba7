"""Explicit-step throughput: grid nodes updated per second, fd2 and wide stencil, 1D/2D/3D.

Usage:  python benchmarks/throughput.py [--repeat N]

One "node update" is one evaluation of F at an unknown node plus its Euler update (the two
compiled passes of an explicit step). Compile time is measured separately on first use.
The yardstick is a plain NumPy copy of the same padded arrays (u, F, log p: the memory
traffic of a step) timed in the same process; ratios are step time / copy time.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numba
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pma_solver.case import load_case  # noqa: E402
from pma_solver.operator import FlowOperator  # noqa: E402

CONFIGS = [  # (label, case, overrides)
    ("1D fd2, 4097 nodes", "gauss1d.toml", ["grid.shape=[4097]"]),
    ("2D fd2, 513^2", "gauss2d_aniso.toml", ["grid.shape=[513,513]"]),
    ("2D wide r=1, 513^2", "gauss2d_aniso.toml", ["grid.shape=[513,513]", "scheme.name=wide_stencil", "scheme.stencil_radius=1"]),
    ("2D wide r=2, 513^2", "gauss2d_aniso.toml", ["grid.shape=[513,513]", "scheme.name=wide_stencil", "scheme.stencil_radius=2"]),
    ("3D fd2, 65^3", "gauss3d.toml", ["grid.shape=[65,65,65]"]),
    ("3D wide r=1, 65^3", "gauss3d.toml", ["grid.shape=[65,65,65]", "scheme.name=wide_stencil"]),
]


def best_of(fn, repeat):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    all_threads = numba.get_num_threads()
    print(f"numba {numba.__version__}, threading layer default, {all_threads} threads available\n")
    print("| configuration | compile+first call (s) | M node-updates/s, 1 thread | all threads | "
          "per core (all) | step / NumPy copy |")
    print("|---|---|---|---|---|---|")
    for label, case_file, sets in CONFIGS:
        case = load_case(ROOT / "cases" / case_file, sets)
        op = FlowOperator(case)
        u = op.initial_state()
        new = np.empty_like(u)
        t0 = time.perf_counter()
        op.evaluate(u, diag=False)
        op.euler_step(new, u, 1e-6)
        first = time.perf_counter() - t0

        def step():                     # a non-logging explicit step, as the runner takes it
            op.evaluate(u, diag=False)
            op.euler_step(new, u, 1e-6)

        rates = {}
        for threads in (1, all_threads):
            numba.set_num_threads(threads)
            step()                      # compile the variant used at this thread count
            rates[threads] = op.n_unknowns / best_of(step, args.repeat)
        numba.set_num_threads(all_threads)
        arrays = [u, op.out, op.logp]
        copies = [np.empty_like(a) for a in arrays]

        def copy():
            for a, b in zip(arrays, copies):
                np.copyto(b, a)

        ratio = (op.n_unknowns / rates[all_threads]) / best_of(copy, args.repeat)
        print(f"| {label} | {first:.2f} | {rates[1] / 1e6:.1f} | {rates[all_threads] / 1e6:.1f} | "
              f"{rates[all_threads] / all_threads / 1e6:.1f} | {ratio:.1f} |", flush=True)


if __name__ == "__main__":
    main()
