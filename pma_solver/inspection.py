"""`pma inspect`: what a run file says about its case, grid, status and final errors."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .errors import CaseError
from .rundir import _alive
from .runfile import open_run_file


def _plain(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def summarize(target: str | Path) -> dict:
    path, f = open_run_file(target)
    with f:
        try:
            info = _read(f, path)
        except (KeyError, ValueError, OSError) as exc:
            raise CaseError(f"{path} is damaged or incomplete ({exc})") from None
    if info.get("status") == "running":
        lock = path.parent / "run.lock"
        pid = 0
        if lock.is_file():
            try:
                pid = int(lock.read_text().strip() or 0)
            except (OSError, ValueError):
                pid = 0
        if pid and _alive(pid):
            info["state"] = f"running (pid {pid})"
        else:
            info["state"] = ("stopped unexpectedly: status is still 'running' but no process holds the run "
                             "(killed?); every snapshot written is intact; continue with pma run CASE --resume")
    else:
        info["state"] = info.get("status")
    return info


def _read(f, path: Path) -> dict:
    """What `pma inspect` reports, from an open run file (KeyError when a part is missing)."""
    info = {k: _plain(v) for k, v in f.attrs.items()}
    info["run_file"] = str(path)
    info["grid"] = {k: _plain(v) for k, v in f["grid"].attrs.items()}
    info["scheme"] = json.loads(f["scheme"].attrs["state"]) if "scheme" in f else {}
    resolved = json.loads(f["case"].attrs["resolved"])
    info["case"] = {"source": resolved.get("source", {}).get("kind"),
                    "target": resolved.get("target", {}).get("kind"),
                    "boundary": resolved.get("boundary", {}).get("kind"),
                    "stepper": resolved.get("time", {}).get("stepper"),
                    "t_end": resolved.get("time", {}).get("t_end")}
    info["snapshots"] = int(f["scales/time"].shape[0])
    if info["snapshots"]:
        info["last_snapshot"] = {"step": int(f["scales/step"][-1]), "time": float(f["scales/time"][-1])}
    if "errors" in f and f["errors/map_l2"].shape[0]:
        info["final_errors"] = {k: float(f["errors"][k][-1]) for k in f["errors"]}
    diag = f["diagnostics"]
    if "step" in diag and diag["step"].shape[0]:
        info["final_diagnostics"] = {k: float(diag[k][-1]) for k in diag}
    return info


def describe(info: dict) -> str:
    g = info["grid"]
    lines = [
        f"run file     {info['run_file']}",
        f"case         {info.get('case_name', '?')}: {info['case']['source']} -> {info['case']['target']}, "
        f"{info['case']['boundary']} boundary, {info['case']['stepper']} stepper",
        f"grid         {g['dim']}D, shape {'x'.join(str(int(n)) for n in g['shape'])}, "
        f"lower {np.round(g['lower'], 6).tolist()}, upper {np.round(g['upper'], 6).tolist()}",
        f"scheme       {info['scheme'].get('name')} (delta {info['scheme'].get('delta')}"
        + (f", stencil radius {info['scheme']['stencil_radius']}" if 'stencil_radius' in info['scheme'] else "") + ")",
        f"status       {info['state']}" + (f": {info['stop_reason']}" if info.get("stop_reason") else ""),
        f"steps        {info.get('n_steps')} to t = {info.get('t_final'):.6g}, {info['snapshots']} snapshots, "
        f"wall {info.get('wall_time_s', 0):.2f} s + compile {info.get('compile_time_s', 0):.2f} s, "
        f"{info.get('threads')} threads",
    ]
    d = info.get("final_diagnostics")
    if d:
        lines.append(f"diagnostics  residual max {d.get('residual_max', float('nan')):.3e}, "
                     f"KL {d.get('kl', float('nan')):.4e}, convexity margin {d.get('convexity_margin', float('nan')):.3e}")
    e = info.get("final_errors")
    if e:
        lines.append(f"errors       map L2 {e['map_l2']:.3e}, map max {e['map_linf']:.3e}, "
                     f"u L2 {e['u_l2']:.3e}, u max {e['u_linf']:.3e}")
    return "\n".join(lines)
