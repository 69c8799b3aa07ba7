"""Figures from run files (`pma plot`) and from convergence studies.

Reads only run files (never the solver or its kernels), so it works on old and running runs.
Figures are built on matplotlib's object API with the Agg canvas (no pyplot global state, no
display needed); the file format follows the output extension.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .convergence import NORM_LABELS, NORMS
from .errors import CaseError
from .runfile import open_run_file

FORMATS = ("png", "pdf", "svg")
DPI = 120
ARROWS = 16         # grid lines / arrows per axis in map plots


class RunFile:
    """Read-only view of one run.h5: grid, snapshot times and fields, with one-line errors."""

    def __init__(self, target):
        self.path, self.f = open_run_file(target)
        try:
            g = self.f["grid"].attrs
            self.dim = int(g["dim"])
            self.shape = tuple(int(n) for n in g["shape"])
            self.axes = [self.f[f"grid/x{k}"][()] for k in range(self.dim)]
            self.spacing = np.asarray(g["spacing"], dtype=float)
            self.times = self.f["scales/time"][()]
        except KeyError as exc:
            self.f.close()
            raise CaseError(f"{self.path}: damaged run file ({exc})") from None
        self.name = str(self.f.attrs.get("case_name", self.path.parent.name))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()

    def index(self, step: int | None) -> int:
        """Snapshot index from --step (negative counts from the end; None = last)."""
        n = len(self.times)
        if n == 0:
            raise CaseError(f"{self.path}: no snapshot written yet")
        k = n - 1 if step is None else step
        if not -n <= k < n:
            raise CaseError(f"--step {step}: {self.path} has {n} snapshots (0..{n - 1}, or -{n}..-1)")
        return k % n

    def field(self, name: str, k: int, hint: str = "") -> np.ndarray:
        if name not in self.f:
            raise CaseError(f"{self.path} has no {name}{hint}")
        return self.f[name][k]

    def title(self, what: str, k: int) -> str:
        return f"{self.name}: {what} at t = {self.times[k]:.4g} (snapshot {k})"

    def points(self) -> list[np.ndarray]:
        return np.meshgrid(*self.axes, indexing="ij")


# -- scalar fields on 1D/2D/3D grids ----------------------------------------------------
def _extent(run: RunFile, a: int, b: int) -> list[float]:
    """imshow extent for axes (a, b) with node-centred pixels."""
    ha, hb = run.spacing[a] / 2, run.spacing[b] / 2
    return [run.axes[a][0] - ha, run.axes[a][-1] + ha, run.axes[b][0] - hb, run.axes[b][-1] + hb]


def _image(fig, ax, run, values, a, b, label, cmap, limits):
    im = ax.imshow(values.T, origin="lower", extent=_extent(run, a, b), cmap=cmap,
                   vmin=limits[0], vmax=limits[1], interpolation="nearest")
    ratio = (run.axes[b][-1] - run.axes[b][0]) / max(run.axes[a][-1] - run.axes[a][0], 1e-300)
    ax.set_aspect("equal" if 0.25 <= ratio <= 4 else "auto")   # keep very flat boxes readable
    ax.set_xlabel(f"x{a}")
    ax.set_ylabel(f"x{b}")
    fig.colorbar(im, ax=ax, label=label)


def _limits(values: np.ndarray, symmetric: bool) -> tuple[float, float]:
    finite = values[np.isfinite(values)]
    if not finite.size:             # e.g. the last state of a failed run
        return -1.0, 1.0
    if symmetric:
        m = float(np.max(np.abs(finite)))
        return -m, m
    return float(finite.min()), float(finite.max())


def _field_1d(fig, run, values, label, cmap, symmetric):
    ax = fig.add_subplot()
    ax.plot(run.axes[0], values, "-o", ms=2)
    ax.set_xlabel("x0")
    ax.set_ylabel(label)
    ax.grid(alpha=0.3)


def _field_2d(fig, run, values, label, cmap, symmetric):
    _image(fig, fig.add_subplot(), run, values, 0, 1, label, cmap, _limits(values, symmetric))


def _field_3d(fig, run, values, label, cmap, symmetric):
    """Three mid-slices sharing one colour scale."""
    mid = [n // 2 for n in run.shape]
    limits = _limits(values, symmetric)
    slices = {(0, 1): values[:, :, mid[2]], (0, 2): values[:, mid[1], :], (1, 2): values[mid[0], :, :]}
    for i, ((a, b), plane) in enumerate(slices.items()):
        ax = fig.add_subplot(1, 3, i + 1)
        other = 3 - a - b
        _image(fig, ax, run, plane, a, b, label, cmap, limits)
        ax.set_title(f"x{other} = {run.axes[other][mid[other]]:.3g}", fontsize="small")


FIELD_VIEWS = {1: _field_1d, 2: _field_2d, 3: _field_3d}
FIG_SIZES = {1: (6.4, 4.4), 2: (6.4, 5.2), 3: (13.0, 4.4)}


def _field_figure(run: RunFile, k: int, values: np.ndarray, what: str, label: str, cmap: str,
                  symmetric: bool = False) -> Figure:
    fig = Figure(figsize=FIG_SIZES[run.dim], layout="constrained")
    FIELD_VIEWS[run.dim](fig, run, values, label, cmap, symmetric)
    fig.suptitle(run.title(what, k))
    return fig


# -- the plot kinds ---------------------------------------------------------------------------
def plot_potential(run: RunFile, k: int) -> Figure:
    return _field_figure(run, k, run.field("fields/u", k), "potential", "φ", "viridis")


def _map_panels_1d(fig, run, m, x):
    ax1, ax2 = fig.subplots(1, 2)
    ax1.plot(x[0], m[0], label="∇φ(x)")
    ax1.plot(x[0], x[0], "k--", lw=0.8, label="identity")
    ax1.set_xlabel("x0")
    ax1.set_ylabel("y0 = ∂φ/∂x0")
    ax1.legend()
    ax2.plot(x[0], m[0] - x[0])
    ax2.set_xlabel("x0")
    ax2.set_ylabel("displacement ∇φ(x) − x")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)


def _map_panels_2d(fig, run, m, x, names=("x0", "x1")):
    """Deformed grid (images of grid lines under ∇φ) and displacement arrows ∇φ(x) − x."""
    ax1, ax2 = fig.subplots(1, 2)
    step = [max(1, n // ARROWS) for n in m.shape[1:]]
    for i in range(0, m.shape[1], step[0]):
        ax1.plot(m[0][i, :], m[1][i, :], color="C0", lw=0.7)
    for j in range(0, m.shape[2], step[1]):
        ax1.plot(m[0][:, j], m[1][:, j], color="C0", lw=0.7)
    ax1.set_xlabel(f"y{names[0][1:]} = ∂φ/∂{names[0]}")
    ax1.set_ylabel(f"y{names[1][1:]} = ∂φ/∂{names[1]}")
    ax1.set_title("deformed grid ∇φ(grid)", fontsize="small")
    sub = (slice(None, None, step[0]), slice(None, None, step[1]))
    d0, d1 = m[0] - x[0], m[1] - x[1]
    ax2.quiver(x[0][sub], x[1][sub], d0[sub], d1[sub], np.hypot(d0, d1)[sub],
               angles="xy", scale_units="xy", scale=1.0, cmap="viridis")
    ax2.set_xlabel(names[0])
    ax2.set_ylabel(names[1])
    ax2.set_title("displacement ∇φ(x) − x (true length)", fontsize="small")
    for ax in (ax1, ax2):
        ax.set_aspect("equal")


def _map_panels_3d(fig, run, m, x):
    """The 2D panels on the mid-slice in x2, in-plane components."""
    c = run.shape[2] // 2
    _map_panels_2d(fig, run, m[:2, :, :, c], [x[0][:, :, c], x[1][:, :, c]])
    fig.text(0.01, 0.01, f"slice x2 = {run.axes[2][c]:.3g}; components 0 and 1", fontsize="small")


MAP_PANELS = {1: _map_panels_1d, 2: _map_panels_2d, 3: _map_panels_3d}


def plot_map(run: RunFile, k: int) -> Figure:
    m = run.field("fields/map", k, " (add \"map\" to [output] fields)")
    fig = Figure(figsize=(12.0, 5.4), layout="constrained")
    MAP_PANELS[run.dim](fig, run, m, run.points())
    fig.suptitle(run.title("map", k))
    return fig


def plot_error(run: RunFile, k: int) -> Figure:
    """Pointwise |∇φ − T| against the exact map."""
    exact = run.field("exact/map", k, " (the case has no exact solution)")
    m = run.field("fields/map", k, " (add \"map\" to [output] fields)")
    err = np.sqrt(np.sum((m - exact) ** 2, axis=0))
    return _field_figure(run, k, err, "map error", "|∇φ − T|", "magma")


def plot_residual(run: RunFile, k: int) -> Figure:
    r = run.field("fields/residual", k, " (add \"residual\" to [output] fields)")
    return _field_figure(run, k, r, "residual", "log det D²φ + log q(∇φ) − log p", "RdBu_r", symmetric=True)


# (dataset, label, y scale): "log" where the quantity is positive and spans decades;
# "auto" picks log when every non-zero value is positive.
DIAGNOSTICS = (("residual_max", "residual max", "log"), ("kl", "KL(ρ_t | μ)", "auto"),
               ("dt", "time step dt", "log"), ("convexity_margin", "convexity margin", "linear"),
               ("map_error_l2p", "map error L²(p)", "log"), ("regret", "regret", "auto"))


def _scale(values: np.ndarray, rule: str) -> str:
    if rule != "auto":
        return rule
    return "log" if np.all(values[values != 0] > 0) and np.count_nonzero(values) >= 2 else "linear"


def plot_diagnostics(run: RunFile, k: int) -> Figure:
    diag = run.f["diagnostics"]
    series = [(key, label, rule) for key, label, rule in DIAGNOSTICS if key in diag and diag[key].shape[0]]
    if not series or "time" not in diag:
        raise CaseError(f"{run.path} has no diagnostics rows yet")
    t = diag["time"][()]
    rows = math.ceil(len(series) / 2)
    fig = Figure(figsize=(11.0, 2.8 * rows + 0.6), layout="constrained")
    axes = fig.subplots(rows, 2, squeeze=False).ravel()
    for ax, (key, label, rule) in zip(axes, series):
        v = diag[key][()]
        scale = _scale(v, rule)
        shown = v if scale == "linear" else np.where(v > 0, v, np.nan)
        ax.plot(t, shown, lw=1.2)
        ax.set_yscale(scale)
        ax.set_xlabel("time t")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3, which="both")
    for ax in axes[len(series):]:
        ax.set_visible(False)
    fig.suptitle(f"{run.name}: diagnostics ({run.f.attrs.get('status', '?')}, "
                 f"{int(run.f.attrs.get('n_steps', 0))} steps)")
    return fig


PLOTS = {"potential": plot_potential, "map": plot_map, "error": plot_error,
         "residual": plot_residual, "diagnostics": plot_diagnostics}


# -- entry points ---------------------------------------------------------------------------
def _check_what(what: str) -> None:
    if what not in PLOTS:
        raise CaseError(f"--what {what!r}: choose one of {', '.join(PLOTS)}")


def _check_format(path: Path) -> str:
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise CaseError(f"{path}: unsupported figure format {path.suffix!r}; use .png, .pdf or .svg")
    return fmt


def make_plot(target, what: str = "potential", step: int | None = None) -> Figure:
    """The figure for one plot kind of one run (see PLOTS)."""
    _check_what(what)
    with RunFile(target) as run:
        return PLOTS[what](run, run.index(step))


def save_figure(fig: Figure, path: str | Path) -> Path:
    """Write with the format of the extension (png, pdf, svg) through the Agg canvas."""
    path = Path(path)
    fmt = _check_format(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(path, format=fmt, dpi=DPI)
    return path


def plot_run(target, what: str = "potential", step: int | None = None, output=None) -> Path:
    """`pma plot`: build the figure and save it; by default next to the run file as <what>.png
    (<what>_step<K>.png when a snapshot was chosen)."""
    _check_what(what)
    with RunFile(target) as run:
        k = run.index(step)
        chosen = step is not None and what != "diagnostics"
        out = Path(output) if output else run.path.parent / (f"{what}_step{k}.png" if chosen else f"{what}.png")
        _check_format(out)          # before the work, so a typo fails fast
        fig = PLOTS[what](run, k)
    return save_figure(fig, out)


# -- convergence ----------------------------------------------------------------------------
MARKERS = {"map_l2": "o-", "map_linf": "s-", "u_l2": "^-", "u_linf": "v-"}


def convergence_axes(ax, study: dict, label_prefix: str = "", norms=NORMS) -> None:
    """Error against h on log-log axes for one study dict (the content of convergence.json)."""
    levels = [lv for lv in study["levels"] if lv["errors"]]
    h = np.array([lv["h"] for lv in levels])
    for key in norms:
        e = np.array([lv["errors"][key] for lv in levels])
        slope = study["slopes"].get(key)
        tail = f" (slope {slope:.2f})" if slope is not None else ""
        ax.loglog(h, np.where(e > 0, e, np.nan), MARKERS[key], label=f"{label_prefix}{NORM_LABELS[key]}{tail}")


def reference_slopes(ax, h: np.ndarray, anchor: float, orders=(1, 2)) -> None:
    """Dashed lines C h^p through (largest h, anchor), one per order."""
    hh = np.array([h.min(), h.max()])
    for p, ls in zip(orders, ("--", ":")):
        ax.loglog(hh, anchor * (hh / h.max()) ** p, "k" + ls, lw=0.9, label=f"slope {p}")


def convergence_figure(study: dict) -> Figure:
    """Log-log errors against h with reference slopes 1 and 2 for one convergence study."""
    fig = Figure(figsize=(6.4, 4.8), layout="constrained")
    ax = fig.add_subplot()
    levels = [lv for lv in study["levels"] if lv["errors"]]
    coarsest = max(levels, key=lambda lv: lv["h"], default=None)
    coarse = [e for e in (coarsest["errors"].values() if coarsest else ()) if e > 0]
    if levels:
        convergence_axes(ax, study)
    if len(levels) > 1 and coarse:
        # Below every curve at the coarsest level, so the guides never hide data.
        reference_slopes(ax, np.array([lv["h"] for lv in levels]), 0.4 * min(coarse))
    if levels:
        ax.legend(fontsize="small")
    else:
        ax.text(0.5, 0.5, "no level produced errors", ha="center", transform=ax.transAxes)
    at = "the final snapshot" if study["at"] == "final" else f"t = {study['at']:g}"
    ax.set_xlabel("grid spacing h (largest over the axes)")
    ax.set_ylabel(f"error at {at}")
    ax.set_title(f"{study['case_name']} ({study['scheme']}, {study['boundary']})")
    ax.grid(alpha=0.3, which="both")
    return fig
