"""Transport boundary (issue 4): convergence, boundary fidelity, square -> disk, timing.

Usage:  python benchmarks/transport.py [--quick] [--out FILE.md]

Every figure is measured in this process on the bundled `cases/transport_*.toml` with the
steady (Newton) stepper, at the shapes listed per table; `--quick` drops the finest level.
Kernels are compiled by a warm-up run first; "solve s" is the run file's wall_time_s (the
stepping loop), "total s" the whole in-process `Runner.run` (operator set-up, exact
solution, run-file writing) less the compile time. 2 cores, shared machine.

Definitions.
* map L2 / max: the run file's errors/ (interior nodes, L2 = sqrt(sum |e|^2 h^d)).
* numerics.md section 8 metric (parallelogram): nodes at least 10% of the box width from
  dX; L2 = sqrt(sum p |e|^2 / sum p) (density-weighted, normalised), max = max |e|.
* outside Y: max over boundary nodes of the signed distance of grad phi(x_b) to Y, clipped
  at 0 (grad phi on boundary nodes = the run file's `map`).
* square -> disk: Hausdorff distance between the closed polyline grad phi(dX nodes, in
  order) and the unit circle, i.e. max(max_b ||grad phi(x_b)| - 1|, max over 4096 circle
  points of the distance to the polyline); histogram L1 = sum over 32x32 bins on [-1, 1]^2
  of |T#p(bin) - q(bin)|, T#p from 4096^2 cell-centred source points pushed through the
  multilinear interpolant of the map (`load_map`), q(bin) = |bin ∩ disk| / pi by 64^2
  sub-samples per bin. The sampling floor of this estimate falls like 1/4096 (on the
  257^2 bfo2 map it is 7.8e-3, 2.0e-3, 9.2e-4, 4.0e-4 with 512^2 ... 4096^2 points).
* orders: log(e_k-1/e_k)/log(h_k-1/h_k); "slope" = least-squares slope of log e on log h.
"""
from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pma_solver import load_map  # noqa: E402
from pma_solver.case import load_case  # noqa: E402
from pma_solver.runner import Runner  # noqa: E402

WORK = Path(tempfile.mkdtemp(prefix="pma_transport_"))


def run(case: str, n: int | list, method: str | None = None, extra=()):
    shape = [n] if isinstance(n, int) else n
    sets = [f"grid.shape={shape}", "output.log_every=1"] + list(extra)
    if method:
        sets.append(f"boundary.method={method}")
    c = load_case(ROOT / "cases" / f"{case}.toml", sets)
    out = WORK / f"{case}_{method}_{'x'.join(map(str, shape))}"
    t0 = time.perf_counter()
    result = Runner(c, out, quiet=True).run(force=True)
    total = time.perf_counter() - t0
    with h5py.File(out / "run.h5", "r", locking=False) as f:
        info = {"case": c, "dir": out, "status": result.status, "steps": int(f.attrs["n_steps"]),
                "solve": float(f.attrs["wall_time_s"]), "total": total - float(f.attrs["compile_time_s"]),
                "map": f["fields/map"][-1], "drift": float(f["diagnostics/drift"][-1]),
                "h": max(c.grid.spacing)}
        if "errors" in f:
            info.update({k: float(f[f"errors/{k}"][-1]) for k in ("map_l2", "map_linf", "u_linf")})
    if result.status != "steady":
        raise SystemExit(f"{case} {method} {shape}: {result.status} ({result.stop_reason})")
    return info


def boundary_mask(shape):
    m = np.zeros(shape, dtype=bool)
    for k in range(len(shape)):
        for end in (0, -1):
            idx = [slice(None)] * len(shape)
            idx[k] = end
            m[tuple(idx)] = True
    return m


def outside_y(info):
    Y = info["case"].boundary.Y
    b = np.moveaxis(info["map"], 0, -1)[boundary_mask(info["map"].shape[1:])]
    return max(0.0, float(np.max(Y.signed_distance(b))))


def orders(h, e):
    h, e = np.asarray(h), np.asarray(e)
    steps = [math.log(e[k - 1] / e[k]) / math.log(h[k - 1] / h[k]) for k in range(1, len(e))]
    return steps, float(np.polyfit(np.log(h), np.log(e), 1)[0])


def fmt_orders(values, errors=None):
    if errors is not None and max(errors) < 1e-10:
        return ["—"] + ["round-off"] * len(values)      # no discretisation error to measure
    return ["—"] + [f"{v:.2f}" for v in values]


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(x) for x in r) + " |" for r in rows]
    return "\n".join(lines)


# -- studies ---------------------------------------------------------------------------
def study_errors(case, shapes, methods, title, note=""):
    out = [f"**{title}**", ""]
    rows = []
    for m in methods:
        infos = [run(case, n if case == "transport1d" else [n, n], m) for n in shapes]
        last = infos[-1]
        h = [i["h"] for i in infos]
        o2, s2 = orders(h, [i["map_l2"] for i in infos])
        oi, si = orders(h, [i["map_linf"] for i in infos])
        oo = [outside_y(i) for i in infos]
        for i, info, a, b in zip(range(len(infos)), infos, fmt_orders(o2), fmt_orders(oi)):
            rows.append([m or infos[0]["case"].boundary.method.method, f"{shapes[i]}", f"{info['h']:.4g}",
                         f"{info['map_l2']:.3e}", a, f"{info['map_linf']:.3e}", b, f"{oo[i]:.1e}",
                         info["steps"], f"{info['solve']:.2f}"])
        rows.append([m or "", "slope", "", "", f"{s2:.2f}", "", f"{si:.2f}", "", "", ""])
    out.append(table(["method", "n", "h", "map L2", "order", "map max", "order", "outside Y", "Newton", "solve s"], rows))
    if note:
        out += ["", note(last)]
    return "\n".join(out)


def section8_metric(info):
    c = info["case"]
    x = c.grid.points()
    lo, hi = np.asarray(c.grid.lower), np.asarray(c.grid.upper)
    dist = np.min(np.minimum(x - lo, hi - x), axis=-1)
    inner = dist >= 0.1 * np.max(hi - lo) - 1e-12
    e = np.linalg.norm(np.moveaxis(info["map"], 0, -1) - c.exact.map(x), axis=-1)
    p = c.source.density(x)
    return (math.sqrt(np.sum(p[inner] * e[inner] ** 2) / np.sum(p[inner])), float(e[inner].max()),
            float(e.max()))


BM = {33: ("9.1e-2", "0.325", "0.9", "7"), 65: ("3.8e-2", "0.140", "2.8", "7"), 129: ("1.7e-2", "0.062", "18.2", "10")}


def study_parallelogram(shapes):
    rows, per = [], {}
    for m in ("bfo", "bfo2"):
        infos = [run("transport_parallelogram", [n, n], m) for n in shapes]
        met = [section8_metric(i) for i in infos]
        per[m] = (infos, met)
        o2, s2 = orders([i["h"] for i in infos], [a[0] for a in met])
        oi, si = orders([i["h"] for i in infos], [a[1] for a in met])
        l2s, lis = [a[0] for a in met], [a[1] for a in met]
        for n, info, (l2, li, la), a, b in zip(shapes, infos, met, fmt_orders(o2, l2s), fmt_orders(oi, lis)):
            rows.append([m, f"{n}²", f"{l2:.2e}", a, f"{li:.2e}", b, f"{la:.2e}", f"{outside_y(info):.1e}",
                         info["steps"], f"{info['solve']:.2f}", f"{info['total']:.2f}"])
        if max(l2s) >= 1e-10:
            rows.append([m, f"slope {shapes[0]}²→{shapes[-1]}²", "", f"{s2:.2f}", "", f"{si:.2f}", "", "", "", "", ""])
    for n in shapes:
        if n in BM:
            l2, li, t, its = BM[n]
            rows.append(["Bonnet–Mirebeau (numerics.md §4, cell-centred)", f"{n}²", l2, "", li, "", "", "", its, t, ""])
    rows.append(["Bonnet–Mirebeau", "order", "", "≈1.2", "", "≈1.2", "", "", "", "", ""])
    return "\n".join([
        "**Shared Gaussian box → parallelogram problem (numerics.md §8)**: interior = nodes ≥ 10% of the "
        "box width from ∂X; L2 weighted by p", "",
        table(["method", "grid", "interior L2(p)", "order", "interior max", "order", "max all nodes",
               "outside Y", "Newton", "solve s", "total s"], rows)]), per


def polyline_order(shape):
    """Boundary node indices of a 2D grid in counter-clockwise order."""
    n0, n1 = shape
    path = [(i, 0) for i in range(n0)] + [(n0 - 1, j) for j in range(1, n1)]
    path += [(i, n1 - 1) for i in range(n0 - 2, -1, -1)] + [(0, j) for j in range(n1 - 2, 0, -1)]
    return np.array(path)


def hausdorff_to_circle(map_field):
    idx = polyline_order(map_field.shape[1:])
    P = map_field[:, idx[:, 0], idx[:, 1]].T
    radial = float(np.max(np.abs(np.linalg.norm(P, axis=1) - 1.0)))
    a = np.roll(P, -1, axis=0) - P
    theta = 2 * np.pi * np.arange(4096) / 4096
    c = np.stack([np.cos(theta), np.sin(theta)], axis=-1)
    best = np.full(len(c), np.inf)
    for k in range(len(P)):
        t = np.clip(((c - P[k]) @ a[k]) / (a[k] @ a[k]), 0.0, 1.0)
        best = np.minimum(best, np.linalg.norm(c - (P[k] + t[:, None] * a[k]), axis=1))
    return max(radial, float(best.max())), radial


def disk_bins(bins=32, sub=64):
    edges = np.linspace(-1, 1, bins + 1)
    s = (np.arange(sub) + 0.5) / sub
    q = np.zeros((bins, bins))
    for i in range(bins):
        xs = edges[i] + (edges[i + 1] - edges[i]) * s
        for j in range(bins):
            ys = edges[j] + (edges[j + 1] - edges[j]) * s
            X, Yy = np.meshgrid(xs, ys, indexing="ij")
            q[i, j] = np.mean(X ** 2 + Yy ** 2 <= 1.0) * (edges[1] - edges[0]) ** 2 / np.pi
    return edges, q


def histogram_l1(run_dir, edges, q, m=4096):
    T = load_map(run_dir)
    s = -1 + (np.arange(m) + 0.5) * 2 / m
    hist = np.zeros_like(q)
    for rows in np.array_split(s, 16):          # 16 chunks of source rows: bounded memory
        X = np.stack(np.meshgrid(rows, s, indexing="ij"), axis=-1).reshape(-1, 2)
        y = T(X)
        hist += np.histogram2d(y[:, 0], y[:, 1], bins=[edges, edges])[0]
    return float(np.abs(hist / m ** 2 - q).sum())


def study_disk(shapes):
    edges, q = disk_bins()
    rows = []
    for m in ("bfo", "bfo2"):
        infos = [run("transport_square_disk", [n, n], m) for n in shapes]
        hd = [hausdorff_to_circle(i["map"]) for i in infos]
        l1 = [histogram_l1(i["dir"], edges, q) for i in infos]
        oh, sh = orders([i["h"] for i in infos], [a[0] for a in hd])
        for n, info, (h, r), a, l in zip(shapes, infos, hd, fmt_orders(oh), l1):
            rows.append([m, f"{n}²", f"{h:.2e}", a, f"{r:.1e}", f"{l:.3e}", f"{info['drift']:.1e}", info["steps"],
                         f"{info['solve']:.2f}"])
        rows.append([m, "slope", "", f"{sh:.2f}", "", "", "", "", ""])
    return "\n".join(["**Uniform square → uniform disk** (no closed form)", "",
                      table(["method", "grid", "Hausdorff(∇φ(∂X), circle)", "order", "max dist(∇φ(x_b), circle)",
                             "histogram L1", "drift κ", "Newton", "solve s"], rows)])


def study_images(n):
    info = run("transport_images", [n, n])
    c = info["case"]
    mean_q = float(np.mean(c.target.values))     # bilinear interpolants: integral = trapezoid means
    mean_p = float(np.mean(c.source.values))
    trap = lambda v: float(np.mean(0.25 * (v[:-1, :-1] + v[1:, :-1] + v[:-1, 1:] + v[1:, 1:])))   # noqa: E731
    kappa = math.log(trap(c.target.values) / trap(c.source.values))
    return "\n".join([
        "**Image → image** (cases/transport_images.toml, raw 8-bit intensities, `normalized = false`)", "",
        table(["grid", "Newton", "solve s", "drift κ (diagnostics)", "log(∫q/∫p) of the bilinear images", "outside Y"],
              [[f"{n}²", info["steps"], f"{info['solve']:.2f}", f"{info['drift']:.5f}", f"{kappa:.5f}",
                f"{outside_y(info):.1e}"]]),
        "", f"(pixel means {mean_q:.4f} / {mean_p:.4f})"])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="drop the finest level of every study")
    ap.add_argument("--out", type=Path, help="also write the tables to this Markdown file")
    args = ap.parse_args()
    cut = (lambda s: s[:-1]) if args.quick else (lambda s: s)
    run("transport_parallelogram", [17, 17], "bfo")        # compile / load the kernels
    run("transport1d", 17)
    parts = [
        study_errors("transport1d", cut([33, 65, 129, 257, 513]), [None],
                     "1D: N(0,1) on [−2, 2] → U[−1, 1] (Neumann), exact CDF map",
                     lambda i: f"Drift κ on the finest grid: {i['drift']:.6f}; log(∫q/∫p) = −log P(|Z| ≤ 2) = "
                               f"{-math.log(math.erf(math.sqrt(2))):.6f}."),
        study_errors("transport_box2d", cut([17, 33, 65, 129, 257]), ["neumann", "bfo2", "bfo"],
                     "2D separable box → box (cases/transport_box2d.toml), exact product of 1D maps"),
        study_errors("transport_manufactured", cut([17, 33, 65, 129, 257]), ["neumann", "bfo2", "bfo"],
                     "2D manufactured non-separable square → square (cases/transport_manufactured.toml)"),
    ]
    text, _ = study_parallelogram(cut([33, 65, 129, 257]))
    parts.append(text)
    parts.append(study_disk(cut([33, 65, 129, 257])))
    parts.append(study_images(65))
    report = "\n\n".join(parts)
    print(report)
    if args.out:
        args.out.write_text(report + "\n")


if __name__ == "__main__":
    main()
