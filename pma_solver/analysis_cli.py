"""Analysis sub-commands: plot, convergence, xdmf (issue 6)."""
from __future__ import annotations


def add_commands(sub) -> None:
    """Register `pma plot`, `pma convergence`, `pma xdmf` on the sub-parser collection."""
