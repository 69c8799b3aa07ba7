"""The `pma` command line as users run it: real subprocesses, real run files."""
import json

import h5py
import numpy as np
import pytest

from conftest import CASES

BUNDLED = sorted(p.stem for p in CASES.glob("*.toml"))
SMALL = {  # quick settings per bundled case: (overrides)
    "gauss1d": ["grid.shape=[33]", "time.t_end=2.0", "output.every_time=0.5"],
    "mixture1d": ["grid.shape=[33]", "time.t_end=1.0", "output.every_time=0.5"],
    "gauss2d_aniso": ["grid.shape=[17,17]", "time.t_end=1.0", "output.every_time=0.5"],
    "gauss3d": ["grid.shape=[9,9,9]", "time.t_end=0.5", "output.every_time=0.25"],
    "product2d": ["grid.shape=[17,17]", "time.t_end=0.5", "output.every_time=0.25"],
    "torus2d": ["grid.shape=[16,16]", "time.t_end=0.05", "output.every_time=0.01"],
    "wide2d_aniso": ["grid.shape=[17,17]"],
    "wide3d": ["grid.shape=[9,9,9]", "time.t_end=0.5", "output.every_time=0.25"],
    "gauss_to_disk": ["grid.shape=[17,17]", "time.t_end=0.5", "output.every_time=0.25"],
    "mixture1d_sep": ["grid.shape=[65]", "time.t_end=0.1", "output.every_time=0.05"],
    "mixture2d_sep": ["grid.shape=[25,25]", "time.t_end=0.1", "output.every_time=0.05"],
    "mixture2d_implicit": ["grid.shape=[25,25]", "time.t_end=2.0", "output.every_time=1.0"],
    "ma_smooth_dirichlet": ["grid.shape=[17,17]"],
    "mixture3d": ["grid.shape=[9,9,9]", "time.t_end=0.1", "output.every_time=0.05"],
    "banana2d": ["grid.shape=[17,17]", "time.t_end=0.1", "output.every_time=0.05"],
    "torus_bimodal2d": ["grid.shape=[16,16]", "time.t_end=0.01", "output.every_time=0.005"],
    "torus_bimodal2d_unnormalized": ["grid.shape=[16,16]", "time.t_end=0.01", "output.every_time=0.005"],
    "transport1d": ["grid.shape=[33]"],
    "transport_box2d": ["grid.shape=[17,17]"],
    "transport_parallelogram": ["grid.shape=[17,17]"],
    "transport_square_disk": ["grid.shape=[17,17]"],
    "transport_images": ["grid.shape=[33,33]"],
    "transport_manufactured": ["grid.shape=[17,17]"],
}
NO_CLOSED_FORM = {"transport_square_disk", "transport_images"}   # no exact/ or errors/ in their run files


def _sets(items):
    return [a for s in items for a in ("--set", s)]


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_case_runs_and_writes_the_contract_layout(name, tmp_path, pma):
    sets = SMALL.get(name, ["time.t_end=0.2"])
    proc = pma("run", CASES / f"{name}.toml", "-o", tmp_path / "run", "--quiet", *_sets(sets), check=0)
    assert proc.stderr == ""
    with h5py.File(tmp_path / "run" / "run.h5", "r", locking=False) as f:
        assert f.attrs["format"] == "pma_solver.run" and f.attrs["format_version"] == 1
        assert f.attrs["status"] in ("completed", "steady")
        for key in ("pma_solver_version", "stop_reason", "n_steps", "t_final", "wall_time_s",
                    "compile_time_s", "threads", "created_utc"):
            assert key in f.attrs
        assert "toml" in f["case"].attrs and json.loads(f["case"].attrs["resolved"])["grid"]
        shape = tuple(f["grid"].attrs["shape"])
        dim = int(f["grid"].attrs["dim"])
        assert all(f[f"grid/x{k}"].shape == (shape[k],) for k in range(dim))
        n = f["scales/time"].shape[0]
        assert n >= 2 and f["scales/step"].shape == (n,) and f["scales/dt"].shape == (n,)
        assert f["fields/u"].shape == (n,) + shape
        assert f["fields/map"].shape == (n, dim) + shape
        assert f["fields/u"].compression == "gzip" and f["fields/u"].chunks == (1,) + shape
        times = f["scales/time"][()]
        assert np.all(np.diff(times) > 0)
        resolved = json.loads(f["case"].attrs["resolved"])
        if resolved["time"]["stepper"] != "steady":     # the steady solver runs in pseudo-time
            every = resolved["output"]["every_time"]
            assert np.allclose(times[:-1], every * np.arange(n - 1), rtol=0, atol=1e-12)  # hit exactly
        if name in NO_CLOSED_FORM:
            assert "exact" not in f and "errors" not in f
        else:
            assert f["exact/u"].shape == (n,) + shape
            for key in ("u_linf", "u_l2", "map_linf", "map_l2"):
                assert f[f"errors/{key}"].shape == (n,)
        for key in ("step", "time", "dt", "residual_max", "residual_l1", "kl", "convexity_margin"):
            assert key in f["diagnostics"]
        assert np.min(f["diagnostics/convexity_margin"][()]) > 0


def test_inspect_reports_status_and_errors(tmp_path, pma):
    pma("run", CASES / "gauss1d.toml", "-o", tmp_path, "--quiet", *_sets(SMALL["gauss1d"]), check=0)
    text = pma("inspect", tmp_path, check=0).stdout
    assert "completed" in text and "map L2" in text
    info = json.loads(pma("inspect", tmp_path / "run.h5", "--json", check=0).stdout)
    assert info["status"] == "completed" and info["final_errors"]["map_l2"] < 1e-2


def test_set_override_is_stored_and_applied(tmp_path, pma):
    pma("run", CASES / "gauss1d.toml", "-o", tmp_path, "--quiet", *_sets(SMALL["gauss1d"]),
        "--set", "scheme.delta=0.01", check=0)
    with h5py.File(tmp_path / "run.h5", "r", locking=False) as f:
        assert json.loads(f["case"].attrs["resolved"])["scheme"]["delta"] == 0.01
        assert f["grid"].attrs["shape"].tolist() == [33]


def test_existing_output_needs_force(tmp_path, pma):
    args = ("run", CASES / "gauss1d.toml", "-o", tmp_path, "--quiet", *_sets(SMALL["gauss1d"]))
    pma(*args, check=0)
    proc = pma(*args, check=2)
    assert "--force" in proc.stderr and "Traceback" not in proc.stderr
    pma(*args, "--force", check=0)


def test_validate_and_cases(pma):
    out = pma("validate", CASES / "gauss2d_aniso.toml", check=0).stdout
    assert "ok" in out
    listing = pma("cases", check=0).stdout
    assert all(name in listing for name in BUNDLED)


BAD = [
    ("schema_version = 1\n[grid]\nlower=[0.0]\nupper=[1.0]\nshape=[9]\n", "source", "missing table"),
    ("[grid]\n", "schema_version", "schema_version"),
    ("schema_version = 1\ngrid = 3\n", "grid", "expected a table"),
    ("schema_version = 1\n[gird]\n", "gird", "did you mean 'grid'"),
]


@pytest.mark.parametrize("text,where,what", BAD)
def test_bad_case_one_line_exit_2(text, where, what, write_case, pma):
    path = write_case(text)
    proc = pma("validate", path, check=2)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and where in lines[0] and what in lines[0] and str(path) in lines[0]
