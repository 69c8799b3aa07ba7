"""Sampling sub-command: pma sample (issue 8)."""
from __future__ import annotations


def add_commands(sub) -> None:
    """Register `pma sample` on the sub-parser collection."""
