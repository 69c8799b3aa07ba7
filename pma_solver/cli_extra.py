"""Analysis commands (plot, convergence, sample, xdmf) registered on the `pma` parser."""
from __future__ import annotations


def add_commands(sub) -> None:
    return None
