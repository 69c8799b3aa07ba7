"""HDF5 run files (contract: DESIGN.md section 6).

`RunWriter` appends one snapshot at a time with open-append-flush-close, so a killed run
leaves a readable file holding every snapshot written so far. `open_run` opens for reading
without HDF5 file locking, so a run in progress can be inspected.
"""
from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path

import h5py
import numpy as np

from . import __version__
from .errors import CaseError

FORMAT = "pma_solver.run"
FORMAT_VERSION = 1
COMPRESSION = dict(compression="gzip", compression_opts=4, shuffle=True)
ERROR_KEYS = ("u_linf", "u_l2", "map_linf", "map_l2")


def resolve_run_path(target: str | Path) -> Path:
    p = Path(target)
    return p / "run.h5" if p.is_dir() else p


def open_run(target: str | Path) -> h5py.File:
    path = resolve_run_path(target)
    return h5py.File(path, "r", locking=False)


def open_run_file(target: str | Path) -> tuple[Path, h5py.File]:
    """(path, open file) for a run directory or run.h5, read-only and unlocked; CaseError if it is
    not a pma_solver run file."""
    path = resolve_run_path(target)
    if not path.is_file():
        raise CaseError(f"no run file at {path}")
    try:
        f = h5py.File(path, "r", locking=False)
    except OSError as exc:
        raise CaseError(f"cannot open {path} as HDF5: {exc}") from None
    if f.attrs.get("format") != FORMAT:
        f.close()
        raise CaseError(f"{path} is not a pma_solver run file")
    return path, f


def _resizable(group: h5py.Group, name: str, row_shape: tuple, dtype, compress: bool = False):
    kwargs = dict(shape=(0,) + row_shape, maxshape=(None,) + row_shape, dtype=dtype)
    if compress:
        kwargs.update(chunks=(1,) + row_shape, **COMPRESSION)
    else:
        kwargs.update(chunks=(256,) + row_shape if not row_shape else True)
    return group.create_dataset(name, **kwargs)


def _append(ds: h5py.Dataset, value) -> None:
    n = ds.shape[0]
    ds.resize(n + 1, axis=0)
    ds[n] = value


class RunWriter:
    """Creates run.h5 and appends snapshots and diagnostics to it."""

    def __init__(self, path: Path, case, operator, threads: int, *, resume: bool = False):
        self.path = Path(path)
        self.case = case
        self.grid = case.grid
        self.fields = list(case.output.fields)
        self.has_exact = case.exact is not None
        self.diag_keys: list[str] | None = None
        if not resume:
            self._create(case, operator, threads)

    def _create(self, case, operator, threads):
        grid = self.grid
        with h5py.File(self.path, "w") as f:
            f.attrs.update(format=FORMAT, format_version=FORMAT_VERSION, pma_solver_version=__version__,
                           status="running", stop_reason="", n_steps=0, t_final=0.0, wall_time_s=0.0,
                           compile_time_s=0.0, threads=threads,
                           created_utc=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                           case_name=case.name)
            c = f.create_group("case")
            c.attrs["toml"] = case.text
            c.attrs["resolved"] = case.resolved_json
            c.attrs["source_path"] = str(Path(case.path).resolve())
            c.attrs["overrides"] = json.dumps(case.overrides)
            g = f.create_group("grid")
            g.attrs.update(dim=grid.dim, lower=np.array(grid.lower), upper=np.array(grid.upper),
                           shape=np.array(grid.shape), spacing=np.array(grid.spacing),
                           periodic=grid.periodic, centering="node")
            for k, axis in enumerate(grid.axes()):
                ds = g.create_dataset(f"x{k}", data=axis)
                ds.attrs["axis"] = "XYZ"[k]
                ds.make_scale(f"x{k}")
            s = f.create_group("scheme")
            state = case.scheme.state()
            s.attrs["state"] = json.dumps(state)
            s.attrs["name"] = state["name"]
            s.attrs["delta"] = state["delta"]
            s.create_dataset("directions", data=np.asarray(state["directions"], dtype=np.int64))
            s.create_dataset("frames", data=np.asarray(state["frames"], dtype=np.int64))
            f.create_group("boundary").attrs["state"] = json.dumps(case.boundary.state())
            sc = f.create_group("scales")
            step = _resizable(sc, "step", (), "i8")
            time = _resizable(sc, "time", (), "f8")
            _resizable(sc, "dt", (), "f8")
            step.make_scale("step")
            time.make_scale("time")
            fl = f.create_group("fields")
            shapes = {"u": grid.shape, "map": (grid.dim,) + grid.shape, "residual": grid.shape,
                      "active_frame": grid.shape}
            for name in self.fields:
                ds = _resizable(fl, name, shapes[name], "f8", compress=True)
                ds.dims[0].attach_scale(time)
                ds.dims[0].attach_scale(step)
            if self.has_exact:
                ex = f.create_group("exact")
                ex.attrs["state"] = json.dumps(case.exact.state())
                ex.attrs["kind"] = case.exact.kind
                ex.attrs["transient"] = bool(case.exact.transient)
                for name in ("u", "map"):
                    ds = _resizable(ex, name, shapes[name], "f8", compress=True)
                    ds.dims[0].attach_scale(time)
                er = f.create_group("errors")
                er.attrs.update(region="interior" if not grid.periodic else "all",
                                normalization="u modulo its mean over the region",
                                l2="sqrt(sum |e|^2 * cell volume)", map_norm="Euclidean")
                for key in ERROR_KEYS:
                    _resizable(er, key, (), "f8")
            f.create_group("diagnostics")

    # -- appends ---------------------------------------------------------------
    def snapshot(self, step: int, t: float, dt: float, data: dict, exact: dict | None,
                 errors: dict | None, diagnostics: list[dict]) -> None:
        with h5py.File(self.path, "a") as f:
            self._write_diagnostics(f, diagnostics)
            _append(f["scales/step"], step)
            _append(f["scales/time"], t)
            _append(f["scales/dt"], dt)
            for name in self.fields:
                _append(f[f"fields/{name}"], data[name])
            if self.has_exact and exact is not None:
                _append(f["exact/u"], exact["u"])
                _append(f["exact/map"], exact["map"])
                for key in ERROR_KEYS:
                    _append(f[f"errors/{key}"], errors[key])
            f.flush()

    def diagnostics(self, rows: list[dict]) -> None:
        if rows:
            with h5py.File(self.path, "a") as f:
                self._write_diagnostics(f, rows)

    def _write_diagnostics(self, f: h5py.File, rows: list[dict]) -> None:
        if not rows:
            return
        group = f["diagnostics"]
        keys = list(rows[0].keys())
        for key in keys:
            if key not in group:
                _resizable(group, key, (), "i8" if key == "step" else "f8")
            ds = group[key]
            n = ds.shape[0]
            ds.resize(n + len(rows), axis=0)
            ds[n:] = np.array([r[key] for r in rows])
        rows.clear()

    def finish(self, **attrs) -> None:
        """Final attributes, and the regret curve sum_j dt_j (KL_j - KL_final) from the KL log."""
        with h5py.File(self.path, "a") as f:
            diag = f["diagnostics"]
            if "kl" in diag and diag["kl"].shape[0]:
                kl = diag["kl"][()]
                regret = diag["kl_time_integral"][()] - diag["time"][()] * kl[-1]
                if "regret" in diag:
                    del diag["regret"]
                diag.create_dataset("regret", data=regret)
                diag["regret"].attrs["definition"] = "sum_{j<k} dt_j (KL_j - KL_final)"
            f.attrs.update(attrs)

    def last_diagnostic_step(self) -> int:
        with h5py.File(self.path, "r") as f:
            diag = f["diagnostics"]
            return int(diag["step"][-1]) if "step" in diag and diag["step"].shape[0] else -1

    def set_attrs(self, **attrs) -> None:
        with h5py.File(self.path, "a") as f:
            f.attrs.update(attrs)

    def truncate_after(self, step: int) -> int:
        """Drop snapshot and diagnostic rows written after `step` (resume); returns rows kept."""
        with h5py.File(self.path, "a") as f:
            steps = f["scales/step"][()]
            keep = int(np.searchsorted(steps, step, side="right"))
            for name in ("scales/step", "scales/time", "scales/dt"):
                f[name].resize(keep, axis=0)
            for group in ("fields", "exact", "errors"):
                if group in f:
                    for ds in f[group].values():
                        ds.resize(keep, axis=0)
            diag = f["diagnostics"]
            if "regret" in diag:
                del diag["regret"]          # derived at finish() from the KL log; rebuilt then
            if "step" in diag:
                dkeep = int(np.searchsorted(diag["step"][()], step, side="right"))
                for ds in diag.values():
                    ds.resize(dkeep, axis=0)
            return keep
