"""Command line (contract: DESIGN.md section 4). Exit codes: 0 success, 1 numerical
failure, 2 bad input (one line naming file, table and key; never a traceback)."""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from pathlib import Path

import numpy as np

from .errors import CaseError


# Modules that add their own sub-commands: each defines add_commands(subparsers), with
# handlers that raise CaseError for bad input and return an exit code.
COMMAND_MODULES = (".analysis_cli", ".sampling_cli")


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise CaseError(f"{self.prog}: {message}")


def _threads(n: int | None) -> None:
    if n is None:
        return
    import numba
    if n < 1:
        raise CaseError(f"--threads must be at least 1, got {n}")
    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))


@contextlib.contextmanager
def _located(case_file: str):
    """Errors found after loading (the source on the grid, the run directory, the checkpoint)
    that name a table still name the case file."""
    try:
        yield
    except CaseError as exc:
        if exc.table and not exc.file:
            raise exc.located(case_file) from None
        raise


def cmd_run(args) -> int:
    from .case import load_case
    from .runner import Runner
    _threads(args.threads)
    case = load_case(args.case, args.set)
    with _located(args.case):
        result = Runner(case, args.output, quiet=args.quiet).run(resume=args.resume, force=args.force)
    s = result.summary
    if result.status == "failed":
        print(f"pma run: failed: {result.stop_reason}; {result.hint} (last good state saved in "
              f"{result.run_file})", file=sys.stderr)
    elif not args.quiet:
        err = s.get("errors") or {}
        extra = f", map error L2 {err['map_l2']:.3e} max {err['map_linf']:.3e}" if err else ""
        print(f"{result.status}: {s['stop_reason']}; {s['steps']} steps to t = {s['t_final']:.6g} in "
              f"{s['wall_time_s']:.2f} s (+{s['compile_time_s']:.2f} s compile){extra}; wrote {result.run_file}")
    return result.exit_code


def cmd_validate(args) -> int:
    from .case import load_case
    from .operator import FlowOperator
    case = load_case(args.case, args.set)
    with _located(args.case):
        FlowOperator(case)
    print(f"{args.case}: ok ({case.grid.dim}D, {'x'.join(map(str, case.grid.shape))} nodes, "
          f"{case.source.kind} -> {case.target.kind}, {case.scheme.name}, {case.boundary.kind}, "
          f"exact: {case.exact.kind if case.exact else 'none'})")
    return 0


def bundled_cases_dir() -> Path:
    env = os.environ.get("PMA_CASES")
    candidates = [Path(env)] if env else []
    candidates += [Path(__file__).resolve().parent.parent / "cases", Path.cwd() / "cases"]
    for c in candidates:
        if c.is_dir():
            return c
    raise CaseError("no bundled cases folder found (set PMA_CASES)")


def cmd_cases(args) -> int:
    import tomllib
    folder = bundled_cases_dir()
    for path in sorted(folder.glob("*.toml")):
        try:
            data = tomllib.loads(path.read_text())
            desc = data.get("case", {}).get("description", "")
            shape = "x".join(map(str, data.get("grid", {}).get("shape", [])))
        except (tomllib.TOMLDecodeError, OSError):
            desc, shape = "(unreadable)", ""
        print(f"{path.stem:28s} {shape:>12s}  {desc}")
    return 0


def cmd_inspect(args) -> int:
    from .inspection import describe, summarize
    info = summarize(args.run)
    print(json.dumps(info, indent=2) if args.json else describe(info))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="pma", description="Parabolic Monge-Ampere optimal transport solver")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    r = sub.add_parser("run", help="run a case file")
    r.add_argument("case")
    r.add_argument("-o", "--output", help="run directory (default: [output] dir)")
    r.add_argument("--set", action="append", default=[], metavar="TABLE.KEY=VALUE",
                   help="override a case-file value (parsed as TOML)")
    r.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    r.add_argument("--force", action="store_true", help="overwrite an existing run")
    r.add_argument("--threads", type=int, help="numba threads")
    r.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    r.set_defaults(func=cmd_run)

    i = sub.add_parser("inspect", help="summarise a run file")
    i.add_argument("run")
    i.add_argument("--json", action="store_true")
    i.set_defaults(func=cmd_inspect)

    v = sub.add_parser("validate", help="check a case file without running it")
    v.add_argument("case")
    v.add_argument("--set", action="append", default=[], metavar="TABLE.KEY=VALUE")
    v.set_defaults(func=cmd_validate)

    c = sub.add_parser("cases", help="list the bundled cases")
    c.set_defaults(func=cmd_cases)

    for module in COMMAND_MODULES:
        import importlib
        importlib.import_module(module, __package__).add_commands(sub)
    return p


def _printable(text: str) -> str:
    """Escape line breaks and other control characters (a TOML key may hold any): one line."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        # Overflow in diagnostics of a failing run is reported once, in its stop_reason: NumPy's
        # floating-point warnings would bury that one line under source lines.
        with np.errstate(all="ignore"):
            return args.func(args)
    except CaseError as exc:
        print(f"error: {_printable(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
