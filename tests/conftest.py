import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CASES = ROOT / "cases"


def run_pma(*args, cwd=None, timeout=600, check=None):
    """Run the real CLI in a subprocess; returns CompletedProcess (text mode)."""
    env = dict(os.environ)
    env.setdefault("PYTHONUNBUFFERED", "1")
    proc = subprocess.run([sys.executable, "-m", "pma_solver", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, env=env)
    if check is not None and proc.returncode != check:
        raise AssertionError(f"exit {proc.returncode} (expected {check})\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


@pytest.fixture
def pma():
    return run_pma


@pytest.fixture
def write_case(tmp_path):
    def _write(text: str, name: str = "case.toml") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path
    return _write
