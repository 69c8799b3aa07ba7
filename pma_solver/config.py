"""Typed access to one TOML table with precise error messages and did-you-mean hints.

Each consumer (grid, densities, schemes, steppers, ...) reads the keys it owns from a
`Table` and calls `done()`; unread keys are reported as unknown. The values actually used,
defaults included, accumulate in `resolved` so the run file can store the full configuration.
"""
from __future__ import annotations

import difflib
import json
import math
import re
from typing import Any

import numpy as np

from .errors import CaseError

REQUIRED = object()


def _hint(word: str, options) -> str:
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return type(value).__name__


class Table:
    """A view of one (possibly nested) TOML table."""

    def __init__(self, data: Any, path: str):
        if not isinstance(data, dict):
            raise CaseError(f"expected a table, got {type_name(data)}", table=path)
        self.data = data
        self.path = path
        self.read: set[str] = set()
        self.resolved: dict[str, Any] = {}

    def error(self, key: str | None, message: str) -> CaseError:
        return CaseError(message, table=self.path, key=key)

    def has(self, key: str) -> bool:
        return key in self.data

    def raw(self, key: str, default: Any = REQUIRED) -> Any:
        self.read.add(key)
        if key not in self.data:
            if default is REQUIRED:
                raise self.error(key, "missing required key")
            return default
        return self.data[key]

    # -- typed getters -------------------------------------------------------
    def string(self, key: str, default: Any = REQUIRED, choices=None) -> str:
        value = self.raw(key, default)
        if not isinstance(value, str):
            raise self.error(key, f"expected a string, got {type_name(value)}")
        if choices is not None and value not in choices:
            raise self.error(key, f"unknown value {value!r}{_hint(value, choices)}; "
                                  f"allowed: {', '.join(sorted(choices))}")
        self.resolved[key] = value
        return value

    def boolean(self, key: str, default: Any = REQUIRED) -> bool:
        value = self.raw(key, default)
        if not isinstance(value, bool):
            raise self.error(key, f"expected true or false, got {type_name(value)}")
        self.resolved[key] = value
        return value

    def integer(self, key: str, default: Any = REQUIRED, low: int | None = None,
                high: int | None = None) -> int:
        value = self.raw(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(key, f"expected an integer, got {type_name(value)}")
        if low is not None and value < low:
            raise self.error(key, f"must be at least {low}, got {value}")
        if high is not None and value > high:
            raise self.error(key, f"must be at most {high}, got {value}")
        self.resolved[key] = value
        return value

    def number(self, key: str, default: Any = REQUIRED, positive: bool = False,
               nonnegative: bool = False) -> float:
        value = self.raw(key, default)
        value = self._as_float(key, value)
        if positive and not value > 0:
            raise self.error(key, f"must be positive, got {value}")
        if nonnegative and not value >= 0:
            raise self.error(key, f"must be non-negative, got {value}")
        self.resolved[key] = value
        return value

    def _as_float(self, key: str, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.error(key, f"expected a number, got {type_name(value)}")
        value = float(value)
        if not math.isfinite(value):
            raise self.error(key, f"must be finite, got {value}")
        return value

    def vector(self, key: str, length: int | None = None, default: Any = REQUIRED) -> np.ndarray:
        value = self.raw(key, default)
        if not isinstance(value, list):
            raise self.error(key, f"expected an array of numbers, got {type_name(value)}")
        if length is not None and len(value) != length:
            raise self.error(key, f"expected {length} entries (the grid dimension), got {len(value)}")
        if not value:
            raise self.error(key, "array must not be empty")
        out = np.array([self._as_float(key, v) for v in value])
        self.resolved[key] = out.tolist()
        return out

    def int_vector(self, key: str, length: int | None = None, default: Any = REQUIRED) -> list[int]:
        value = self.raw(key, default)
        if not isinstance(value, list) or not value:
            raise self.error(key, f"expected a non-empty array of integers, got {type_name(value)}")
        if length is not None and len(value) != length:
            raise self.error(key, f"expected {length} entries, got {len(value)}")
        for v in value:
            if isinstance(v, bool) or not isinstance(v, int):
                raise self.error(key, f"expected integers, got {type_name(v)}")
        self.resolved[key] = list(value)
        return list(value)

    def matrix(self, key: str, dim: int, default: Any = REQUIRED) -> np.ndarray:
        value = self.raw(key, default)
        if (not isinstance(value, list) or len(value) != dim
                or any(not isinstance(r, list) or len(r) != dim for r in value)):
            raise self.error(key, f"expected a {dim}x{dim} array of arrays of numbers")
        out = np.array([[self._as_float(key, v) for v in row] for row in value])
        self.resolved[key] = out.tolist()
        return out

    def spd_matrix(self, key: str, dim: int) -> np.ndarray:
        m = self.matrix(key, dim)
        if not np.allclose(m, m.T, rtol=1e-12, atol=1e-12):
            raise self.error(key, "covariance must be symmetric")
        try:
            np.linalg.cholesky(m)
        except np.linalg.LinAlgError:
            raise self.error(key, "covariance must be positive definite") from None
        return m

    def table(self, key: str, default: Any = REQUIRED) -> "Table":
        value = self.raw(key, default)
        return Table(value, f"{self.path}.{key}")

    def tables(self, key: str) -> list["Table"]:
        value = self.raw(key)
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise self.error(key, f"expected an array of tables ([[{self.path}.{key}]])")
        return [Table(v, f"{self.path}.{key}[{i}]") for i, v in enumerate(value)]

    def keep(self, key: str, value: Any) -> None:
        """Record a derived or nested value in the resolved configuration."""
        self.resolved[key] = value

    def done(self) -> dict:
        unknown = [k for k in self.data if k not in self.read]
        if unknown:
            k = unknown[0]
            # A key that is not a bare TOML key is shown quoted, so that "" stays visible.
            shown = k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else json.dumps(k, ensure_ascii=False)
            raise self.error(shown, f"unknown key{_hint(k, self.read)}")
        return self.resolved
