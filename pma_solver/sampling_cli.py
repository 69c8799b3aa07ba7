"""Sampling sub-command: pma sample (issue 8)."""
from __future__ import annotations

import datetime as _dt
import secrets
from pathlib import Path

import numpy as np

from .errors import CaseError

SUFFIXES = (".h5", ".hdf5", ".npy")


def add_commands(sub) -> None:
    """Register `pma sample` on the sub-parser collection."""
    s = sub.add_parser("sample", help="push exact source samples through the computed map")
    s.add_argument("run", help="run directory or run.h5")
    s.add_argument("-n", "--n", dest="n", type=int, required=True, help="number of samples")
    s.add_argument("--seed", type=int, help="random seed (default: a fresh one, recorded)")
    s.add_argument("--snapshot", type=int, default=-1,
                   help="snapshot index (default -1: the last; negative counts from the end)")
    s.add_argument("--metric-samples", type=int, default=None, metavar="M",
                   help="samples used by the energy distance, in blocks of 10^4 (default 40000, 0: none)")
    s.add_argument("-o", "--output", required=True, help="FILE.h5 (samples, metrics) or FILE.npy (samples)")
    s.set_defaults(func=cmd_sample)


def cmd_sample(args) -> int:
    from .sampling import METRIC_SAMPLES, load_map, quality_metrics
    if args.n <= 0:
        raise CaseError(f"-n must be a positive number of samples, got {args.n}")
    output = Path(args.output)
    if output.suffix.lower() not in SUFFIXES:
        raise CaseError(f"-o {output}: unsupported suffix {output.suffix!r} (allowed: {', '.join(SUFFIXES)})")
    if not output.parent.is_dir():
        raise CaseError(f"-o {output}: folder {output.parent} does not exist")
    metric_samples = METRIC_SAMPLES if args.metric_samples is None else args.metric_samples
    if metric_samples < 0:
        raise CaseError(f"--metric-samples must be non-negative, got {metric_samples}")
    seed = secrets.randbits(63) if args.seed is None else args.seed
    if seed < 0:
        raise CaseError(f"--seed must be non-negative, got {seed}")

    bmap = load_map(args.run, args.snapshot)
    source_rng, metric_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    x, y = bmap.sample(source_rng, args.n)
    metrics = quality_metrics(bmap, x, y, metric_rng, metric_samples)

    if output.suffix.lower() == ".npy":
        try:
            np.save(output, y)
        except OSError as exc:
            raise CaseError(f"-o {output}: cannot write: {exc}") from None
    else:
        _write_h5(output, bmap, x, y, seed, metrics)
    note = "" if bmap.status in ("completed", "steady") else f" (run status {bmap.status!r})"
    print(f"{args.n} samples through the map of {bmap.run_file} at snapshot {bmap.snapshot} "
          f"(step {bmap.step}, t = {bmap.time:.6g}; {bmap.field_source}){note}; seed {seed}")
    for line in describe(metrics):
        print("  " + line)
    print(f"wrote {output}")
    return 0


def describe(metrics: dict) -> list[str]:
    """One line per metric group, for the terminal."""
    lines = [f"outside the grid box (affine extension of the nearest cell): "
             f"{100 * metrics['outside_fraction']:.3g}%"]
    if "energy_distance" in metrics:
        lines.append(f"energy distance to exact target samples {metrics['energy_distance']:.3e} "
                     f"(two independent exact sets: {metrics['energy_distance_exact']:.3e}, expected "
                     f"{metrics['energy_distance_floor']:.3e}; mean over "
                     f"{metrics['energy_blocks']} blocks of {metrics['energy_block']} samples)")
    if "sliced_w2" in metrics:
        lines.append(f"sliced W2 {metrics['sliced_w2']:.3e} (two exact sets: {metrics['sliced_w2_exact']:.3e})")
    if "target_samples" in metrics:
        lines.append(f"exact target samples {metrics['target_samples']}")
    if "mode_masses" in metrics:
        masses = "/".join(f"{v:.4f}" for v in metrics["mode_masses"])
        weights = "/".join(f"{v:.4g}" for v in metrics["mode_weights"])
        line = f"mode masses {masses} vs weights {weights}: max error {metrics['mode_mass_error']:.4f}"
        if "mode_mass_error_exact" in metrics:
            line += f" (exact samples: {metrics['mode_mass_error_exact']:.4f})"
        lines.append(line)
    kl = []
    if "kl_monte_carlo" in metrics:
        kl.append(f"Monte Carlo E[log p - log det DT - log q(T)] = {metrics['kl_monte_carlo']:.3e}")
    if "kl_diagnostic" in metrics:
        kl.append(f"run diagnostic -int R p = {metrics['kl_diagnostic']:.3e}")
    if metrics["folded_fraction"] > 0:
        kl.append(f"no Monte Carlo estimate: det DT <= 0 at {100 * metrics['folded_fraction']:.3g}% "
                  "of the samples")
    if kl:
        lines.append("KL(T#p | q): " + "; ".join(kl))
    return lines


def _write_h5(output: Path, bmap, x, y, seed: int, metrics: dict) -> None:
    import h5py
    from . import __version__
    try:
        with h5py.File(output, "w") as f:
            f.create_dataset("samples", data=y)
            f.create_dataset("source_samples", data=x)
            f.attrs.update(
                format="pma_solver.samples", format_version=1, pma_solver_version=__version__,
                created_utc=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                run_file=str(bmap.run_file), case_toml=bmap.toml, case_resolved=bmap.resolved,
                seed=seed, n=len(y), snapshot=bmap.snapshot, snapshot_step=bmap.step,
                snapshot_time=bmap.time, run_status=bmap.status, map_from=bmap.field_source,
                interpolation="multilinear",
                extrapolation="affine extension of the nearest cell outside the grid box",
                outside_fraction=metrics["outside_fraction"])
            group = f.create_group("metrics")
            for key, value in metrics.items():
                group.attrs[key] = np.asarray(value) if isinstance(value, np.ndarray) else value
    except OSError as exc:
        raise CaseError(f"-o {output}: cannot write: {exc}") from None
