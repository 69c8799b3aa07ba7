"""Reading tabulated density values from .npy, HDF5 or grayscale PNG files."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .config import Table


def read_grid_values(t: Table, file: str, dataset: str | None, dim: int, base: Path | None) -> np.ndarray:
    path = Path(file)
    if not path.is_absolute() and base is not None:
        path = base / path
    if not path.is_file():
        raise t.error("file", f"file not found: {path}")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            values = np.load(path, allow_pickle=False)
        elif suffix in (".h5", ".hdf5"):
            import h5py
            if not dataset:
                raise t.error("dataset", "an HDF5 grid file needs `dataset` (the path inside the file)")
            with h5py.File(path, "r", locking=False) as f:
                if dataset not in f or not hasattr(f[dataset], "shape"):
                    raise t.error("dataset", f"no dataset {dataset!r} in {path}")
                values = f[dataset][()]
        elif suffix == ".png":
            values = _read_png(t, path)
        else:
            raise t.error("file", f"unsupported file type {suffix!r} (allowed: .npy, .h5, .hdf5, .png)")
    except (OSError, ValueError) as exc:
        raise t.error("file", f"cannot read {path}: {exc}") from None
    values = np.asarray(values)
    if values.dtype.kind not in "fiub":
        raise t.error("file", f"{path} holds {values.dtype} values, expected numbers")
    values = values.astype(float)
    if values.ndim != dim:
        raise t.error("file", f"{path} holds a {values.ndim}D array, the grid is {dim}D")
    if any(n < 2 for n in values.shape):
        raise t.error("file", f"{path}: every axis needs at least 2 values, shape {values.shape}")
    if not np.all(np.isfinite(values)) or np.any(values < 0):
        raise t.error("file", f"{path}: density values must be finite and non-negative")
    if not values.max() > 0:
        raise t.error("file", f"{path}: density values are all zero")
    return values


def _read_png(t: Table, path: Path) -> np.ndarray:
    """Grayscale values indexed (x0, x1): column = x0, bottom row = lowest x1."""
    import matplotlib.image as mpimg
    img = np.asarray(mpimg.imread(path), dtype=float)
    if img.ndim == 3:
        if img.shape[2] == 4:
            if np.any(img[..., 3] < 1.0):
                raise t.error("file", f"{path}: PNG has transparency; save it as grayscale or RGB")
            img = img[..., :3]
        if img.shape[2] != 3:
            raise t.error("file", f"{path}: PNG with {img.shape[2]} channels is not grayscale-convertible")
        img = img @ np.array([0.299, 0.587, 0.114])
    elif img.ndim != 2:
        raise t.error("file", f"{path}: PNG is not grayscale-convertible")
    return np.ascontiguousarray(img[::-1, :].T)
