"""Atomic checkpoints: write a temporary file in the run directory, fsync, rename."""
from __future__ import annotations

import json
import os
from pathlib import Path

import h5py
import numpy as np

from .errors import CaseError


def save_checkpoint(path: Path, u: np.ndarray, scalars: dict, identity: dict) -> None:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with h5py.File(tmp, "w") as f:
        f.create_dataset("u", data=u)
        for key, value in scalars.items():
            f.attrs[key] = value
        f.attrs["identity"] = json.dumps(identity, sort_keys=True)
        f.flush()
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def load_checkpoint(path: Path, identity: dict) -> tuple[np.ndarray, dict]:
    """Read a checkpoint; refuse (CaseError) when the grid or scheme differ from the case."""
    path = Path(path)
    if not path.is_file():
        raise CaseError(f"cannot resume: no checkpoint at {path}")
    try:
        with h5py.File(path, "r", locking=False) as f:
            u = f["u"][()]
            scalars = {k: f.attrs[k] for k in f.attrs if k != "identity"}
            stored = json.loads(f.attrs["identity"])
    except (OSError, KeyError) as exc:
        raise CaseError(f"cannot resume: checkpoint {path} is unreadable ({exc})") from None
    for key in sorted(identity):
        if stored.get(key) != json.loads(json.dumps(identity[key])):
            raise CaseError(f"cannot resume: the case changed its {key} since the checkpoint "
                            f"(was {stored.get(key)}, now {identity[key]}); rerun with --force",
                            table=key if key in ("grid", "scheme", "boundary") else None)
    return u, scalars
