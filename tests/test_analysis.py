"""pma convergence, pma plot and the postprocess/ scripts, on tiny real runs."""
import csv
import importlib.util
import json
import math
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest
from matplotlib.image import imread

from conftest import CASES, ROOT, run_pma
from pma_solver.cli import main as pma_main
from pma_solver.convergence import lsq_slope, observed_orders, parse_shapes
from pma_solver.errors import CaseError
from pma_solver.plotting import PLOTS, make_plot, plot_run

TINY = {  # dimension -> (case, overrides): a few snapshots, seconds to run
    1: ("gauss1d", ["grid.shape=[17]", "time.t_end=0.5", "output.every_time=0.25"]),
    2: ("gauss2d_aniso", ["grid.shape=[17,17]", "time.t_end=0.5", "output.every_time=0.25"]),
    3: ("gauss3d", ["grid.shape=[9,9,9]", "time.t_end=0.5", "output.every_time=0.25"]),
}
TORUS = CASES / "torus2d.toml"


def _sets(items):
    return [a for s in items for a in ("--set", s)]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One tiny run per dimension, all storing u, map and residual."""
    out = {}
    for dim, (name, sets) in TINY.items():
        out[dim] = tmp_path_factory.mktemp(f"run{dim}d") / "run"
        assert pma_main(["run", str(CASES / f"{name}.toml"), "-o", str(out[dim]), "--quiet",
                         *_sets(sets + ['output.fields=["u","map","residual"]'])]) == 0
    return out


@pytest.fixture(scope="module")
def torus_study(tmp_path_factory):
    """fd2 on torus2d at 8, 16, 32 (given out of order): (folder, stdout). Read-only for tests."""
    out = tmp_path_factory.mktemp("torus") / "study"
    return out, run_pma("convergence", TORUS, "--shapes", "16,8,32", "-o", out, check=0).stdout


def _in_process(capsys, *args):
    """The CLI in this process (fast for bad input): (exit code, stderr lines)."""
    code = pma_main([str(a) for a in args])
    return code, capsys.readouterr().err.strip().splitlines()


def _assert_real_image(path, fig_size_in=None, dpi=120):
    img = imread(path)
    assert img.ndim == 3 and img.shape[0] > 200 and img.shape[1] > 200
    if fig_size_in is not None:
        assert img.shape[:2] == (round(fig_size_in[1] * dpi), round(fig_size_in[0] * dpi))
    assert img[..., :3].std() > 0.05        # not blank


# -- orders and input parsing (no runs) ------------------------------------------------------
def test_observed_orders_and_slope_on_synthetic_errors():
    h = [0.2, 0.1, 0.05, 0.025]
    assert observed_orders(h, [3 * x**2 for x in h]) == pytest.approx([None, 2, 2, 2])
    assert lsq_slope(h, [3 * x**2 for x in h]) == pytest.approx(2.0)
    # mixed orders: 1 then 2 then 1; the slope is the least-squares fit through all four
    e = [1.0, 0.5, 0.125, 0.0625]
    assert observed_orders(h, e) == pytest.approx([None, 1, 2, 1])
    assert lsq_slope(h, e) == pytest.approx(np.polyfit(np.log(h), np.log(e), 1)[0])
    # a failed level (None) is skipped: the order is taken against the previous usable level
    orders = observed_orders(h, [1.0, None, 1 / 16, 1 / 64])
    assert orders[1] is None and orders[2] == pytest.approx(2) and orders[3] == pytest.approx(2)
    assert lsq_slope(h, [1.0, None, None, None]) is None
    assert observed_orders([0.1, 0.05], [1e-3, 0.0])[1] is None      # log(0): undefined, not a crash


def test_parse_shapes():
    assert parse_shapes("17,33", 2) == [(17, 17), (33, 33)]
    assert parse_shapes(" 9x17 , 17x33 ", 2) == [(9, 17), (17, 33)]
    assert parse_shapes("9,9x9x17", 3) == [(9, 9, 9), (9, 9, 17)]
    for bad in ("17,abc", "17x17x17,33", "17", "17,17", "", "2,4", "17,-33"):
        with pytest.raises(CaseError):
            parse_shapes(bad, 2)


# -- pma convergence ---------------------------------------------------------------------------
def test_convergence_on_torus2d_is_second_order_and_writes_every_output(torus_study, tmp_path, pma):
    out, stdout = torus_study
    study = json.loads((out / "convergence.json").read_text())
    levels = study["levels"]
    assert [lv["shape"] for lv in levels] == [[8, 8], [16, 16], [32, 32]]     # sorted coarse to fine
    assert all(lv["status"] == "steady" and not lv["reused"] for lv in levels)
    assert [lv["h"] for lv in levels] == pytest.approx([1 / 8, 1 / 16, 1 / 32])
    assert study["slopes"]["map_l2"] > 1.8 and levels[-1]["orders"]["map_l2"] > 1.8
    assert study["scheme"] == "fd2" and study["at"] == "final"
    with h5py.File(out / "32x32" / "run.h5", "r", locking=False) as f:   # errors come from the run file
        assert levels[-1]["errors"]["map_l2"] == f["errors/map_l2"][-1]
    rows = list(csv.DictReader((out / "convergence.csv").open()))
    assert [r["shape"] for r in rows] == ["8x8", "16x16", "32x32"] and rows[0]["order_map_l2"] == ""
    assert float(rows[2]["order_map_l2"]) == pytest.approx(levels[2]["orders"]["map_l2"])
    md = (out / "convergence.md").read_text()
    assert "| shape | h | t | map L2 | order |" in md and "| 32x32 |" in md and "least-squares slope" in md
    assert md.strip() in stdout                                        # the table is printed too
    _assert_real_image(out / "convergence.png", (6.4, 4.8))


def test_convergence_reuses_complete_levels_of_an_unchanged_case(torus_study, tmp_path, capsys):
    out = tmp_path / "study"
    shutil.copytree(torus_study[0], out)

    def reused(*sets):
        assert pma_main(["convergence", str(TORUS), "--shapes", "8,16,32", "-o", str(out), "--quiet", *sets]) == 0
        return [lv["reused"] for lv in json.loads((out / "convergence.json").read_text())["levels"]]

    assert reused() == [True, True, True]
    assert capsys.readouterr().out == torus_study[1]
    with h5py.File(out / "16x16" / "run.h5", "a") as f:     # an incomplete (killed) level is rerun
        f.attrs["status"] = "running"
    assert reused("--set", "time.cfl=0.9") == [True, False, True]   # 0.9 is the case's own value
    assert reused("--set", "time.cfl=0.8") == [False, False, False]


def test_convergence_at_a_time_uses_that_snapshot(tmp_path):
    out = tmp_path / "at"
    assert pma_main(["convergence", str(TORUS), "--shapes", "8,16", "--at", "0.1", "-o", str(out), "--quiet"]) == 0
    study = json.loads((out / "convergence.json").read_text())
    assert study["at"] == 0.1 and all(lv["time"] == pytest.approx(0.1) for lv in study["levels"])
    with h5py.File(out / "16x16" / "run.h5", "r", locking=False) as f:
        k = int(np.argmin(abs(f["scales/time"][()] - 0.1)))
        assert study["levels"][1]["errors"]["u_l2"] == f["errors/u_l2"][k] and k < f["scales/time"].shape[0] - 1


def test_a_level_that_fails_is_reported_not_a_crash(tmp_path, pma):
    # The initial potential is NaN only at x0 = 0.1875, a node of the 33-point grid alone.
    out = tmp_path / "fail"
    proc = pma("convergence", CASES / "mixture1d.toml", "--shapes", "9,17,33", "-o", out, "--quiet",
               *_sets(["initial.kind=expression", 'initial.potential="0.5*x0**2 + 0*sqrt(abs(x0 - 0.1875) - 1e-9)"',
                       "time.t_end=0.5", "output.every_time=0.25"]), check=1)
    assert "Traceback" not in proc.stderr
    levels = json.loads((out / "convergence.json").read_text())["levels"]
    assert [lv["status"] for lv in levels] == ["completed", "completed", "failed"]
    assert levels[2]["errors"] is None and "NaN" in levels[2]["stop_reason"]
    assert levels[1]["orders"]["map_l2"] is not None and levels[2]["orders"]["map_l2"] is None
    assert "33: failed" in proc.stdout and (out / "convergence.png").is_file()


@pytest.mark.parametrize("args, message", [
    (["--shapes", "8,banana"], "--shapes: bad entry 'banana'"),
    (["--shapes", "8,16", "--at", "0.15"], "not a snapshot time"),
    (["--shapes", "8,16", "--at", "soon"], "--at: expected 'final' or a time"),
    (["--shapes", "8,16", "--set", "grid.nodes=3"], "grid.nodes"),
])
def test_convergence_bad_input_is_one_line(tmp_path, capsys, args, message):
    code, err = _in_process(capsys, "convergence", TORUS, "-o", tmp_path, *args)
    assert code == 2 and len(err) == 1 and message in err[0]
    assert not (tmp_path / "convergence.json").exists()


def test_convergence_needs_an_exact_solution(write_case, tmp_path, pma):
    text = TORUS.read_text()
    case = write_case(text[:text.index("[exact]")] + text[text.index("[scheme]"):])
    proc = pma("convergence", case, "--shapes", "8,16", "-o", tmp_path / "s", check=2)
    assert "exact solution" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.slow
@pytest.mark.parametrize("scheme, shapes, low", [("fd2", "16,32,64,128", 1.9), ("wide_stencil", "16,32,64", 1.7)])
def test_torus2d_convergence_on_finer_grids(tmp_path, pma, scheme, shapes, low):
    # README table: fd2 slope 1.99; wide_stencil r=1 orders 1.78, 1.85 (1.90 at 128)
    pma("convergence", TORUS, "--shapes", shapes, "-o", tmp_path, "--quiet", "--set", f"scheme.name={scheme}", check=0)
    study = json.loads((tmp_path / "convergence.json").read_text())
    assert low < study["slopes"]["map_l2"] < 2.2


# -- pma plot ---------------------------------------------------------------------------------
@pytest.mark.parametrize("dim", sorted(TINY))
@pytest.mark.parametrize("what", sorted(PLOTS))
def test_every_plot_kind_in_every_dimension_is_a_real_image(runs, dim, what, tmp_path):
    out = plot_run(runs[dim], what, None, tmp_path / f"{what}.png")
    _assert_real_image(out)


def test_plot_axes_are_labelled(runs):
    fig = make_plot(runs[2], "potential")
    ax = fig.axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("x0", "x1")
    assert fig.axes[1].get_ylabel() == "φ"                      # the colour bar
    assert "t = 0.5" in fig.get_suptitle()
    diag = make_plot(runs[1], "diagnostics")
    labels = {ax.get_ylabel() for ax in diag.axes if ax.get_visible()}
    assert {"residual max", "time step dt", "convexity margin", "map error L²(p)"} <= labels
    assert all(ax.get_xlabel() == "time t" for ax in diag.axes if ax.get_visible())
    assert {ax.get_yscale() for ax in diag.axes if ax.get_ylabel() in ("residual max", "time step dt")} == {"log"}
    fig3 = make_plot(runs[3], "potential")
    assert [ax.get_title() for ax in fig3.axes if ax.get_title()] == ["x2 = 0", "x1 = 0", "x0 = 0"]


def test_pma_plot_cli_default_names_steps_and_formats(runs, pma, tmp_path):
    run = runs[2]
    assert pma("plot", run, check=0).stdout.strip() == str(run / "potential.png")
    assert pma("plot", run / "run.h5", "--step", "-3", check=0).stdout.strip() == str(run / "potential_step0.png")
    assert not np.array_equal(imread(run / "potential_step0.png"), imread(run / "potential.png"))
    plot_run(run, "error", None, tmp_path / "e.pdf")
    plot_run(run, "residual", None, tmp_path / "r.svg")
    assert (tmp_path / "e.pdf").read_bytes()[:4] == b"%PDF"
    assert b"<svg" in (tmp_path / "r.svg").read_bytes()[:2000]


def test_plotting_reads_run_files_without_importing_the_solver(runs):
    code = ("import sys; from pma_solver.plotting import make_plot; "
            f"[make_plot({str(runs[2])!r}, w) for w in ('potential', 'map', 'diagnostics')]; "
            "print(sorted(m for m in sys.modules if m.startswith('pma_solver')))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    for solver_module in ("kernels", "operator", "schemes", "runner", "case"):
        assert f"pma_solver.{solver_module}" not in loaded


@pytest.mark.parametrize("args, message", [
    (["{missing}"], "no run file at"),
    (["{run}", "--what", "contour"], "--what 'contour': choose one of"),
    (["{run}", "--step", "3"], "--step 3: "),
    (["{run}", "-o", "{tmp}/x.jpg"], "unsupported figure format '.jpg'"),
    (["{plain}"], "is not a pma_solver run file"),
    (["{damaged}"], "damaged run file"),
])
def test_pma_plot_bad_input_is_one_line(runs, capsys, tmp_path, args, message):
    plain, damaged = tmp_path / "plain.h5", tmp_path / "damaged.h5"
    h5py.File(plain, "w").close()
    shutil.copy(runs[2] / "run.h5", damaged)
    with h5py.File(damaged, "a") as f:
        del f["scales"]
    fill = dict(missing=tmp_path / "none", run=runs[1], tmp=tmp_path, plain=plain, damaged=damaged)
    code, err = _in_process(capsys, "plot", *[a.format(**fill) for a in args])
    assert code == 2 and len(err) == 1 and message in err[0]


def test_plots_that_need_missing_data_say_which(write_case, tmp_path, pma, capsys):
    text = TORUS.read_text()
    case = write_case(text[:text.index("[exact]")] + text[text.index("[scheme]"):])
    pma("run", case, "-o", tmp_path / "r", "--quiet",
        *_sets(["grid.shape=[8,8]", "time.t_end=0.02", "output.every_time=0.01"]), check=0)
    code, err = _in_process(capsys, "plot", tmp_path / "r", "--what", "error")
    assert code == 2 and err == [f"error: {tmp_path / 'r' / 'run.h5'} has no exact/map (the case has no exact solution)"]
    code, err = _in_process(capsys, "plot", tmp_path / "r", "--what", "residual")
    assert code == 2 and "fields/residual" in err[0] and "[output] fields" in err[0]


# -- postprocess/ ------------------------------------------------------------------------------
def _script(name, *args):
    """Run postprocess/<name>'s main() in this process (the scripts are not a package)."""
    spec = importlib.util.spec_from_file_location(name[:-3], ROOT / "postprocess" / name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main([str(a) for a in args]) == 0


def test_postprocess_scripts(runs, torus_study, tmp_path):
    a, b = torus_study[0], tmp_path / "b"
    assert pma_main(["convergence", str(TORUS), "--shapes", "8,16", "-o", str(b), "--quiet",
                     "--set", "scheme.name=wide_stencil"]) == 0
    _script("plot_convergence.py", a / "convergence.json", b / "convergence.json", "-o", tmp_path / "c.png")
    _assert_real_image(tmp_path / "c.png", (6.4, 4.8))
    _script("plot_error_vs_time.py", runs[2], a / "16x16", "--labels", "gauss,torus", "-o", tmp_path / "e.png")
    _assert_real_image(tmp_path / "e.png", (10.0, 7.0))
    from PIL import Image
    for dim, field in ((1, "u"), (2, "map_error"), (3, "displacement")):
        gif = tmp_path / f"anim{dim}.gif"
        _script("animate_snapshots.py", runs[dim], "-o", gif, "--field", field)
        with Image.open(gif) as im, h5py.File(runs[dim] / "run.h5", "r", locking=False) as f:
            assert im.n_frames == f["scales/time"].shape[0] == 3
    assert math.isfinite(json.loads((b / "convergence.json").read_text())["slopes"]["map_l2"])
