"""Sampling a target through the PMA map vs unadjusted Langevin vs POT's entropic map (issue 8).

    python benchmarks/sampling_vs_langevin.py [--cases gauss2d_aniso,mixture1d_sep,mixture2d_sep]
                                              [-n 100000] [--seed 0] [--out runs/bench]
    python benchmarks/sampling_vs_langevin.py --normalization

For each bundled case: run it (PMA baseline: solve + sampling wall time), push n exact
source samples through the computed map, and compare with

* ULA, x <- x + eta grad log q(x) + sqrt(2 eta) xi, n chains started from the same source
  samples, given the same number of target evaluations as the PMA solve (one evaluation =
  log q and its gradient at one point, which is what the flow computes per node and step:
  steps x unknown nodes), i.e. K = evaluations / n steps per chain;
* POT's Sinkhorn (if `pot` is installed): entropic plan between p on the run's grid (or a
  sub-grid of at most --sinkhorn-nodes nodes) and q on a grid of the same shape over the
  target's +-4 sigma box, barycentric projection T(x_i) = sum_j P_ij y_j / a_i, pushed
  through the same multilinear interpolant as the PMA map.

Metrics against n exact target samples A: per-mode mass error (component posterior argmax),
energy distance (mean over blocks of 10^4, with the expected floor 2 E|Y - Y'| / 10^4 of two
independent exact sets), wall time; ratios are against the PMA row of the same case.

--normalization runs torus_bimodal2d and torus_bimodal2d_unnormalized (q times 7.3,
normalized = false) and prints the largest difference of their maps on the grid and of
samples pushed with the same seed.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pma_solver import load_map  # noqa: E402
from pma_solver.case import load_case  # noqa: E402
from pma_solver.runner import Runner  # noqa: E402
from pma_solver.sampling import (ENERGY_BLOCK, interpolate, mixture_components,  # noqa: E402
                                 mode_masses, pair_distance_sum)


def run_case(name: str, out: Path) -> tuple[Path, float]:
    case = load_case(ROOT / "cases" / f"{name}.toml")
    t0 = time.perf_counter()
    result = Runner(case, out / name, quiet=True).run(force=True)
    if result.exit_code:
        raise SystemExit(f"{name}: run failed: {result.stop_reason}")
    return result.run_file, time.perf_counter() - t0


class BlockEnergy:
    """Energy distances to fixed exact samples A, over disjoint blocks (A's self-sums cached)."""

    def __init__(self, exact_a: np.ndarray, block: int = ENERGY_BLOCK):
        self.block = block
        self.blocks = [np.ascontiguousarray(exact_a[s:s + block])
                       for s in range(0, len(exact_a) - block + 1, block)]
        self.self_sums = [pair_distance_sum(a, a.T.copy()) for a in self.blocks]

    def __call__(self, samples: np.ndarray) -> float:
        values = []
        for k, (a, s_aa) in enumerate(zip(self.blocks, self.self_sums)):
            x = np.ascontiguousarray(samples[k * self.block:(k + 1) * self.block])
            values.append((2 * pair_distance_sum(x, a.T.copy()) - pair_distance_sum(x, x.T.copy()) - s_aa)
                          / self.block ** 2)
        return float(np.mean(values))

    def floor(self) -> float:
        b = self.block
        return float(np.mean([2.0 * s / (b * (b - 1)) / b for s in self.self_sums]))


def grad_log_mixture(y: np.ndarray, weights, means, covs) -> np.ndarray:
    """grad log sum_k w_k N(y; m_k, C_k) = sum_k r_k(y) C_k^{-1} (m_k - y), r the posteriors."""
    logs, drifts = [], []
    for w, m, c in zip(weights, means, covs):
        prec = np.linalg.inv(c)
        z = y - m
        logs.append(math.log(w) - 0.5 * np.einsum("ni,ij,nj->n", z, prec, z) - 0.5 * np.linalg.slogdet(c)[1])
        drifts.append(-z @ prec)
    logs = np.stack(logs)
    r = np.exp(logs - logs.max(axis=0))
    r /= r.sum(axis=0)
    return np.einsum("kn,kni->ni", r, np.stack(drifts))


def ula(x0: np.ndarray, comps, steps: int, eta: float, rng) -> np.ndarray:
    x = x0.copy()
    for _ in range(steps):
        x += eta * grad_log_mixture(x, *comps) + math.sqrt(2 * eta) * rng.standard_normal(x.shape)
    return x


def sinkhorn_map(bmap, comps, max_nodes: int, reg: float):
    """Barycentric projection of POT's entropic plan, as a field (dim, *shape) on a sub-grid of
    the run's grid (every `stride`-th node), and that sub-grid's spacing."""
    import ot
    dim = bmap.dim
    stride = max(1, math.ceil((np.prod(bmap.shape) / max_nodes) ** (1.0 / dim)))
    axes = [np.asarray(bmap.case.grid.axis(k))[::stride] for k in range(dim)]
    shape = tuple(len(a) for a in axes)
    X = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, dim)
    weights, means, covs = comps
    sig = np.sqrt(np.array([np.diag(c) for c in covs]))
    lo, hi = (means - 4 * sig).min(axis=0), (means + 4 * sig).max(axis=0)
    Y = np.stack(np.meshgrid(*[np.linspace(lo[k], hi[k], shape[k]) for k in range(dim)], indexing="ij"),
                 axis=-1).reshape(-1, dim)
    a = bmap.case.source.density(X)
    b = bmap.case.target.density(Y)
    a, b = a / a.sum(), b / b.sum()
    plan = ot.sinkhorn(a, b, ot.dist(X, Y) / 2.0, reg, numItermax=20000, stopThr=1e-8)
    T = (plan @ Y) / plan.sum(axis=1, keepdims=True)
    field = np.moveaxis(T.reshape(shape + (dim,)), -1, 0)
    return field, np.asarray(bmap.spacing) * stride


def compare(name: str, args, out: Path) -> list[dict]:
    run_file, solve_s = run_case(name, out)
    bmap = load_map(run_file)
    comps = mixture_components(bmap.case.target)
    if comps is None:
        raise SystemExit(f"{name}: the benchmark needs a Gaussian or Gaussian-mixture target")
    rng_src, rng_exact, rng_ula = (np.random.default_rng(s) for s in np.random.SeedSequence(args.seed).spawn(3))
    t0 = time.perf_counter()
    x, y = bmap.sample(rng_src, args.n)
    pma_s = solve_s + time.perf_counter() - t0
    exact = bmap.target_samples(rng_exact, args.n)
    energy = BlockEnergy(exact)
    floor = energy.floor()

    def row(method, samples, wall, evals, note=""):
        masses = mode_masses(samples, *comps)
        return {"case": name, "method": method, "mode_error": float(np.max(np.abs(masses - comps[0])))
                if len(comps[0]) > 1 else float("nan"), "energy": energy(samples), "floor": floor,
                "wall": wall, "evals": evals, "note": note}

    steps = bmap.step
    unknown = int(np.prod([n - 2 for n in bmap.shape]))
    evals = steps * unknown
    rows = [row("PMA", y, pma_s, evals, f"{'x'.join(map(str, bmap.shape))} grid, {steps} steps")]

    k = max(1, evals // args.n)
    eta = args.ula_eta * float(min(np.linalg.eigvalsh(c).min() for c in comps[2]))
    t0 = time.perf_counter()
    z = ula(x, comps, k, eta, rng_ula)
    rows.append(row("ULA", z, time.perf_counter() - t0, k * args.n, f"{k} steps, eta {eta:.3g}"))

    try:
        import ot  # noqa: F401
    except ImportError:
        print(f"{name}: POT not installed (pip install pot): no Sinkhorn row", file=sys.stderr)
    else:
        t0 = time.perf_counter()
        field, spacing = sinkhorn_map(bmap, comps, args.sinkhorn_nodes, args.sinkhorn_reg)
        ys = interpolate(field, bmap.lower, spacing, x)[0]
        shape = field.shape[1:]
        rows.append(row("Sinkhorn", ys, time.perf_counter() - t0, int(np.prod(shape)),
                        f"{'x'.join(map(str, shape))} grid, reg {args.sinkhorn_reg:g}"))
    return rows


def table(rows: list[dict]) -> str:
    head = ("| case | method | mode-mass error | x PMA | energy distance | / floor | x PMA | wall s | x PMA "
            "| target evals | settings |")
    lines = [head, "|" + "---|" * 11]
    base = {}
    for r in rows:
        if r["method"] == "PMA":
            base = r

        def ratio(key):
            return f"{r[key] / base[key]:.3g}" if base[key] > 0 and not math.isnan(r[key]) else "-"
        mode = "-" if math.isnan(r["mode_error"]) else f"{r['mode_error']:.4f}"
        lines.append(f"| {r['case']} | {r['method']} | {mode} | {ratio('mode_error') if mode != '-' else '-'} "
                     f"| {r['energy']:.2e} | {r['energy'] / r['floor']:.2f} | {ratio('energy')} "
                     f"| {r['wall']:.1f} | {ratio('wall')} | {r['evals']:.2e} | {r['note']} |")
    return "\n".join(lines)


def normalization(args, out: Path) -> None:
    runs = [run_case(name, out)[0] for name in ("torus_bimodal2d", "torus_bimodal2d_unnormalized")]
    maps = [load_map(r) for r in runs]
    grid_diff = float(np.max(np.abs(maps[0].node_map - maps[1].node_map)))
    pushed = [m.sample(np.random.default_rng(args.seed), args.n)[1] for m in maps]
    sample_diff = float(np.max(np.abs(pushed[0] - pushed[1])))
    print(f"torus_bimodal2d vs torus_bimodal2d_unnormalized (q x 7.3, normalized = false), "
          f"t = {maps[0].time:g} and {maps[1].time:g}:")
    print(f"  max |map difference| on the {'x'.join(map(str, maps[0].shape))} grid: {grid_diff:.3e}")
    print(f"  max |sample difference| over {args.n} samples (seed {args.seed}): {sample_diff:.3e}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cases", default="gauss2d_aniso,mixture1d_sep,mixture2d_sep")
    p.add_argument("-n", type=int, default=100_000, help="samples per method")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(ROOT / "runs" / "bench"), help="folder for the runs")
    p.add_argument("--ula-eta", type=float, default=0.1,
                   help="ULA step as a fraction of the smallest component variance")
    p.add_argument("--sinkhorn-nodes", type=int, default=2500, help="largest Sinkhorn grid (nodes)")
    p.add_argument("--sinkhorn-reg", type=float, default=0.02, help="entropic parameter (cost |x-y|^2/2)")
    p.add_argument("--normalization", action="store_true",
                   help="compare the normalised and unnormalised torus cases instead")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.normalization:
        normalization(args, out)
        return 0
    rows = []
    for name in args.cases.split(","):
        rows += compare(name.strip(), args, out)
    print(f"n = {args.n} samples per method, seed {args.seed}; energy distance: mean over blocks of "
          f"{ENERGY_BLOCK}, floor = expected value for two independent exact sets; ULA gets the PMA "
          "solve's number of target evaluations")
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
