"""Reliability (issue 7): bad input, killed runs, resume, numerical failure, disk and files.

Every scenario runs the real `pma` command in its own process: runs to be killed, interrupted
or resumed in a fresh interpreter, the bad inputs in forked children (same code, no second of
start-up each; a few also in a fresh interpreter). The fuzzer calls `cli.main` in process.
The bad inputs live in tests/bad_inputs/, their expected message fragments in
tests/bad_inputs/cases.toml.
"""
import contextlib
import io
import json
import math
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
import traceback
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import CASES

BAD = Path(__file__).resolve().parent / "bad_inputs"
MANIFEST = tomllib.loads((BAD / "cases.toml").read_text())
GAUSS2D = CASES / "gauss2d_aniso.toml"
# Long runs to interrupt: a snapshot about every half second, t_end never reached.
LONG = ["grid.shape=[65,65]", "time.t_end=1000", "output.every_time=0.5", "time.steady_tol=0",
        'output.fields=["u"]']
# The resume comparison: short enough to run three times, long enough to interrupt midway.
RESUME = ["grid.shape=[49,49]", "time.t_end=6", "output.every_time=1.0", "time.steady_tol=0",
          'output.fields=["u", "map"]']
WAIT_S = 120        # generous: a cold numba cache compiles for tens of seconds


def _sets(items):
    return [a for s in items for a in ("--set", s)]


def _command(*args):
    return [sys.executable, "-m", "pma_solver", *map(str, args)]


def _run(*args, cwd=None, timeout=WAIT_S):
    return subprocess.run(_command(*args), cwd=cwd, capture_output=True, text=True, timeout=timeout)


def _start(*args, cwd=None):
    return subprocess.Popen(_command(*args), cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _tree(folder: Path) -> dict:
    """Every path under folder with its size and mtime: equal trees mean nothing was written."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) if p.is_file() else "dir"
            for p in sorted(folder.rglob("*"))}


def assert_one_line_error(proc, *fragments):
    """Exit code 2, nothing on stdout, exactly one line on stderr holding every fragment."""
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, f"exit {proc.returncode}\n{proc.stderr}"
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    assert len(lines) == 1, proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"
    return lines[0]


# -- 1. bad input ------------------------------------------------------------------------
def _setup(kind: str | None, tmp: Path) -> None:
    if kind == "existing_run":
        (tmp / "out").mkdir()
        (tmp / "out" / "run.h5").write_bytes(b"an earlier run")
    elif kind == "text_file":
        (tmp / "notes.txt").write_text("not a run file\n")
    elif kind == "damaged_run":
        with h5py.File(tmp / "damaged.h5", "w") as f:
            f.attrs["format"] = "pma_solver.run"


def _entries():
    for entry in MANIFEST["case"]:
        path = BAD / entry["file"]
        yield (entry["file"].removesuffix(".toml"),
               ["run", path, "-o", "{tmp}/out"], None, [str(path), *entry["expect"]])
    for entry in MANIFEST["command"]:
        yield "cli-" + entry["name"], entry["args"], entry.get("setup"), entry["expect"]


ENTRIES = {name: (args, setup, expect) for name, args, setup, expect in _entries()}


def _forked(*args, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    """`pma args` in a forked child: a real process (own cwd, stdout/stderr descriptors and exit
    status; an uncaught exception prints a traceback and exits 1, as the interpreter would)
    without the second of start-up and imports each `python -m pma_solver` pays."""
    from pma_solver import inspection, runner  # noqa: F401 - imported once, here, not in each child
    from pma_solver.cli import main
    out, err = tempfile.TemporaryFile(), tempfile.TemporaryFile()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.chdir(cwd)
            os.dup2(out.fileno(), 1)
            os.dup2(err.fileno(), 2)
            sys.stdout, sys.stderr = open(1, "w", closefd=False), open(2, "w", closefd=False)
            code = main([str(a) for a in args])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    deadline = time.monotonic() + timeout
    while (status := os.waitpid(pid, os.WNOHANG))[0] == 0:
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail(f"pma {args} ran for more than {timeout} s")
        time.sleep(0.005)
    texts = []
    for fh in (out, err):
        fh.seek(0)
        texts.append(fh.read().decode())
        fh.close()
    return subprocess.CompletedProcess(args, os.waitstatus_to_exitcode(status[1]), *texts)


def _bad(name: str, tmp: Path, run=_forked):
    args, setup, _ = ENTRIES[name]
    _setup(setup, tmp)
    before = _tree(tmp)
    proc = run(*[str(a).format(valid=BAD / "valid.toml", tmp=tmp, here=BAD) for a in args], cwd=tmp)
    return proc, before, _tree(tmp)


def test_corpus_size():
    assert len(MANIFEST["case"]) >= 40
    listed = {e["file"] for e in MANIFEST["case"]}
    assert listed == {p.name for p in BAD.glob("*.toml")} - {"valid.toml", "cases.toml"}


@pytest.mark.parametrize("name", list(ENTRIES))
def test_bad_input_one_line_exit_2_nothing_written(name, tmp_path):
    bad_before = _tree(BAD)
    proc, before, after = _bad(name, tmp_path)
    assert_one_line_error(proc, *ENTRIES[name][2])
    assert after == before and _tree(BAD) == bad_before


@pytest.mark.parametrize("name", ["toml_unclosed_table", "expr_import_system", "cli-existing_output_without_force"])
def test_bad_input_in_a_fresh_interpreter(name, tmp_path):
    proc, before, after = _bad(name, tmp_path, run=_run)
    assert_one_line_error(proc, *ENTRIES[name][2])
    assert after == before


def test_valid_base_case_runs(tmp_path):
    proc = _run("run", BAD / "valid.toml", "-o", tmp_path / "out", "--quiet", cwd=tmp_path)
    assert proc.returncode == 0 and proc.stderr == ""


PAYLOADS = [
    "__import__('os').system('touch PWNED')",
    "().__class__.__bases__[0].__subclasses__()",
    "(lambda: __import__('os').system('touch PWNED'))()",
    "exp.__globals__['__builtins__']['exec']('open(\"PWNED\", \"w\")')",
    "ｅｘｅｃ('open(\"PWNED\", \"w\")')",      # NFKC-normalised to exec by the parser
    "[open('PWNED', 'w') for x0 in (1,)]",
    "x0 if open('PWNED', 'w') else x0",
]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_expressions_never_execute_code(payload, tmp_path):
    valid = (BAD / "valid.toml").read_text()
    texts = {
        "source": valid.replace('[source]\nkind = "gaussian"\nmean = [0.0, 0.0]\ncov = [[1.0, 0.0], [0.0, 1.0]]',
                                f"[source]\nkind = \"expression\"\nexpression = {json.dumps(payload)}"),
        "initial": valid.replace('[initial]\nkind = "quadratic"',
                                 f"[initial]\nkind = \"expression\"\npotential = {json.dumps(payload)}"),
    }
    for role, text in texts.items():
        assert text != valid
        case = tmp_path / f"{role}.toml"
        case.write_text(text)
        assert_one_line_error(_forked("validate", case, cwd=tmp_path), f"{role}.", "not allowed")
        assert not (tmp_path / "PWNED").exists()


# -- fuzzer: random values in a valid case ------------------------------------------------
def _toml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return repr(value) if math.isfinite(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return "{" + ", ".join(f"{_toml(k)} = {_toml(v)}" for k, v in value.items()) + "}"


def _dumps(data: dict) -> str:
    lines = [f"{_toml(k)} = {_toml(v)}" for k, v in data.items() if not isinstance(v, dict)]
    for name, table in data.items():
        if isinstance(table, dict):
            lines.append(f"[{_toml(name)}]")
            lines += [f"{_toml(k)} = {_toml(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


VALID = tomllib.loads((BAD / "valid.toml").read_text())
KEYS = sorted({k for t in VALID.values() if isinstance(t, dict) for k in t} | set(VALID))
WORDS = ["auto", "gaussian", "uniform", "expression", "grid", "periodic", "transport", "wide_stencil",
         "exp(-x0**2)", "x0 + x1", "__import__('os')", "data/values.npy", "", "u", "map"]
numbers = (st.integers(-10, 120) | st.sampled_from([0, 1, 2, 3, -(2 ** 63), 2 ** 63 - 1]) | st.floats()
           | st.sampled_from([0.0, -0.0, 1e-300, 1e300, 0.5, 2.0]))
scalars = st.booleans() | numbers | numbers | st.text(max_size=8) | st.sampled_from(WORDS)
values = scalars | st.lists(numbers, max_size=4) | st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=4), inner, max_size=3), max_leaves=10)
# Mostly a new value for a key or for one entry of an array; sometimes a key dropped or
# added, or a whole table replaced.
OPS = ["set"] * 4 + ["item"] * 3 + ["delete", "add", "table"]
mutations = st.lists(st.tuples(st.sampled_from(OPS), st.sampled_from(sorted(VALID)), st.integers(0, 99),
                               st.sampled_from(KEYS) | st.text(max_size=6), values), min_size=1, max_size=3)


def _mutate(data: dict, todo) -> dict:
    data = json.loads(json.dumps(data))
    for op, table, pick, new_key, value in todo:
        node = data.get(table)
        if op == "table" or not isinstance(node, dict):
            data[table] = value
            continue
        keys = sorted(node)
        key = keys[pick % len(keys)] if keys else new_key
        if op == "set":
            node[key] = value
        elif op == "item" and isinstance(node.get(key), list) and node[key]:
            items, i = node[key], pick % len(node[key])
            if isinstance(items[i], list) and items[i]:
                items, i = items[i], pick % len(items[i])
            items[i] = value
        elif op == "delete":
            node.pop(key, None)
        else:
            node[new_key] = value
    return data


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(todo=mutations)
def test_fuzzed_case_values_validate_or_fail_cleanly(todo, tmp_path_factory):
    from pma_solver.cli import main
    folder = tmp_path_factory.mktemp("fuzz")
    path = folder / "case.toml"
    path.write_text(_dumps(_mutate(VALID, todo)))
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["validate", str(path)])
    out, err = out.getvalue(), err.getvalue()
    if code == 0:
        assert out.startswith(f"{path}: ok") and err == ""
    else:
        assert code == 2 and out == "", (code, err)
        assert len(err.strip().splitlines()) == 1 and err.startswith("error: "), err
    assert sorted(p.name for p in folder.iterdir()) == ["case.toml"]


# -- 2. killed runs ------------------------------------------------------------------------
def _snapshots(path: Path) -> int:
    try:
        with h5py.File(path, "r", locking=False) as f:
            return int(f["scales/time"].shape[0])
    except (OSError, KeyError):
        return 0     # not created yet, or caught between two writes


def wait_for_snapshots(proc, run_file: Path, n: int) -> int:
    """Block until run_file holds n snapshots; then give the writer a moment to close it."""
    deadline = time.monotonic() + WAIT_S
    while (count := _snapshots(run_file)) < n:
        if proc.poll() is not None:
            pytest.fail(f"run ended early (exit {proc.returncode}): {proc.stderr.read()}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"no {n} snapshots after {WAIT_S} s")
        time.sleep(0.01)
    time.sleep(0.05)
    return count


def check_intact(run_file: Path, at_least: int) -> h5py.File:
    """Every snapshot row is there, finite and in time order; returns the open file."""
    f = h5py.File(run_file, "r", locking=False)
    times = f["scales/time"][()]
    n = len(times)
    assert n >= at_least, f"lost snapshots: {n} < {at_least}"
    assert f["scales/step"].shape == (n,) and f["fields/u"].shape[0] == n
    assert np.all(np.diff(times) > 0) and np.all(np.diff(f["scales/step"][()]) > 0)
    for row in range(n):
        assert np.all(np.isfinite(f["fields/u"][row])), f"snapshot {row} is not finite"
    return f


def test_kill_sigkill_leaves_a_readable_file_and_inspect_says_so(tmp_path):
    out = tmp_path / "run"
    proc = _start("run", GAUSS2D, "-o", out, "--quiet", *_sets(LONG))
    seen = wait_for_snapshots(proc, out / "run.h5", 2)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=WAIT_S)
    assert proc.returncode == -signal.SIGKILL
    with check_intact(out / "run.h5", seen) as f:
        assert f.attrs["status"] == "running"
    proc = _run("inspect", out)
    assert proc.returncode == 0 and "stopped unexpectedly" in proc.stdout
    info = json.loads(_run("inspect", out / "run.h5", "--json").stdout)
    assert info["status"] == "running" and info["state"].startswith("stopped unexpectedly")


@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_kill_signal_finishes_the_step_and_saves_everything(sig, code, tmp_path):
    out = tmp_path / "run"
    proc = _start("run", GAUSS2D, "-o", out, "--quiet", *_sets(LONG))
    seen = wait_for_snapshots(proc, out / "run.h5", 2)
    # Meanwhile a second run into the same directory must refuse, even with --force.
    other = _run("run", GAUSS2D, "-o", out, "--quiet", "--force", *_sets(LONG))
    assert_one_line_error(other, f"pid {proc.pid}", "output.dir")
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=WAIT_S)
    assert proc.returncode == code and "Traceback" not in err
    with check_intact(out / "run.h5", seen + 1) as f:
        assert f.attrs["status"] == "interrupted"
        assert f.attrs["stop_reason"] == f"received {sig.name}"
        last_step, last_time = int(f["scales/step"][-1]), float(f["scales/time"][-1])
        assert f.attrs["n_steps"] == last_step and f.attrs["t_final"] == last_time
    with h5py.File(out / "checkpoint.h5", "r", locking=False) as c:
        assert int(c.attrs["step"]) == last_step and float(c.attrs["time"]) == last_time
    assert not (out / "run.lock").exists()
    assert "interrupted" in _run("inspect", out).stdout


def test_resume_refuses_a_changed_grid(tmp_path):
    out = tmp_path / "run"
    proc = _start("run", GAUSS2D, "-o", out, "--quiet", *_sets(LONG))
    wait_for_snapshots(proc, out / "run.h5", 1)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=WAIT_S)
    before = _tree(out)
    changed = [s for s in LONG if not s.startswith("grid.shape")] + ["grid.shape=[33,33]"]
    refused = _run("run", GAUSS2D, "-o", out, "--quiet", "--resume", *_sets(changed))
    assert_one_line_error(refused, "cannot resume", "grid", "--force")
    assert _tree(out) == before


# -- 3. resume -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def resumed(tmp_path_factory):
    """Run A uninterrupted; run B stopped by SIGINT midway, then resumed; run C killed
    (SIGKILL) after a checkpoint, then resumed. Failures are left to the tests."""
    tmp = tmp_path_factory.mktemp("resume")
    a = _run("run", GAUSS2D, "-o", tmp / "A", "--quiet", *_sets(RESUME))
    b = _start("run", GAUSS2D, "-o", tmp / "B", "--quiet", *_sets(RESUME))
    wait_for_snapshots(b, tmp / "B" / "run.h5", 2)
    b.send_signal(signal.SIGINT)
    b.communicate(timeout=WAIT_S)
    with h5py.File(tmp / "B" / "run.h5", "r", locking=False) as f:
        b_status, b_times = f.attrs["status"], f["scales/time"][()]
    b_resume = _run("run", GAUSS2D, "-o", tmp / "B", "--quiet", "--resume", *_sets(RESUME))
    c = _start("run", GAUSS2D, "-o", tmp / "C", "--quiet", *_sets(RESUME + ["output.checkpoint_every=0.05"]))
    wait_for_snapshots(c, tmp / "C" / "run.h5", 3)
    c.send_signal(signal.SIGKILL)
    c.communicate(timeout=WAIT_S)
    c_resume = _run("run", GAUSS2D, "-o", tmp / "C", "--quiet", "--resume", *_sets(RESUME))
    return dict(tmp=tmp, a=a, b=b, b_status=b_status, b_times=b_times, b_resume=b_resume,
                c=c, c_resume=c_resume)


def _final(path: Path):
    with h5py.File(path, "r", locking=False) as f:
        return (f["fields/u"][-1], f["scales/time"][()], f["scales/step"][()], f.attrs["status"])


def test_resume_interrupted_run_stopped_midway(resumed):
    assert resumed["a"].returncode == 0, resumed["a"].stderr
    assert resumed["b"].returncode == 130 and resumed["b_status"] == "interrupted"
    a_times = _final(resumed["tmp"] / "A" / "run.h5")[1]
    assert 2 <= len(resumed["b_times"]) - 1 < len(a_times) - 1, "SIGINT did not land midway"


def test_resume_after_sigint_matches_the_uninterrupted_run_bitwise(resumed):
    proc = resumed["b_resume"]
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    u_a, *_ = _final(resumed["tmp"] / "A" / "run.h5")
    u_b, _, _, status = _final(resumed["tmp"] / "B" / "run.h5")
    assert status == "completed" and np.array_equal(u_a, u_b)


def test_resume_after_sigint_continues_the_snapshot_times(resumed):
    _, t_a, s_a, _ = _final(resumed["tmp"] / "A" / "run.h5")
    _, t_b, s_b, _ = _final(resumed["tmp"] / "B" / "run.h5")
    assert np.array_equal(t_a, t_b) and np.array_equal(s_a, s_b)


def test_resume_after_sigkill_matches_the_uninterrupted_run(resumed):
    assert resumed["c"].returncode == -signal.SIGKILL
    proc = resumed["c_resume"]
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    u_a, t_a, s_a, _ = _final(resumed["tmp"] / "A" / "run.h5")
    u_c, t_c, s_c, status = _final(resumed["tmp"] / "C" / "run.h5")
    assert status == "completed"
    assert np.array_equal(u_a, u_c) and np.array_equal(t_a, t_c) and np.array_equal(s_a, s_c)
    check_intact(resumed["tmp"] / "C" / "run.h5", len(t_a)).close()


# -- 4. numerical failure ----------------------------------------------------------------
FAILING = {
    # A concave start with a vanishing curvature floor: dt ~ h^2 delta collapses at once.
    "collapsed_dt": (['initial.kind="expression"', 'initial.potential="-0.5*(x0**2 + x1**2)"',
                      "scheme.delta=1e-300"], "time step collapsed", "delta"),
    # A start so steep that log q(grad phi) overflows to -inf.
    "overflow": (['initial.kind="expression"', 'initial.potential="1e200*(x0**2 + x1**2)"'],
                 "NaN/Inf", "initial condition"),
}


@pytest.mark.parametrize("name", list(FAILING))
def test_numerical_failure_is_reported_and_the_last_good_state_kept(name, tmp_path):
    sets, reason, hint = FAILING[name]
    out = tmp_path / "run"
    proc = _run("run", GAUSS2D, "-o", out, "--quiet",
                *_sets(["grid.shape=[17,17]", "time.t_end=1.0", "output.every_time=0.5", *sets]))
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert reason in lines[0] and hint in lines[0] and str(out / "run.h5") in lines[0]
    with check_intact(out / "run.h5", 1) as f:
        assert f.attrs["status"] == "failed" and reason in f.attrs["stop_reason"]
    assert "failed" in _run("inspect", out).stdout


# -- 5. disk and files ---------------------------------------------------------------------
def test_output_below_a_regular_file_is_refused(tmp_path):
    (tmp_path / "file").write_text("")
    before = _tree(tmp_path)
    proc = _run("run", BAD / "valid.toml", "-o", tmp_path / "file" / "run", "--quiet")
    assert_one_line_error(proc, "output.dir", "cannot create output directory", "Not a directory")
    assert _tree(tmp_path) == before


def _file_size_limit(n_bytes: int):
    """preexec_fn: writes past n_bytes fail with EFBIG, as they would with ENOSPC on a full disk."""
    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (n_bytes, n_bytes))
    return limit


def test_disk_full_keeps_the_earlier_snapshots(tmp_path):
    out = tmp_path / "run"
    sets = ["grid.shape=[33,33]", "time.t_end=10", "output.every_time=0.5", "time.steady_tol=0"]
    proc = subprocess.run(_command("run", GAUSS2D, "-o", out, "--quiet", *_sets(sets)), capture_output=True,
                          text=True, timeout=WAIT_S, preexec_fn=_file_size_limit(400_000))
    assert proc.returncode == 1 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr[-2000:]
    with check_intact(out / "run.h5", 2) as f:
        assert f.attrs["status"] == "failed"


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_read_only_output_directory_is_refused(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir(mode=0o500)
    try:
        proc = _run("run", BAD / "valid.toml", "-o", folder / "run", "--quiet")
        assert_one_line_error(proc, "output.dir", "cannot create output directory")
    finally:
        folder.chmod(0o700)
