"""Analysis sub-commands: plot, convergence, xdmf (issue 6)."""
from __future__ import annotations

import sys


def cmd_plot(args) -> int:
    from .plotting import plot_run
    print(plot_run(args.run, args.what, args.step, args.output))
    return 0


def cmd_convergence(args) -> int:
    from .convergence import parse_at, run_study
    study = run_study(args.case, args.shapes, at=parse_at(args.at), out_dir=args.output,
                      overrides=args.set, quiet=args.quiet,
                      log=lambda msg: print(msg, file=sys.stderr))
    paths = study.write()
    print(study.markdown(), end="")
    if not args.quiet:
        print(f"wrote {', '.join(str(p) for p in paths)}", file=sys.stderr)
    # A level that failed numerically is reported in the table; the study as a whole then exits 1.
    return 1 if any(lv.status == "failed" for lv in study.levels) else 0


def cmd_xdmf(args) -> int:
    from .xdmf import write_xdmf
    print(write_xdmf(args.run))
    return 0


def add_commands(sub) -> None:
    """Register `pma plot`, `pma convergence`, `pma xdmf` on the sub-parser collection."""
    p = sub.add_parser("plot", help="plot a run file (potential, map, error, residual, diagnostics)")
    p.add_argument("run", help="run directory or run.h5")
    # Kinds are checked by plotting.PLOTS when the command runs: importing matplotlib here
    # would slow every pma command down.
    p.add_argument("--what", default="potential", metavar="KIND",
                   help="potential (default), map, error, residual or diagnostics")
    p.add_argument("--step", type=int, help="snapshot index (negative counts from the end; default last)")
    p.add_argument("-o", "--output", help="figure file, .png/.pdf/.svg (default: <what>.png next to run.h5)")
    p.set_defaults(func=cmd_plot)

    c = sub.add_parser("convergence", help="run a case on several grids and report observed orders")
    c.add_argument("case")
    c.add_argument("--shapes", required=True, help="levels, e.g. 17,33,65 or 17x9,33x17 (n = every axis)")
    c.add_argument("--at", default="final", help="'final' (default) or a snapshot time")
    c.add_argument("-o", "--output", help="study folder (default: <[output] dir>/convergence)")
    c.add_argument("--set", action="append", default=[], metavar="TABLE.KEY=VALUE",
                   help="override a case-file value for every level (parsed as TOML)")
    c.add_argument("--quiet", action="store_true", help="no progress bars or per-level lines")
    c.set_defaults(func=cmd_convergence)

    x = sub.add_parser("xdmf", help="(re)write the run.xdmf sidecar for ParaView/VisIt (2D/3D runs)")
    x.add_argument("run", help="run directory or run.h5")
    x.set_defaults(func=cmd_xdmf)
