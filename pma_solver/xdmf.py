"""XDMF sidecar `run.xdmf`: lets ParaView/VisIt open run.h5 as a time series, copying no data.

One Uniform grid per snapshot in a Temporal Collection; every attribute is a HyperSlab
DataItem that points at one row of a dataset in run.h5 (referenced by relative path, so the
run directory can be moved as a whole).

Axis order: run.h5 stores arrays C-ordered as (x0, x1[, x2]). XDMF lists Dimensions slowest
axis first, and both VTK readers (ParaView's "Xdmf" and "Xdmf3") read ORIGIN_DXDY[DZ] in that
same slowest-first order (they reverse all three when building vtkImageData). So we write
Dimensions, origin and spacing all in storage order (x0, x1[, x2]): every node lands at the
right physical coordinates, and the fastest axis becomes the reader's X. In ParaView the
X, Y, Z axes therefore carry our x2, x1, x0 (3D) and the 2D grid lies in the Y-Z plane with
Y = x1, Z = x0. Reordering to X = x0 would need a transposed copy of every field.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import h5py

from .errors import CaseError
from .runfile import open_run_file, resolve_run_path

XDMF_NAME = "run.xdmf"


def _h5_item(parent: ET.Element, file_name: str, dataset: h5py.Dataset) -> None:
    """The whole dataset as an HDF DataItem (the source a HyperSlab selects from)."""
    item = ET.SubElement(parent, "DataItem", Dimensions=" ".join(map(str, dataset.shape)),
                         NumberType="Float", Precision="8", Format="HDF")
    item.text = f"{file_name}:{dataset.name}"


def _slab(parent: ET.Element, file_name: str, dataset: h5py.Dataset, lead: tuple[int, ...],
          shape: tuple[int, ...]) -> ET.Element:
    """HyperSlab selecting dataset[lead..., :, ...] (the grid-shaped block after the indices in `lead`)."""
    rank = dataset.ndim
    start = list(lead) + [0] * len(shape)
    count = [1] * len(lead) + list(shape)
    slab = ET.SubElement(parent, "DataItem", ItemType="HyperSlab", Type="HyperSlab",
                         Dimensions=" ".join(map(str, shape)))
    sel = ET.SubElement(slab, "DataItem", Dimensions=f"3 {rank}", Format="XML")
    sel.text = " ".join(map(str, start)) + "  " + " ".join(["1"] * rank) + "  " + " ".join(map(str, count))
    _h5_item(slab, file_name, dataset)
    return slab


def _attribute(grid: ET.Element, name: str) -> ET.Element:
    return ET.SubElement(grid, "Attribute", Name=name, AttributeType="Scalar", Center="Node")


def _snapshot_attributes(grid_el: ET.Element, f: h5py.File, file_name: str, k: int,
                         shape: tuple[int, ...]) -> None:
    """u, u_exact, u_error = u - u_exact (an XDMF Function of two slabs), map components, residual."""
    _slab(_attribute(grid_el, "u"), file_name, f["fields/u"], (k,), shape)
    if "exact/u" in f and f["exact/u"].shape[0] > k:
        _slab(_attribute(grid_el, "u_exact"), file_name, f["exact/u"], (k,), shape)
        func = ET.SubElement(_attribute(grid_el, "u_error"), "DataItem", ItemType="Function",
                             Function="$0 - $1", Dimensions=" ".join(map(str, shape)))
        _slab(func, file_name, f["fields/u"], (k,), shape)
        _slab(func, file_name, f["exact/u"], (k,), shape)
    if "fields/map" in f:
        for c in range(len(shape)):
            _slab(_attribute(grid_el, f"map_x{c}"), file_name, f["fields/map"], (k, c), shape)
    if "fields/residual" in f:
        _slab(_attribute(grid_el, "residual"), file_name, f["fields/residual"], (k,), shape)


def build_xdmf(f: h5py.File, file_name: str) -> ET.Element:
    """The XDMF tree for an open run file whose grid is 2D or 3D."""
    g = f["grid"].attrs
    dim = int(g["dim"])
    shape = tuple(int(n) for n in g["shape"])
    root = ET.Element("Xdmf", Version="2.0")
    domain = ET.SubElement(root, "Domain")
    series = ET.SubElement(domain, "Grid", Name="run", GridType="Collection", CollectionType="Temporal")
    times = f["scales/time"][()]
    dims_text = " ".join(map(str, shape))
    for k, t in enumerate(times):
        grid_el = ET.SubElement(series, "Grid", Name=f"snapshot_{k:05d}", GridType="Uniform")
        ET.SubElement(grid_el, "Time", Value=repr(float(t)))
        ET.SubElement(grid_el, "Topology", TopologyType=f"{dim}DCoRectMesh", Dimensions=dims_text)
        geom = ET.SubElement(grid_el, "Geometry", GeometryType="ORIGIN_DXDY" + ("DZ" if dim == 3 else ""))
        for values in (g["lower"], g["spacing"]):   # storage order: see the module docstring
            item = ET.SubElement(geom, "DataItem", Dimensions=str(dim), NumberType="Float",
                                 Precision="8", Format="XML")
            item.text = " ".join(repr(float(v)) for v in values)
        _snapshot_attributes(grid_el, f, file_name, k, shape)
    return root


def write_xdmf(run_file_path: str | Path) -> Path:
    """(Re)write run.xdmf next to a 2D/3D run file; returns its path."""
    path, f = open_run_file(run_file_path)
    with f:
        try:
            if int(f["grid"].attrs["dim"]) == 1:
                raise CaseError(f"{path}: 1D run; XDMF has no 1D structured topology (use pma plot instead)")
            root = build_xdmf(f, path.name)
        except KeyError as exc:
            raise CaseError(f"{path}: damaged run file ({exc})") from None
    ET.indent(root)
    out = path.parent / XDMF_NAME
    tmp = out.with_suffix(".xdmf.tmp")
    tmp.write_text('<?xml version="1.0" ?>\n<!DOCTYPE Xdmf SYSTEM "Xdmf.dtd" []>\n'
                   + ET.tostring(root, encoding="unicode") + "\n")
    tmp.replace(out)    # a reader never sees a half-written sidecar
    return out


def on_run_end(run_dir) -> Path | None:
    """End-of-run hook (pma_solver.runner.END_OF_RUN_HOOKS): write the sidecar for 2D/3D runs."""
    run_file = Path(getattr(run_dir, "run_file", run_dir))
    with h5py.File(resolve_run_path(run_file), "r", locking=False) as f:
        if int(f["grid"].attrs["dim"]) == 1:
            return None
    return write_xdmf(run_file)
