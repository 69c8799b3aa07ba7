"""pma_solver: optimal transport maps by the parabolic Monge-Ampere flow on Cartesian grids."""
from __future__ import annotations

__version__ = "0.1.0"


def _configure_numba_cache() -> None:
    """Put numba's disk cache in a folder keyed by a hash of every kernel source file.

    numba invalidates a cached function when its own file changes, not when a helper it
    inlines from another file changes; keying the folder on all kernel sources makes an
    edited or upgraded kernel recompile instead of silently loading stale machine code.
    """
    import hashlib
    import os
    import tempfile
    from pathlib import Path

    if os.environ.get("NUMBA_CACHE_DIR"):
        return
    here = Path(__file__).resolve().parent
    sources = sorted((here / "kernels").glob("*.py")) + [here / "density_kernels.py"]
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in sources)).hexdigest()[:16]
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    for root in (base, Path(tempfile.gettempdir())):
        folder = root / "pma_solver" / f"numba-{digest}"
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        if os.access(folder, os.W_OK):
            import numba
            numba.config.CACHE_DIR = str(folder)
            return


_configure_numba_cache()
from .sampling import load_map  # noqa: E402
