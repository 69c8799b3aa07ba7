#!/usr/bin/env python3
"""Several convergence studies on one log-log figure (e.g. fd2 against wide_stencil r=1, 2).

Reads the convergence.json files written by `pma convergence`; needs only numpy and matplotlib.

    python postprocess/plot_convergence.py A/convergence.json B/convergence.json -o fig.png
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")   # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

NORM_LABELS = {"map_l2": "map L2", "map_linf": "map max", "u_l2": "u L2", "u_linf": "u max"}


def load(path: Path) -> dict:
    data = json.loads(path.read_text())
    if data.get("format") != "pma_solver.convergence":
        raise SystemExit(f"{path}: not a convergence.json written by pma convergence")
    return data


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("studies", nargs="+", type=Path, help="convergence.json files")
    ap.add_argument("-o", "--output", type=Path, required=True, help="figure (.png, .pdf, .svg)")
    ap.add_argument("--norm", default="map_l2", choices=list(NORM_LABELS))
    ap.add_argument("--labels", help="comma-separated legend labels, one per study "
                                     "(default: case and scheme from each file)")
    ap.add_argument("--title")
    args = ap.parse_args(argv)

    studies = [load(p) for p in args.studies]
    labels = args.labels.split(",") if args.labels else [f"{s['case_name']} {s['scheme']}" for s in studies]
    if len(labels) != len(studies):
        ap.error(f"--labels has {len(labels)} entries for {len(studies)} studies")
    fig, ax = plt.subplots(figsize=(6.4, 4.8), layout="constrained")
    all_h, coarse = [], []
    for study, label, marker in zip(studies, labels, "osv^D<>p*"):
        levels = [lv for lv in study["levels"] if lv["errors"]]
        h = np.array([lv["h"] for lv in levels])
        e = np.array([lv["errors"][args.norm] for lv in levels])
        slope = study["slopes"].get(args.norm)
        ax.loglog(h, np.where(e > 0, e, np.nan), marker + "-",
                  label=label + (f" (slope {slope:.2f})" if slope is not None else ""))
        all_h += list(h)
        coarse += [e[np.argmax(h)]] if len(h) else []
    if len(set(all_h)) > 1 and min(coarse, default=0) > 0:
        hh = np.array([min(all_h), max(all_h)])
        anchor = 0.4 * min(coarse)          # below every curve, so the guides hide no data
        for p, ls in ((1, "--"), (2, ":")):
            ax.loglog(hh, anchor * (hh / hh[1]) ** p, "k" + ls, lw=0.9, label=f"slope {p}")
    ax.set_xlabel("grid spacing h (largest over the axes)")
    ax.set_ylabel(f"{NORM_LABELS[args.norm]} error")
    ax.set_title(args.title or ", ".join(sorted({s["case_name"] for s in studies})))
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize="small")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.output, dpi=120)
    print(args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
