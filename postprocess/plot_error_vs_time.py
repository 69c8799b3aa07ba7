#!/usr/bin/env python3
"""Errors and diagnostics against time for one or more runs, on one figure.

Top row: errors/ (map L2 and u L2, one point per snapshot); bottom row: diagnostics
(residual max and map error in L2(p), one point per log row). Log y axes. Reads only run
files (h5py, numpy, matplotlib).

    python postprocess/plot_error_vs_time.py runs/a runs/b -o errors.png --labels fd2,wide
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import h5py
import matplotlib

matplotlib.use("Agg")   # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

# (group, time dataset, dataset, axis label): the four panels, row by row.
PANELS = (("errors", "scales/time", "map_l2", "map error L2"),
          ("errors", "scales/time", "u_l2", "u error L2 (modulo mean)"),
          ("diagnostics", "diagnostics/time", "residual_max", "residual max"),
          ("diagnostics", "diagnostics/time", "map_error_l2p", "map error L2(p)"))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path, help="run directories or run.h5 files")
    ap.add_argument("-o", "--output", type=Path, required=True, help="figure (.png, .pdf, .svg)")
    ap.add_argument("--labels", help="comma-separated legend labels, one per run (default: run folder)")
    args = ap.parse_args(argv)

    paths = [r / "run.h5" if r.is_dir() else r for r in args.runs]
    for p in paths:
        if not p.is_file():
            raise SystemExit(f"no run file at {p}")
    labels = args.labels.split(",") if args.labels else [p.parent.name for p in paths]
    if len(labels) != len(paths):
        ap.error(f"--labels has {len(labels)} entries for {len(paths)} runs")

    fig, axes = plt.subplots(2, 2, figsize=(10.0, 7.0), layout="constrained")
    for path, label in zip(paths, labels):
        with h5py.File(path, "r", locking=False) as f:
            for ax, (group, tname, name, _) in zip(axes.ravel(), PANELS):
                key = f"{group}/{name}"
                if key in f and f[key].shape[0]:
                    v = f[key][()]
                    ax.semilogy(f[tname][()][: len(v)], np.where(v > 0, v, np.nan), ".-", label=label)
    for ax, (_, _, _, ylabel) in zip(axes.ravel(), PANELS):
        ax.set_xlabel("time t")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3, which="both")
        if ax.lines:
            ax.legend(fontsize="small")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.output, dpi=120)
    print(args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
