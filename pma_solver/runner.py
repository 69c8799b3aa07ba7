"""The run loop: step the flow, write snapshots, diagnostics and checkpoints, stop cleanly.

Kernels and steppers never touch files; this loop drives the writer, the checkpointer and
the progress display. A step that produces NaN/Inf or turns a convex state non-convex is
rejected and retried with half the step; when the step would fall below `dt_min` the run
stops with status "failed", the last good state written and the reason stored.
"""
from __future__ import annotations

import math
import resource
import shutil
import signal
import time as _time
from dataclasses import dataclass, field
from pathlib import Path

import numba
import numpy as np

from .case import Case
from .checkpoint import load_checkpoint, save_checkpoint
from .errors import NumericalFailure, StorageFailure
from .metrics import ErrorMeter, rate_summary
from .operator import FlowOperator
from .progress import Progress
from .rundir import RunDirectory
from .runfile import RunWriter
from .steppers import make_stepper

DT_MIN = 1e-13
MAX_RETRIES = 40
# Called with the RunDirectory after the run file is final (e.g. the XDMF sidecar writer).
END_OF_RUN_HOOKS: list = [lambda run_dir: __import__("pma_solver.xdmf", fromlist=["on_run_end"]).on_run_end(run_dir)]


@dataclass
class RunResult:
    status: str
    stop_reason: str
    exit_code: int
    run_file: Path
    summary: dict = field(default_factory=dict)
    hint: str = ""


class _Signals:
    """SIGINT/SIGTERM set a flag; the current step finishes before the run stops."""

    def __init__(self):
        self.received: int | None = None
        self._old = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:      # not the main thread (e.g. called from a library)
                pass
        return self

    def _handle(self, signum, frame):
        self.received = signum

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)


class Runner:
    def __init__(self, case: Case, run_dir: Path | None = None, *, quiet: bool = False):
        self.case = case
        self.dir = RunDirectory(Path(run_dir) if run_dir else case.output.dir)
        self.quiet = quiet

    def identity(self) -> dict:
        c = self.case
        return {"grid": c.grid.state(), "scheme": c.scheme.state(), "boundary": c.boundary.state(),
                "source": c.resolved["source"], "target": c.resolved["target"]}

    def run(self, *, resume: bool = False, force: bool = False) -> RunResult:
        case = self.case
        op = FlowOperator(case)            # validates the source on the grid before touching files
        self.dir.prepare(force=force, resume=resume)
        try:
            with _Signals() as signals:
                return self._run(op, resume, signals)
        finally:
            self.dir.release()

    # -- the loop ------------------------------------------------------------------
    def _run(self, op: FlowOperator, resume: bool, signals: _Signals) -> RunResult:
        case, grid, tset, out = self.case, self.case.grid, self.case.time, self.case.output
        stepper = make_stepper(case, op)
        threads = numba.get_num_threads()
        meter = ErrorMeter(grid, op.weight[op.nodes].reshape(grid.shape))
        exact = case.exact
        node_points = grid.points()
        steady_exact = None
        if exact is not None and not exact.transient:
            steady_exact = (exact.potential(node_points), np.moveaxis(exact.map(node_points), -1, 0))

        def exact_at(t):
            if exact is None:
                return None
            if stepper.pseudo_time:
                t = math.inf
            if steady_exact is not None:
                return {"u": steady_exact[0], "map": steady_exact[1]}
            return {"u": exact.potential(node_points, t), "map": np.moveaxis(exact.map(node_points, t), -1, 0)}

        identity = self.identity()
        if resume:
            u, sc = load_checkpoint(self.dir.checkpoint, identity)
            writer = RunWriter(self.dir.run_file, case, op, threads, resume=True)
            writer.truncate_after(int(sc["step"]))
            k, t = int(sc["step"]), float(sc["time"])
            out_index, last_dt = int(sc["out_index"]), float(sc["last_dt"])
            kl_integral, wall_before = float(sc["kl_integral"]), float(sc["wall_time_s"])
            pending = bool(sc["pending_snapshot"])
            if bool(sc.get("offschedule_snapshot", False)):
                # the run stopped between output times and wrote an extra final snapshot at
                # this step: drop it, the resumed run continues the regular schedule
                writer.truncate_after(int(sc["step"]) - 1)
            prev_margin = float(sc["prev_margin"]) if not math.isnan(sc["prev_margin"]) else None
            writer.set_attrs(status="running", stop_reason="")
            last_logged_resume = writer.last_diagnostic_step()
        else:
            u = op.initial_state(math.inf if stepper.pseudo_time else 0.0)
            writer = RunWriter(self.dir.run_file, case, op, threads)
            k, t, out_index, last_dt, kl_integral, wall_before = 0, 0.0, 0, 0.0, 0.0, 0.0
            pending, prev_margin = True, None
            last_logged_resume = -1

        # Compile (or load from the numba cache) before timing the run.
        c0 = _time.perf_counter()
        scratch = np.empty_like(u)
        op.boundary.fill(u, math.inf if stepper.pseudo_time else t)
        op.evaluate(u)
        op.euler_step(scratch, u, 0.0)
        compile_s = _time.perf_counter() - c0
        writer.set_attrs(compile_time_s=compile_s, threads=threads)

        def output_time(j):
            return min(j * out.every_time, tset.t_end)

        if not resume:
            out_index = 1
        start = _time.perf_counter()
        last_ckpt = start
        progress = Progress(tset.t_end, not self.quiet, case.name)
        diag_rows: list[dict] = []
        u_prev = np.empty_like(u)
        have_prev = False
        t_prev = t
        retry_dt = math.inf
        retries = 0
        last_increment = 0.0
        status = reason = ""
        hint = ""
        snapshots_written_at = None
        latest = {}
        solver_info = {key: 0.0 for key in stepper.info_keys}
        last_logged = last_logged_resume

        def boundary_time(time_now):
            # pseudo-time (steady solver) is not physical time: boundary data are steady
            return math.inf if stepper.pseudo_time else time_now

        snapshot_bytes = 8 * grid.size * (len(out.fields) + grid.dim + 2 * (exact is not None))

        def write_snapshot(state, time_now, dt_now, residual_field):
            # Refuse to start a write that may not fit: a half-written HDF5 append can take
            # the earlier snapshots down with it.
            free = shutil.disk_usage(self.dir.path).free
            if free < 4 * snapshot_bytes + (16 << 20):
                raise StorageFailure(f"disk nearly full ({free >> 20} MiB free) at t = {time_now:.6g}",
                                     "free some space and continue with --resume")
            limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
            size = self.dir.run_file.stat().st_size
            # growth of the file at the last snapshot (compressed), uncompressed size before that
            need = int(1.5 * latest.get("growth", snapshot_bytes)) + (16 << 10)
            if limit != resource.RLIM_INFINITY and size + need > limit:
                raise StorageFailure(f"the file-size limit ({limit} bytes) would be exceeded at t = {time_now:.6g}",
                                     "raise the limit (ulimit -f) and continue with --resume")
            phi = op.potential(state)
            data = {"u": phi, "map": op.gradient(state), "residual": residual_field,
                    # index into scheme/frames of the frame attaining the minimum (wide stencil)
                    "active_frame": op.active[op.nodes].reshape(grid.shape).astype(float)}
            ex = exact_at(time_now)
            errs = meter.snapshot_errors(phi, data["map"], ex["u"], ex["map"]) if ex else None
            try:
                writer.snapshot(k, time_now, dt_now, data, ex, errs, diag_rows)
            except (OSError, RuntimeError) as exc:
                raise StorageFailure(f"cannot write the run file: {exc}", "check disk space and permissions") from None
            latest["errors"] = errs
            latest["growth"] = self.dir.run_file.stat().st_size - size

        def residual_on_nodes():
            r = np.zeros(grid.shape)
            full = op.out[op.nodes].reshape(grid.shape)
            mask = np.zeros(op.shape, dtype=bool)
            mask[op.unknown] = True
            r[mask[op.nodes].reshape(grid.shape)] = full[mask[op.nodes].reshape(grid.shape)]
            return r

        def checkpoint(state, time_now, pend, offschedule=False):
            save_checkpoint(self.dir.checkpoint, state, {
                "step": k, "time": time_now, "out_index": out_index, "last_dt": last_dt,
                "kl_integral": kl_integral, "wall_time_s": wall_before + _time.perf_counter() - start,
                "pending_snapshot": pend, "prev_margin": np.nan if prev_margin is None else prev_margin,
                "offschedule_snapshot": offschedule,
            }, identity)

        try:
            while True:
                op.boundary.fill(u, boundary_time(t))
                log_now = (k % out.log_every == 0 or pending) and k != last_logged
                stats = op.evaluate(u, diag=log_now)
                residual, drift = rate_summary(stats, op.total_weight, case.boundary.removes_drift)
                margin = stats["margin_min"]
                bad = None
                if not math.isfinite(residual) or not math.isfinite(stats["coef_max"]):
                    bad = "the potential became NaN/Inf"
                elif prev_margin is not None and prev_margin >= 0 and margin < 0:
                    bad = "loss of convexity (a directional second difference became negative)"
                if bad:
                    if not have_prev:
                        raise NumericalFailure(f"{bad} at step {k}", "check the initial condition and the densities")
                    retries += 1
                    retry_dt = 0.5 * last_dt
                    u, u_prev = u_prev, u
                    t, k, have_prev = t_prev, k - 1, False
                    kl_integral -= last_increment
                    if retry_dt < DT_MIN or retries > MAX_RETRIES:
                        raise NumericalFailure(f"{bad}; step rejected {retries} times down to dt = {retry_dt:.3g}",
                                               "try a smaller cfl, a finer grid or the wide_stencil scheme")
                    pending = pending_before
                    continue
                retries = 0 if math.isinf(retry_dt) else retries
                kl = -stats["f_weighted_sum"]
                stopping = (residual <= tset.steady_tol or (t >= tset.t_end and not stepper.pseudo_time)
                            or k >= tset.max_steps or signals.received is not None)
                if stopping and not log_now and k != last_logged:
                    # the final state always gets its diagnostics row (with the diag-only stats)
                    stats = op.evaluate(u, diag=True)
                    log_now = True
                if log_now:
                    last_logged = k
                    row = {"step": k, "time": t, "dt": last_dt, "residual_max": residual,
                           "residual_l1": float(np.sum(np.abs(op.residual_field() - (drift if case.boundary.removes_drift else 0.0))
                                                       * op.weight[op.unknown])),
                           "kl": kl, "drift": drift, "convexity_margin": margin,
                           "peclet_max": stats["peclet_max"], "kl_time_integral": kl_integral,
                           "wall_time_s": wall_before + _time.perf_counter() - start, **solver_info}
                    ex = exact_at(t)
                    if ex is not None:
                        row["map_error_l2p"], row["map_error_max"] = meter.weighted_map_errors(op.gradient(u), ex["map"])
                    diag_rows.append(row)
                if pending:
                    write_snapshot(u, t, last_dt, residual_on_nodes())
                    snapshots_written_at = k
                    pending = False
                    progress.update(t, residual=f"{residual:.2e}")
                    checkpoint(u, t, False)        # every snapshot is also a restart point
                    last_ckpt = _time.perf_counter()
                if residual <= tset.steady_tol:
                    status, reason = "steady", f"residual max {residual:.3g} <= steady_tol {tset.steady_tol:g}"
                    break
                if t >= tset.t_end and not stepper.pseudo_time:
                    status, reason = "completed", "reached t_end"
                    break
                if k >= tset.max_steps:
                    status, reason = "completed", f"reached max_steps = {tset.max_steps}"
                    break
                if signals.received is not None:
                    status = "interrupted"
                    reason = f"received {signal.Signals(signals.received).name}"
                    break
                now = _time.perf_counter()
                if now - last_ckpt >= out.checkpoint_every:
                    checkpoint(u, t, False)
                    last_ckpt = now
                dt = min(stepper.dt_bound(k), retry_dt)
                hits = False
                if not stepper.pseudo_time:
                    t_out = output_time(out_index)
                    hits = t + dt >= t_out * (1 - 1e-12) - 1e-300
                    if hits:
                        dt = t_out - t
                if dt < DT_MIN:
                    raise NumericalFailure(f"time step collapsed to {dt:.3g} at t = {t:.6g}",
                                           "the Hessian is degenerate; try a larger [scheme] delta or a finer grid")
                pending_before = pending
                dt_taken, step_info = stepper.advance(u_prev, u, t, dt)
                hits = hits and dt_taken == dt
                dt = dt_taken
                solver_info.update(step_info)
                u, u_prev = u_prev, u
                have_prev = True
                t_prev = t
                t = t_out if hits else t + dt
                last_increment = dt * kl
                kl_integral += last_increment
                last_dt = dt
                prev_margin = margin
                retry_dt = math.inf
                k += 1
                if hits:
                    pending = True
                    out_index += 1
                elif stepper.pseudo_time and k % out.log_every == 0:
                    pending = True      # steady solver: a snapshot every log_every iterations
                if k % 64 == 0:
                    progress.update(t, residual=f"{residual:.2e}")
        except StorageFailure as exc:
            status, reason, hint = "failed", exc.reason, exc.hint
        except NumericalFailure as exc:
            status, reason, hint = "failed", exc.reason, exc.hint
            # u holds the last good state (a rejected step was undone above).
            op.boundary.fill(u, boundary_time(t))
            op.evaluate(u)
        finally:
            progress.close()

        wall = wall_before + _time.perf_counter() - start
        offschedule = snapshots_written_at != k
        try:
            if offschedule:
                write_snapshot(u, t, last_dt, residual_on_nodes())
            else:
                writer.diagnostics(diag_rows)
            checkpoint(u, t, False, offschedule=offschedule and status == "interrupted")
            writer.finish(status=status, stop_reason=reason, n_steps=k, t_final=t, wall_time_s=wall)
            for hook in END_OF_RUN_HOOKS:
                hook(self.dir)
        except (StorageFailure, OSError, RuntimeError) as exc:
            # No room for a final snapshot: record the outcome (a few bytes of attributes),
            # earlier snapshots stay as they are.
            status = "failed"
            reason = reason or getattr(exc, "reason", str(exc))
            hint = hint or "check disk space and permissions"
            try:
                writer.set_attrs(status=status, stop_reason=reason, n_steps=k, t_final=t, wall_time_s=wall)
            except (OSError, RuntimeError):
                pass
        summary = dict(status=status, stop_reason=reason, steps=k, t_final=t, wall_time_s=wall,
                       compile_time_s=compile_s, errors=latest.get("errors"))
        code = {"failed": 1, "interrupted": 130 if signals.received == signal.SIGINT else 143}.get(status, 0)
        return RunResult(status, reason, code, self.dir.run_file, summary, hint)
