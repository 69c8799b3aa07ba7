#!/usr/bin/env python3
"""Animate the snapshots of one run file as a GIF (matplotlib's PillowWriter).

1D runs are drawn as curves, 2D as images, 3D as the mid-slice in x2; the colour (or y) scale
is fixed over all frames so that changes are visible. Reads only run.h5 (h5py, numpy,
matplotlib, Pillow).

    python postprocess/animate_snapshots.py runs/torus2d -o torus2d.gif --field map_error
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
from matplotlib.animation import FuncAnimation, PillowWriter  # noqa: E402


def _potential(f, k):
    return f["fields/u"][k]


def _displacement(f, k):
    """|∇φ(x) − x|: how far each point moves."""
    m = f["fields/map"][k]
    x = np.meshgrid(*[f[f"grid/x{i}"][()] for i in range(m.shape[0])], indexing="ij")
    return np.sqrt(sum((m[i] - x[i]) ** 2 for i in range(m.shape[0])))


def _map_error(f, k):
    return np.sqrt(np.sum((f["fields/map"][k] - f["exact/map"][k]) ** 2, axis=0))


def _residual(f, k):
    return f["fields/residual"][k]


# name -> (datasets it needs, function of (file, snapshot), label)
FIELDS = {"u": (("fields/u",), _potential, "potential φ"),
          "displacement": (("fields/map",), _displacement, "|∇φ(x) − x|"),
          "map_error": (("fields/map", "exact/map"), _map_error, "|∇φ − T|"),
          "residual": (("fields/residual",), _residual, "residual")}


def _mid_slice(values: np.ndarray) -> np.ndarray:
    return values[..., values.shape[-1] // 2] if values.ndim == 3 else values


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path, help="run directory or run.h5")
    ap.add_argument("-o", "--output", type=Path, required=True, help="output .gif")
    ap.add_argument("--field", default="u", choices=list(FIELDS))
    ap.add_argument("--fps", type=float, default=4.0)
    args = ap.parse_args(argv)

    path = args.run / "run.h5" if args.run.is_dir() else args.run
    if not path.is_file():
        raise SystemExit(f"no run file at {path}")
    needs, compute, label = FIELDS[args.field]
    with h5py.File(path, "r", locking=False) as f:
        missing = [n for n in needs if n not in f]
        if missing:
            raise SystemExit(f"{path} has no {', '.join(missing)}")
        times = f["scales/time"][()]
        frames = [_mid_slice(compute(f, k)) for k in range(len(times))]
        axes = [f[f"grid/x{i}"][()] for i in range(int(f["grid"].attrs["dim"]))]
        name = str(f.attrs.get("case_name", path.parent.name))
    lo = min(float(np.nanmin(v)) for v in frames)
    hi = max(float(np.nanmax(v)) for v in frames)

    fig, ax = plt.subplots(figsize=(5.6, 4.6), layout="constrained")
    if frames[0].ndim == 1:
        (artist,) = ax.plot(axes[0], frames[0])
        ax.set_ylim(lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo) + 1e-300)
        ax.set_xlabel("x0")
        ax.set_ylabel(label)
        update = artist.set_ydata
    else:
        extent = [axes[0][0], axes[0][-1], axes[1][0], axes[1][-1]]
        artist = ax.imshow(frames[0].T, origin="lower", extent=extent, vmin=lo, vmax=hi, aspect="auto")
        fig.colorbar(artist, ax=ax, label=label)
        ax.set_xlabel("x0")
        ax.set_ylabel("x1")

        def update(v):
            artist.set_data(v.T)
    slice_note = f", slice x2 = {axes[2][len(axes[2]) // 2]:.3g}" if len(axes) == 3 else ""

    def draw(k):
        update(frames[k])
        ax.set_title(f"{name}: t = {times[k]:.4g}{slice_note}")
        return (artist,)

    anim = FuncAnimation(fig, draw, frames=len(frames), blit=False)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    anim.save(args.output, writer=PillowWriter(fps=args.fps), dpi=80)
    print(args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
