"""The run.xdmf sidecar, opened with a real XDMF reader (VTK's vtkXdmfReader, as in ParaView).

Grids are asymmetric on purpose (nx != ny != nz, non-zero origin, unequal spacing, fields
without symmetry), so a transposed axis or a swapped origin/spacing would move values to
the wrong coordinates and fail the node checks.
"""
import shutil
import xml.etree.ElementTree as ET

import h5py
import numpy as np
import pytest

from conftest import CASES

vtk_xdmf = pytest.importorskip("vtkmodules.vtkIOXdmf2", reason="the vtk package provides the XDMF reader")
from vtkmodules.vtkCommonExecutionModel import vtkStreamingDemandDrivenPipeline  # noqa: E402

RUNS = {  # dimension -> (case, overrides): asymmetric boxes, shapes and spacings
    2: ("gauss2d_aniso", ["grid.shape=[9,13]", "grid.lower=[-3.0,-2.0]", "grid.upper=[3.0,3.5]"]),
    3: ("gauss3d", ["grid.shape=[9,11,7]", "grid.lower=[-3.0,-2.5,-2.0]", "grid.upper=[3.0,2.5,3.5]"]),
}
NODES = {2: [(1, 2), (7, 1), (0, 12)], 3: [(1, 2, 3), (7, 1, 5), (0, 10, 6)]}


def _sets(items):
    return [a for s in items for a in ("--set", s)]


@pytest.fixture(scope="module", params=sorted(RUNS))
def run_dir(request, tmp_path_factory):
    from conftest import run_pma
    name, sets = RUNS[request.param]
    out = tmp_path_factory.mktemp(f"xdmf{request.param}d") / "run"
    run_pma("run", CASES / f"{name}.toml", "-o", out, "--quiet",
            *_sets(sets + ["time.t_end=0.5", "output.every_time=0.25", 'output.fields=["u","map","residual"]']),
            check=0)
    return out


def _read(xdmf_path, time_value):
    reader = vtk_xdmf.vtkXdmfReader()
    reader.SetFileName(str(xdmf_path))
    reader.UpdateInformation()
    times = reader.GetOutputInformation(0).Get(vtkStreamingDemandDrivenPipeline.TIME_STEPS())
    reader.UpdateTimeStep(time_value)
    return times, reader.GetOutputDataObject(0)


def test_end_of_run_hook_writes_a_sidecar_that_references_run_h5_relatively(run_dir):
    text = (run_dir / "run.xdmf").read_text()
    root = ET.fromstring(text.split("\n", 2)[2])          # skip the XML and DOCTYPE lines
    with h5py.File(run_dir / "run.h5", "r", locking=False) as f:
        n = f["scales/time"].shape[0]
        dim = int(f["grid"].attrs["dim"])
    grids = root.findall("./Domain/Grid/Grid")
    assert len(grids) == n and root.find("./Domain/Grid").get("CollectionType") == "Temporal"
    assert all(g.find("Topology").get("TopologyType") == f"{dim}DCoRectMesh" for g in grids)
    sources = {item.text for item in root.iter("DataItem") if item.get("Format") == "HDF"}
    assert sources == {"run.h5:/fields/u", "run.h5:/exact/u", "run.h5:/fields/map", "run.h5:/fields/residual"}
    assert str(run_dir) not in text     # relative path only: the run folder can move


def test_vtk_reader_puts_the_hdf5_values_at_the_right_coordinates(run_dir, tmp_path):
    moved = tmp_path / "moved"
    shutil.copytree(run_dir, moved)      # also checks that the relative HDF5 path resolves
    with h5py.File(moved / "run.h5", "r", locking=False) as f:
        times = f["scales/time"][()]
        lower, spacing = f["grid"].attrs["lower"], f["grid"].attrs["spacing"]
        k = 1                            # a middle snapshot: the time index must select it
        u, ue, m, r = f["fields/u"][k], f["exact/u"][k], f["fields/map"][k], f["fields/residual"][k]
    dim = u.ndim
    read_times, grid = _read(moved / "run.xdmf", times[k])
    assert np.allclose(read_times, times)
    # The documented convention: the reader's X, Y, Z carry x2, x1, x0 (3D); Y, Z carry x1, x0 (2D).
    assert grid.GetDimensions() == (tuple(u.shape[::-1]) if dim == 3 else (1,) + tuple(u.shape[::-1]))
    data = grid.GetPointData()
    assert u.shape != u.transpose().shape and not np.allclose(u, u[::-1])   # the test can see a flip
    for node in NODES[dim]:
        x = lower + spacing * np.array(node)
        where = [*x[::-1], 0.0][:3] if dim == 3 else [0.0, x[1], x[0]]
        pid = grid.FindPoint(where)
        assert np.allclose(grid.GetPoint(pid), where, atol=1e-12), (node, grid.GetPoint(pid), where)
        assert data.GetArray("u").GetValue(pid) == pytest.approx(u[node], abs=1e-14)
        assert data.GetArray("u_exact").GetValue(pid) == pytest.approx(ue[node], abs=1e-14)
        assert data.GetArray("u_error").GetValue(pid) == pytest.approx(u[node] - ue[node], abs=1e-13)
        assert data.GetArray("residual").GetValue(pid) == pytest.approx(r[node], abs=1e-14)
        for c in range(dim):
            assert data.GetArray(f"map_x{c}").GetValue(pid) == pytest.approx(m[(c,) + node], abs=1e-14)


def test_pma_xdmf_rewrites_the_sidecar(run_dir, pma):
    (run_dir / "run.xdmf").unlink()
    proc = pma("xdmf", run_dir, check=0)
    assert proc.stdout.strip() == str(run_dir / "run.xdmf") and (run_dir / "run.xdmf").is_file()


def test_1d_runs_get_no_sidecar_and_pma_xdmf_says_why(tmp_path, pma):
    pma("run", CASES / "gauss1d.toml", "-o", tmp_path, "--quiet",
        *_sets(["grid.shape=[17]", "time.t_end=0.5", "output.every_time=0.25"]), check=0)
    assert not (tmp_path / "run.xdmf").exists()
    proc = pma("xdmf", tmp_path, check=2)
    assert "1D" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_pma_xdmf_on_a_missing_run_is_one_line(tmp_path, pma):
    proc = pma("xdmf", tmp_path / "nothing", check=2)
    assert proc.stderr.startswith("error: no run file") and "Traceback" not in proc.stderr
